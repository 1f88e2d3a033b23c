"""Feature-mode heads (C, class weight) on the shift proxy, full training split.

Uses the embedding cache of ``shift.py evaluate`` (run it first with the same
``--n-test`` and presets): the Lite0 224 px embeddings of the 4,173 training
images and of the shifted test images are read back, and every head
(StandardScaler + LogisticRegression) is fitted on the training embeddings,
scored on grouped 5-fold CV of all 5,216 images and on each preset.

    python benchmarks/shift.py evaluate --n-test 240 --preset none mild moderate severe
    python benchmarks/shift_heads.py --n-test 240 --out shift_heads_full_n240.json
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import shift  # noqa: E402
from shift_levers import _cv, _features, _head, _metrics  # noqa: E402

logger = logging.getLogger("shift_heads")

HEADS = {f"C={c},{w}": dict(C=c, class_weight=None if w == "none" else w)
         for c in (1.0, 0.1, 0.01, 0.001) for w in ("balanced", "none")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=240)
    parser.add_argument("--presets", nargs="+",
                        default=["none", "mild", "moderate", "severe"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = shift.load_data()
    train, test = shift.proxy_split(data, seed=args.seed)
    test = shift._subset(test, data["y"], args.n_test, args.seed)
    features = _features({})
    E_all = features.transform(list(data["paths"]))
    E_te = {p: features.transform(shift.shifted(data["paths"][test], p, args.seed))
            for p in args.presets}
    results = {"n_train": len(train), "n_test": len(test), "heads": {}}
    for name, kw in HEADS.items():
        head = _head(**kw)
        row = {"cv_all": _cv(head, E_all, data["y"], data["groups"])}
        head.fit(E_all[train], data["y"][train])
        for p, E in E_te.items():
            row[f"proxy:{p}"] = _metrics(head, E, data["y"][test])
        results["heads"][name] = row
        logger.info("%-16s %s", name, "  ".join(
            f"{k} auc {m['roc_auc']:.3f} acc {m['accuracy']:.3f} "
            f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f}"
            for k, m in row.items()))
    results["machine"] = _common.machine()
    if args.out:
        _common.save_json(args.out, results)
    return results


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
