"""Where feature mode looks: the share of its class activation map in the lungs.

Fits feature mode (``PretrainedCNNClassifier`` with the offline Lite0
weights) on the training patients of :func:`shift.proxy_split`, computes the
class activation maps (:func:`sklearn_cxr.inspection.gradcam`, exact for a
linear head) of held-out images, and reports the share of the map's mass

- inside an approximate lung-field mask: two fixed ellipses placed on the
  mean of 300 training normals (centres at 29% and 71% of the width, 50% of
  the height; half-axes 16% of the width, 29% of the height);
- in the outer border band (the outer 10% on each side), where the burned-in
  markers and collimation edges of this data set sit.

The fixed mask is a population prior, not a segmentation: children's lungs
sit higher or lower, wider or narrower from image to image, and it misses
them on badly framed images. It is good for comparing two models on the same
images, not for judging one image. The share of the image the mask covers is
reported beside it (a map spread uniformly would score that share).

    python benchmarks/lung_focus.py --n-images 120 --out lung_focus.json
    python benchmarks/lung_focus.py --params '{"crop": 0.9}'  # another model
    # a finetuned model saved by finetune_levers.py --save-dir, on its own
    # held-out patients
    python benchmarks/lung_focus.py --model base_seed0.cxr --split levers \\
        --levers-split 4100 1000
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import shift  # noqa: E402

logger = logging.getLogger("lung_focus")


def lung_mask(height, width):
    """The fixed two-ellipse lung-field prior, as a boolean (H, W) array."""
    yy, xx = np.mgrid[0:height, 0:width]
    u, v = (xx + 0.5) / width, (yy + 0.5) / height
    mask = np.zeros((height, width), bool)
    for cx in (0.29, 0.71):
        mask |= ((u - cx) / 0.16) ** 2 + ((v - 0.50) / 0.29) ** 2 <= 1
    return mask


def border_mask(height, width, fraction=0.10):
    """The outer band of ``fraction`` of each side."""
    mask = np.ones((height, width), bool)
    dh, dw = round(height * fraction), round(width * fraction)
    mask[dh:height - dh, dw:width - dw] = False
    return mask


def shares(heatmaps):
    """Per-image share of the heatmap mass inside the lung and border masks."""
    out = {"lung": [], "border": []}
    for h in heatmaps:
        h = np.asarray(h, dtype=np.float64)
        total = h.sum() or 1.0
        out["lung"].append(float(h[lung_mask(*h.shape)].sum() / total))
        out["border"].append(float(h[border_mask(*h.shape)].sum() / total))
    return out


def run(args):
    from sklearn_cxr.inspection import gradcam

    data = shift.load_data()
    params = json.loads(args.params) if args.params else {}
    start = time.perf_counter()
    if args.split == "levers":  # finetune_levers.py's split of whole patients
        from finetune_levers import split

        train, test = split(data, *args.levers_split, args.seed)
    else:
        train, test = shift.proxy_split(data, seed=args.seed)
        train = shift._subset(train, data["y"], args.n_train, args.seed)
    test = shift._subset(test, data["y"], args.n_images, args.seed)
    if args.model:
        from sklearn_cxr import PretrainedCNNClassifier

        model = PretrainedCNNClassifier.load(args.model)
        params = {"model": Path(args.model).name, **{
            k: v for k, v in model.get_params().items()
            if isinstance(v, (str, int, float, bool, type(None)))}}
    else:
        model = shift.feature_model(**params)
        model.fit(list(data["paths"][train]), data["y"][train])
    results = {"params": params, "n_train": len(train), "n_images": len(test),
               "fit_seconds": None if args.model else time.perf_counter() - start,
               "lung_mask_area": float(lung_mask(224, 224).mean()),
               "border_mask_area": float(border_mask(224, 224).mean()),
               "presets": {}}
    for preset in args.presets:
        X = shift.shifted(data["paths"][test], preset, args.seed)
        maps = gradcam(model, X, target="PNEUMONIA")
        s = shares(maps)
        pred = model.predict(X)
        y = data["y"][test]
        row = {}
        for name, sel in (("all", np.ones(len(y), bool)),
                          ("normal", y == "NORMAL"),
                          ("false_positive", (y == "NORMAL") & (pred != y))):
            row[name] = {
                "n": int(sel.sum()),
                "lung_share": float(np.mean(np.array(s["lung"])[sel]))
                if sel.any() else None,
                "border_share": float(np.mean(np.array(s["border"])[sel]))
                if sel.any() else None,
            }
        results["presets"][preset] = row
        logger.info("%s %s", preset, row)
    results["machine"] = _common.machine()
    if args.out:
        _common.save_json(args.out, results)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-images", type=int, default=120)
    parser.add_argument("--presets", nargs="+", default=["none", "moderate"])
    parser.add_argument("--params", default=None,
                        help="JSON of PretrainedCNNClassifier parameters")
    parser.add_argument("--model", default=None,
                        help="score a model saved by finetune_levers.py "
                        "--save-dir instead of fitting feature mode (with "
                        "--split levers and that run's sizes)")
    parser.add_argument("--split", choices=["proxy", "levers"], default="proxy",
                        help="proxy: shift.py's split; levers: "
                        "finetune_levers.py's, of --levers-split sizes")
    parser.add_argument("--levers-split", type=int, nargs=2, default=[4100, 1000],
                        metavar=("N_TRAIN", "N_TEST"),
                        help="the --n-train and --n-test of finetune_levers.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return run(args)


if __name__ == "__main__":
    main()
