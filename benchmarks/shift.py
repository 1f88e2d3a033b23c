"""A proxy for acquisition shift: other patients through another image pipeline.

The official test split of Kermany et al. differs from the training split in
how the images were acquired and processed, not only in who was imaged;
feature mode loses most of its specificity there (0.53 at 224 px, against
0.90-0.95 in patient-grouped CV). This module reproduces that kind of shift
from the training data alone:

1. a patient-grouped, class-stratified split of the training folder
   (:func:`proxy_split`): the test patients are never seen in training;
2. the test images, and only they, go through a different acquisition
   pipeline (:func:`sklearn_cxr.datasets.simulate_acquisition`): gamma and
   contrast curves, unsharp masking, noise, blur, JPEG re-compression,
   other resize and crop pipelines (downsample-upsample, crop and rescale,
   aspect change), borders and burned-in markers, each at levels 1-3,
   deterministic for a seed and a file name.

The named presets (:data:`PRESETS`) were calibrated on the training split
only, by what each step does to the calls of today's feature mode on normal
images (``python benchmarks/shift.py calibrate``); ``docs/benchmarks.rst``
has the figures and what they can and cannot tell.

Usage from Python (run from the repository root, ``benchmarks`` on the path)::

    import sys; sys.path.insert(0, "benchmarks")
    import shift
    data = shift.load_data()                          # paths, y, groups
    train, test = shift.proxy_split(data, seed=0)     # index arrays
    X_test = shift.shifted(data["paths"][test], "moderate", seed=0)  # uint8 arrays
    clf.fit(list(data["paths"][train]), data["y"][train])
    clf.predict_proba(X_test)

or export the shifted test images once, for any tool::

    python benchmarks/shift.py export --preset moderate --out /tmp/shift_moderate
    # -> /tmp/shift_moderate/{NORMAL,PNEUMONIA}/<name>.png, manifest.json
    #    (the train/test file lists, preset, steps and seed)

and score today's feature mode on it::

    python benchmarks/shift.py evaluate --preset moderate
    python benchmarks/shift.py calibrate --n-test 200     # every step alone

PNG export is lossless, so the exported images are exactly what
:func:`shifted` returns.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

from sklearn_cxr.datasets import simulate_acquisition  # noqa: E402
from sklearn_cxr.datasets._shift import (  # noqa: E402
    ACQUISITION_PRESETS,
    ACQUISITION_STEPS,
)

__all__ = [
    "PRESETS",
    "STEPS",
    "export_shifted",
    "load_data",
    "proxy_split",
    "shifted",
]

logger = logging.getLogger("shift")

load_data = _common.load_data


PRESETS = ACQUISITION_PRESETS
STEPS = ACQUISITION_STEPS


def shifted(paths, preset, seed=0):
    """The images of ``paths`` through the acquisition pipeline ``preset``."""
    return simulate_acquisition(list(paths), preset, random_state=seed)


# -------------------------------------------------------------------- splits
def proxy_split(data, *, seed=0, test_fraction=0.2):
    """Patient-grouped, class-stratified train/test indices of ``data``.

    One fold of :class:`~sklearn.model_selection.StratifiedGroupKFold` with
    ``round(1 / test_fraction)`` folds: no patient is on both sides and both
    sides keep the class balance.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(1 / test_fraction))
    cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    train, test = next(cv.split(data["paths"], data["y"], data["groups"]))
    return np.sort(train), np.sort(test)


def export_shifted(paths, labels, out_dir, preset, *, seed=0, manifest=None):
    """Write shifted copies of ``paths`` as PNG to ``out_dir/<label>/``.

    Returns the written paths. ``manifest`` (a dict) is saved beside them as
    ``manifest.json`` with the pipeline and seed added.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    written = []
    for path, label, image in zip(paths, labels, shifted(paths, preset, seed)):
        folder = out_dir / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (Path(path).stem + ".png")
        Image.fromarray(image).save(target)
        written.append(str(target))
    info = dict(manifest or {})
    info.update(pipeline=preset if isinstance(preset, str) else list(preset),
                steps=PRESETS.get(preset) if isinstance(preset, str) else None,
                seed=seed, n_images=len(written))
    with open(out_dir / "manifest.json", "w") as handle:
        json.dump(info, handle, indent=1)
    return written


# ---------------------------------------------------------------- evaluation
def feature_model(**params):
    """Today's feature mode with the offline weights (override with params)."""
    from sklearn_cxr import PretrainedCNNClassifier

    base = dict(backbone=_common.BACKBONE, weights=str(_common.WEIGHTS),
                mode="features", image_size=224, random_state=0,
                memory=str(EMBED_CACHE))
    base.update(params)
    return PretrainedCNNClassifier(**base)


EMBED_CACHE = Path(os.environ.get("SKLEARN_CXR_EMBED_CACHE", "/tmp/cxr_emb_cache"))


def score(model, X, y):
    """ROC AUC, accuracy, sensitivity, specificity of a fitted model at 0.5."""
    proba = model.predict_proba(X)
    p = proba[:, list(model.classes_).index("PNEUMONIA")]
    return _common.binary_metrics(y, p), p


def _subset(idx, y, n, seed, balanced=False):
    """``n`` indices of ``idx`` stratified by ``y`` (all when n is None).

    ``balanced``: ``n // 2`` of each class instead (for calibration, where the
    normals' calls matter most).
    """
    if n is None or n >= len(idx):
        return idx
    if balanced:
        rng = np.random.default_rng(seed)
        return np.sort(np.concatenate([
            rng.choice(idx[y[idx] == c], min(n // 2, int(np.sum(y[idx] == c))),
                       replace=False)
            for c in np.unique(y[idx])
        ]))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(idx, train_size=n, stratify=y[idx], random_state=seed)
    return np.sort(keep)


def _evaluate(args):
    data = load_data()
    train, test = proxy_split(data, seed=args.seed)
    train = _subset(train, data["y"], args.n_train, args.seed)
    test = _subset(test, data["y"], args.n_test, args.seed, args.balanced_test)
    params = json.loads(args.params) if args.params else {}
    model = feature_model(**params)
    start = time.perf_counter()
    model.fit(list(data["paths"][train]), data["y"][train])
    fit_s = time.perf_counter() - start
    results = {"params": params, "n_train": len(train), "n_test": len(test),
               "seed": args.seed, "fit_seconds": fit_s, "shifts": {}}
    for preset in args.preset:
        X = shifted(data["paths"][test], preset, args.seed)
        metrics, p = score(model, X, data["y"][test])
        normal = data["y"][test] == "NORMAL"
        metrics["mean_p_pneumonia_normals"] = float(p[normal].mean())
        metrics["mean_p_pneumonia_pneumonias"] = float(p[~normal].mean())
        results["shifts"][preset] = metrics
        logger.info("%-40s %s", preset, _fmt(metrics))
        if args.out:
            _common.save_json(args.out, results)
    return results


def _fmt(m):
    return (f"AUC {m['roc_auc']:.3f} acc {m['accuracy']:.3f} "
            f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} "
            f"P(pn|normal) {m['mean_p_pneumonia_normals']:.3f}")


def _calibrate(args):
    """Every step alone at every level: what it does to normals' calls."""
    args.preset = ["none"] + [
        f"{name}:{level}" for name in STEPS for level in args.levels
    ]
    return _evaluate(args)


def _export(args):
    data = load_data()
    train, test = proxy_split(data, seed=args.seed)
    written = export_shifted(
        data["paths"][test], data["y"][test], args.out, args.preset[0],
        seed=args.seed,
        manifest={"train": [os.path.basename(p) for p in data["paths"][train]],
                  "test": [os.path.basename(p) for p in data["paths"][test]],
                  "data_dir": str(_common.DATA_DIR)},
    )
    logger.info("wrote %d images to %s", len(written), args.out)
    return {"out": str(args.out), "n_images": len(written)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["evaluate", "calibrate", "export"])
    parser.add_argument("--preset", nargs="+", default=["none", "moderate"],
                        help="presets or 'step:level+step:level' pipelines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--balanced-test", action="store_true",
                        help="with --n-test: half of each class")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--params", default=None,
                        help="JSON of PretrainedCNNClassifier parameters")
    parser.add_argument("--out", default=None)
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "export":
        if not args.out:
            parser.error("export needs --out FOLDER")
        return _export(args)
    results = (_calibrate if args.command == "calibrate" else _evaluate)(args)
    results["machine"] = _common.machine()
    if args.out:
        path = _common.save_json(args.out, results)
        logger.info("saved %s", path)
    return results


if __name__ == "__main__":
    main()
