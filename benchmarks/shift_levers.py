"""Feature-mode levers on the acquisition-shift proxy and on grouped CV.

For each *variant* (a preprocessing of the images and the parameters of
``PretrainedFeatures``), the training images of :func:`shift.proxy_split`
(optionally a stratified subset) and the test images, clean and through the
acquisition pipelines of ``--presets``, are embedded once (cached in
``SKLEARN_CXR_EMBED_CACHE``); then every *head* (StandardScaler +
LogisticRegression with a C and a class weight) is fitted on the training
embeddings and scored on

- ``cv``: patient-grouped 5-fold CV inside the training images;
- ``proxy:<preset>``: the held-out patients through that pipeline.

Metrics at probability 0.5: ROC AUC, accuracy, sensitivity, specificity.

    python benchmarks/shift_levers.py --n-train 1500 --n-test 500 \\
        --variants base equalize crop90 --out shift_levers_n1500.json

Variants (``VARIANTS``): ``base`` (today's defaults, 224 px), ``equalize``,
``stretch`` (per-image 1-99 percentile stretch), ``zscore`` (per-image
standardisation to mean 0.5, std 0.2), ``crop90``/``crop80`` (central crop of
that fraction), ``px128``/``px160``/``px288``, ``lite2`` (EfficientNet-Lite2 at 260 px),
``tta_flip`` (mean embedding of the image and its mirror).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import shift  # noqa: E402

logger = logging.getLogger("shift_levers")

LITE2_ENV = "SKLEARN_CXR_WEIGHTS_LITE2"


def _lite2_weights():
    """$SKLEARN_CXR_WEIGHTS_LITE2, else efficientnet_lite2_imagenet_timm.pth
    beside the Lite0 weights (``--weights`` / ``$SKLEARN_CXR_WEIGHTS``)."""
    value = os.environ.get(LITE2_ENV)
    if value:
        return str(Path(value).expanduser())
    return str(_common.WEIGHTS.parent / "efficientnet_lite2_imagenet_timm.pth")


# ---------------------------------------------------- array preprocessings
def _stretch(img):
    lo, hi = np.percentile(img, (1, 99))
    return np.clip((img.astype(np.float32) - lo) / max(hi - lo, 1) * 255, 0, 255
                   ).round().astype(np.uint8)


def _zscore(img):
    x = img.astype(np.float32)
    x = 0.5 + 0.2 * (x - x.mean()) / max(x.std(), 1e-3)
    return np.clip(x * 255, 0, 255).round().astype(np.uint8)


def _crop(fraction):
    def crop(img):
        h, w = img.shape[:2]
        dh, dw = round(h * (1 - fraction) / 2), round(w * (1 - fraction) / 2)
        return img[dh:h - dh, dw:w - dw]
    return crop


def _flip(img):
    return np.ascontiguousarray(img[:, ::-1])


VARIANTS = {
    "base": ({}, None),
    "equalize": ({"equalize": True}, None),
    "stretch": ({}, _stretch),
    "zscore": ({}, _zscore),
    "crop90": ({}, _crop(0.9)),
    "crop80": ({}, _crop(0.8)),
    "px128": ({"image_size": 128}, None),
    "px160": ({"image_size": 160}, None),
    "px288": ({"image_size": 288}, None),
    "lite2": ({"backbone": "timm:tf_efficientnet_lite2", "weights": "LITE2",
               "image_size": 260}, None),
    "tta_flip": ({}, None),  # base embeddings averaged with mirrored ones
    "equalize_crop90": ({"equalize": True}, _crop(0.9)),
}

HEADS = {
    "C=1,balanced": dict(C=1.0, class_weight="balanced"),
    "C=0.1,balanced": dict(C=0.1, class_weight="balanced"),
    "C=0.01,balanced": dict(C=0.01, class_weight="balanced"),
    "C=1,none": dict(C=1.0, class_weight=None),
}


def _features(params):
    from sklearn_cxr import PretrainedFeatures

    base = dict(backbone=_common.BACKBONE, weights=str(_common.WEIGHTS),
                image_size=224, memory=str(shift.EMBED_CACHE), random_state=0)
    base.update(params)
    if base["weights"] == "LITE2":
        base["weights"] = _lite2_weights()
    return PretrainedFeatures(**base).fit()


def _embed(features, arrays, prep, flip=False):
    items = [prep(a) if prep else a for a in arrays]
    emb = features.transform(items)
    if flip:
        emb = (emb + features.transform([_flip(a) for a in items])) / 2
    return emb


def _head(C, class_weight):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(
        C=C, class_weight=class_weight, max_iter=1000, random_state=0))


def _metrics(model, E, y):
    p = model.predict_proba(E)[:, list(model.classes_).index("PNEUMONIA")]
    return _common.binary_metrics(y, p)


def _cv(head, E, y, groups):
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    cv = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    proba = cross_val_predict(head, E, y, cv=cv, groups=groups,
                              method="predict_proba")
    return _common.binary_metrics(y, proba[:, 1])  # classes sorted: PNEUMONIA


def run(args):
    data = shift.load_data()
    train, test = shift.proxy_split(data, seed=args.seed)
    train = shift._subset(train, data["y"], args.n_train, args.seed)
    test = shift._subset(test, data["y"], args.n_test, args.seed)
    y_tr, y_te = data["y"][train], data["y"][test]
    train_paths = list(data["paths"][train])  # shares the cache of path runs
    train_arrays = shift.shifted(train_paths, "none", args.seed)
    tests = {p: shift.shifted(data["paths"][test], p, args.seed)
             for p in args.presets}
    results = {"n_train": len(train), "n_test": len(test), "seed": args.seed,
               "presets": args.presets, "variants": {},
               "machine": _common.machine()}
    for name in args.variants:
        params, prep = VARIANTS[name]
        flip = name == "tta_flip"
        start = time.perf_counter()
        features = _features(params)
        E_tr = _embed(features, train_arrays if prep or flip else train_paths,
                      prep, flip)
        E_te = {p: _embed(features, a, prep, flip) for p, a in tests.items()}
        out = {"embed_seconds": time.perf_counter() - start, "heads": {}}
        for head_name in args.heads:
            head = _head(**HEADS[head_name])
            row = {"cv": _cv(head, E_tr, y_tr, data["groups"][train])}
            head.fit(E_tr, y_tr)
            for p, E in E_te.items():
                row[f"proxy:{p}"] = _metrics(head, E, y_te)
            out["heads"][head_name] = row
            logger.info("%-16s %-16s %s", name, head_name, "  ".join(
                f"{k} auc {m['roc_auc']:.3f} sens {m['sensitivity']:.3f} "
                f"spec {m['specificity']:.3f}" for k, m in row.items()))
        results["variants"][name] = out
        if args.out:
            _common.save_json(args.out, results)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base"],
                        choices=sorted(VARIANTS))
    parser.add_argument("--heads", nargs="+", default=list(HEADS),
                        choices=list(HEADS))
    parser.add_argument("--presets", nargs="+", default=["none", "moderate"])
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return run(args)


if __name__ == "__main__":
    main()
