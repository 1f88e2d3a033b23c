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
``tta_flip`` (mean embedding of the image and its mirror), ``lowpass128``
(down to 128 px and back up before embedding: removes the high-frequency
detail that noise, sharpening and JPEG change), ``median3`` (3x3 median
filter), ``blur1`` (Gaussian blur, sigma 1), ``detail128`` (the package's
``detail_size=128``, feature mode's default: what ``lowpass128`` does, by the
estimator's own transform), ``lungmask128`` (``detail128`` on images blacked
out outside a widened two-ellipse lung prior: lung-field masking, item 4).

``--train-aug K`` adds K copies of every training image through
:func:`sklearn_cxr._augment.acquisition_augmentation` (the training-time
``augment="acquisition"``; with ``--train-aug-kind framing``,
:func:`~sklearn_cxr._augment.framing_augmentation`, which adds random markers
and borders) to the head's training embeddings; CV then fits on
the augmented training folds and scores the original images of the held-out
fold. The augmentation draws from the same families as the ``mild`` and
``moderate`` presets (noise, JPEG, contrast), so its figures there are
optimistic; ``heldout`` (resampling, unsharp masking, a border and markers:
no step drawn by the augmentation except sharpening) is the fairer check.
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


def _lowpass(size):
    from PIL import Image

    def lowpass(img):
        h, w = img.shape[:2]
        small = Image.fromarray(img).resize((size, size), Image.BILINEAR,
                                            reducing_gap=None)
        return np.asarray(small.resize((w, h), Image.BICUBIC))
    return lowpass


def _lungmask(img):
    """Black out all but the lung fields: the two-ellipse lung prior of
    ``lung_focus.py``, its half-axes widened by 35% (width) and 30% (height)
    so that lungs off the mean position keep most of their area."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = (xx + 0.5) / w, (yy + 0.5) / h
    keep = np.zeros((h, w), bool)
    for cx in (0.29, 0.71):
        keep |= ((u - cx) / (0.16 * 1.35)) ** 2 + ((v - 0.50) / (0.29 * 1.3)) ** 2 <= 1
    out = np.array(img, copy=True)
    out[~keep] = 0
    return out


def _median3(img):
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(img).filter(ImageFilter.MedianFilter(3)))


def _blur1(img):
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1)))


def _augmented_copies(arrays, copies, seed, kind="acquisition"):
    """``copies`` augmented uint8 versions of each 2-D array.

    ``kind``: ``"acquisition"`` or ``"framing"`` (the training augmentations
    of the same names in :mod:`sklearn_cxr._augment`).
    """
    import torch

    from sklearn_cxr import _augment

    transform = getattr(_augment, f"{kind}_augmentation")()
    torch.manual_seed(seed)
    out = []
    for _ in range(copies):
        for a in arrays:
            x = torch.from_numpy(np.array(a, dtype=np.float32) / 255)[None]
            y = transform(x)[0].clamp(0, 1).mul(255).round().to(torch.uint8)
            out.append(y.numpy())
    return out


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
    "lowpass128": ({}, _lowpass(128)),
    "median3": ({}, _median3),
    "blur1": ({}, _blur1),
    "detail128": ({"detail_size": 128}, None),
    "lungmask128": ({"detail_size": 128}, _lungmask),
}

#: A pipeline of steps the training augmentation does not draw (see above).
HELDOUT_PRESET = [("resample", 2), ("unsharp", 2), ("border", 1), ("markers", 1)]

HEADS = {
    "C=1,balanced": dict(C=1.0, class_weight="balanced"),
    "C=0.1,balanced": dict(C=0.1, class_weight="balanced"),
    "C=0.01,balanced": dict(C=0.01, class_weight="balanced"),
    "C=0.001,balanced": dict(C=0.001, class_weight="balanced"),
    "C=1,none": dict(C=1.0, class_weight=None),
}


def _features(params):
    from sklearn_cxr import PretrainedFeatures

    # detail_size=None: the variants compare preprocessings of the full
    # 224 px image; "detail128" is the package's own feature-mode default
    base = dict(backbone=_common.BACKBONE, weights=str(_common.WEIGHTS),
                image_size=224, memory=str(shift.EMBED_CACHE), random_state=0,
                detail_size=None)
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


def _cv(head, E, y, groups, E_aug=None):
    """Grouped 5-fold CV; ``E_aug`` (copies x n x d) joins the training folds."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(5, shuffle=True, random_state=0)
    proba = np.zeros(len(y))
    for tr, va in cv.split(E, y, groups):
        E_fit, y_fit = E[tr], y[tr]
        if E_aug is not None:
            E_fit = np.concatenate([E_fit, *(c[tr] for c in E_aug)])
            y_fit = np.concatenate([y_fit] * (1 + len(E_aug)))
        model = clone(head).fit(E_fit, y_fit)
        proba[va] = model.predict_proba(E[va])[
            :, list(model.classes_).index("PNEUMONIA")]
    return _common.binary_metrics(y, proba)


def run(args):
    data = shift.load_data()
    train, test = shift.proxy_split(data, seed=args.seed)
    train = shift._subset(train, data["y"], args.n_train, args.seed)
    test = shift._subset(test, data["y"], args.n_test, args.seed)
    y_tr, y_te = data["y"][train], data["y"][test]
    train_paths = list(data["paths"][train])  # shares the cache of path runs
    train_arrays = shift.shifted(train_paths, "none", args.seed)
    tests = {p: shift.shifted(data["paths"][test],
                              HELDOUT_PRESET if p == "heldout" else p, args.seed)
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
        E_aug = None
        if args.train_aug:
            copies = _augmented_copies(train_arrays, args.train_aug, args.seed,
                                       args.train_aug_kind)
            E_aug = _embed(features, copies, prep, flip).reshape(
                args.train_aug, len(train), -1)
        out = {"embed_seconds": time.perf_counter() - start, "heads": {},
               "train_aug": args.train_aug,
               "train_aug_kind": args.train_aug_kind if args.train_aug else None}
        for head_name in args.heads:
            head = _head(**HEADS[head_name])
            row = {"cv": _cv(head, E_tr, y_tr, data["groups"][train], E_aug)}
            if E_aug is None:
                head.fit(E_tr, y_tr)
            else:
                head.fit(np.concatenate([E_tr, *E_aug]),
                         np.concatenate([y_tr] * (1 + args.train_aug)))
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
    parser.add_argument("--presets", nargs="+", default=["none", "moderate"],
                        help="acquisition presets of the test images, or "
                        "'heldout' (steps the training augmentation lacks)")
    parser.add_argument("--train-aug", type=int, default=0, metavar="K",
                        help="add K acquisition-augmented copies of each "
                        "training image to the head's training set")
    parser.add_argument("--train-aug-kind", default="acquisition",
                        choices=["acquisition", "framing"],
                        help="the augmentation of --train-aug: acquisition, or "
                        "framing (acquisition plus random markers and borders)")
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
