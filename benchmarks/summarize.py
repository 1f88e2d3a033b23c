"""Print the figures of ``benchmarks/results/*.json`` as reStructuredText tables.

    python benchmarks/summarize.py > /tmp/tables.rst
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("=" * w for w in widths)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line, fmt.format(*header), line]
    out += [fmt.format(*map(str, r)) for r in rows]
    out.append(line)
    return "\n".join(out)


def f3(x):
    return "n/a" if x is None else f"{x:.3f}"


def accuracy_rows(path):
    with open(path) as fh:
        r = json.load(fh)
    rows = []
    for key, run in r["runs"].items():
        folds = run["folds"]
        if run.get("summary"):
            s = run["summary"]
            if "at_0.5.roc_auc" in s:
                def g(k, s=s):
                    return f"{s[k]['mean']:.3f}±{s[k]['std']:.3f}"
                rows.append([
                    key, f"{len(folds)} folds",
                    g("at_0.5.roc_auc"), g("at_0.5.accuracy"),
                    g("at_0.5.sensitivity"), g("at_0.5.specificity"),
                    g("at_operating_point.accuracy"),
                    g("at_operating_point.sensitivity"),
                    g("at_operating_point.specificity"),
                    f"{s['fit_seconds']['mean']:.0f}",
                    f"{s['predict_seconds']['mean']:.0f}",
                ])
                continue
        for split, fold in folds.items():
            if "at_0.5" not in fold:
                continue
            a, b = fold["at_0.5"], fold["at_operating_point"]
            rows.append([
                key, split, f3(a["roc_auc"]), f3(a["accuracy"]),
                f3(a["sensitivity"]), f3(a["specificity"]), f3(b["accuracy"]),
                f3(b["sensitivity"]), f3(b["specificity"]),
                f"{fold['fit_seconds']:.0f}", f"{fold['predict_seconds']:.0f}",
            ])
    return r, rows


def subtype_rows(path):
    with open(path) as fh:
        r = json.load(fh)
    rows = []
    for key, run in r["runs"].items():
        s = run.get("summary") or {}
        if "bacteria_vs_virus_auc" not in s:
            continue

        def g(k, s=s):
            return f"{s[k]['mean']:.3f}±{s[k]['std']:.3f}"
        rows.append([key, len(run["folds"]), g("accuracy"), g("roc_auc_ovr_macro"),
                     g("normal_vs_pneumonia_auc"), g("bacteria_vs_virus_auc"),
                     g("bacteria_vs_virus_accuracy")])
    return r, rows


def main():
    header = ["run", "split", "AUC", "acc@0.5", "sens@0.5", "spec@0.5",
              "acc@op", "sens@op", "spec@op", "fit s", "predict s"]
    for path in sorted(RESULTS.glob("accuracy_*.json")):
        with open(path) as fh:
            labels = json.load(fh)["args"]["labels"]
        if labels == "subtype":
            r, rows = subtype_rows(path)
            head = ["run", "folds", "accuracy", "AUC ovr", "normal-vs-pneu AUC",
                    "bact-vs-viral AUC", "bact-vs-viral acc"]
        else:
            r, rows = accuracy_rows(path)
            head = header
        if not rows:
            continue
        print(f"{path.name}  ({r['machine']['date_utc']} UTC)")
        print(f"``{r['command']}``\n")
        print(table(head, rows))
        print()
    for path in sorted(RESULTS.glob("speed_*.json")):
        with open(path) as fh:
            r = json.load(fh)
        print(f"{path.name}  ({r['machine']['date_utc']} UTC): ``{r['command']}``")
        json.dump({k: r[k] for k in r if k not in ("machine",)}, sys.stdout,
                  indent=1, default=str)
        print()
    for path in sorted(RESULTS.glob("feature_mode_memory_*.json")):
        with open(path) as fh:
            r = json.load(fh)
        print(f"{path.name}: n={r['n_images']} fit {r['fit_seconds']:.0f}s "
              f"peak RSS {r['peak_rss_mb']:.0f} MB ``{r['command']}``")


if __name__ == "__main__":
    main()
