"""Speed-up of the embedding cache on a 10-candidate grid search in feature mode.

Runs the same ``GridSearchCV`` over ``final_estimator__C`` (10 values,
``StratifiedGroupKFold(3)`` by patient, refit on all the data) twice in one
process: without ``memory`` (every fold of every candidate embeds its images
again: 10 x 3 x 1 + 1 = 31 backbone passes over the data) and with a fresh,
empty ``memory`` folder (each image is embedded once, then reused). Checks
that both searches give the same scores, then prints and saves the times.

Default: the first 100 NORMAL and 100 PNEUMONIA images of the shared
Kermany training split, EfficientNet-Lite0 with the offline ImageNet weights,
224 px. ``--synthetic`` uses ``sklearn_cxr.datasets.make_chest_xrays``
instead, ``--backbone resnet18 --random-weights`` needs no weights file.

    python benchmarks/caching.py [--n-images 200] [--image-size 224]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def load_images(args):
    if args.synthetic:
        from sklearn_cxr.datasets import make_chest_xrays

        bunch = make_chest_xrays(
            args.n_images, image_size=args.image_size, random_state=0
        )
        return bunch.images, bunch.target, bunch.groups, "synthetic"
    data = _common.load_data()
    half = args.n_images // 2
    idx = np.concatenate(
        [np.flatnonzero(data["y"] == c)[:half] for c in ("NORMAL", "PNEUMONIA")]
    )
    return data["paths"][idx], data["y"][idx], data["groups"][idx], "kermany paths"


def run_search(X, y, groups, args, memory):
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    from sklearn_cxr import PretrainedCNNClassifier

    clf = PretrainedCNNClassifier(
        backbone=args.backbone,
        weights=None if args.random_weights else str(_common.WEIGHTS),
        mode="features",
        image_size=args.image_size,
        batch_size=32,
        random_state=0,
        memory=memory,
    )
    search = GridSearchCV(
        clf,
        {"final_estimator__C": np.logspace(-4, 2, 10)},
        cv=StratifiedGroupKFold(3, shuffle=True, random_state=0),
        scoring="roc_auc",
        n_jobs=1,
    )
    start, cpu = time.perf_counter(), time.process_time()
    search.fit(X, y, groups=groups)
    search.cpu_seconds_ = time.process_time() - cpu  # this process, all threads
    return time.perf_counter() - start, search


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbone", default=_common.BACKBONE)
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--synthetic", action="store_true")
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.WARNING)

    X, y, groups, source = load_images(args)
    print(
        f"{len(y)} images ({source}), {args.backbone} at {args.image_size} px, "
        f"10 candidates x 3 folds + refit, torch threads: "
        f"{__import__('torch').get_num_threads()}, cpus: {os.cpu_count()}"
    )
    uncached, search_a = run_search(X, y, groups, args, memory=None)
    print(
        f"without memory: {uncached:8.1f} s wall, "
        f"{search_a.cpu_seconds_:8.1f} s CPU"
    )
    with tempfile.TemporaryDirectory() as cache:
        cached, search_b = run_search(X, y, groups, args, memory=cache)
    print(
        f"with memory   : {cached:8.1f} s wall, {search_b.cpu_seconds_:8.1f} s CPU"
        "  (cold cache, created in the run)"
    )
    scores_a = search_a.cv_results_["mean_test_score"]
    scores_b = search_b.cv_results_["mean_test_score"]
    np.testing.assert_allclose(scores_a, scores_b, atol=1e-6)
    cpu_speedup = search_a.cpu_seconds_ / search_b.cpu_seconds_
    print(
        f"speed-up      : {uncached / cached:8.1f} x wall, {cpu_speedup:.1f} x CPU"
        "  (same CV scores: yes)"
    )
    result = {
        "n_images": int(len(y)),
        "source": source,
        "backbone": args.backbone,
        "image_size": args.image_size,
        "candidates": 10,
        "folds": 3,
        "seconds_without_memory": round(uncached, 2),
        "seconds_with_memory": round(cached, 2),
        "speedup": round(uncached / cached, 2),
        "cpu_seconds_without_memory": round(search_a.cpu_seconds_, 2),
        "cpu_seconds_with_memory": round(search_b.cpu_seconds_, 2),
        "cpu_speedup": round(cpu_speedup, 2),
        "best_C": float(search_b.best_params_["final_estimator__C"]),
        "best_roc_auc": float(search_b.best_score_),
    }
    result["machine"] = _common.machine()
    out = _common.RESULTS_DIR / (
        f"caching_{args.backbone.replace(':', '_')}_{args.image_size}px_"
        f"n{len(y)}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
