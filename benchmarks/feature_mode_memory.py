"""Time and peak RSS of feature mode on the 5,216 shared training images.

Fits ``PretrainedCNNClassifier(mode="features")`` (EfficientNet-Lite0 with the
offline ImageNet weights, 224 px, batch 32) on the image *paths* in this
process and reports the wall time and the peak resident set size
(``resource.getrusage``). Issue 2's target: peak RSS under 2 GB.

With ``--cache`` the embeddings are stored with the package's own
``memory=`` cache (joblib) so that ``accuracy.py`` reuses them; a second run
is then a cache hit and its time is not a measurement (the JSON says so).

    python benchmarks/feature_mode_memory.py [--equalize] [--in-chans 1] [--cache]
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--equalize", action="store_true")
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--cache", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="first N images")
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO)

    import numpy as np

    from sklearn_cxr import PretrainedCNNClassifier

    data = _common.load_data()
    paths, y = data["paths"], data["y"]
    if args.limit:
        rng = np.random.RandomState(0)
        keep = np.sort(rng.choice(len(paths), args.limit, replace=False))
        paths, y = paths[keep], y[keep]
    memory = str(_common.CACHE_DIR / "joblib") if args.cache else None
    existed = memory is not None and Path(memory).exists()
    rss_after_imports = rss_mb()
    clf = PretrainedCNNClassifier(
        backbone=_common.BACKBONE,
        weights=str(_common.WEIGHTS),
        mode="features",
        image_size=args.image_size,
        equalize=args.equalize,
        in_chans=args.in_chans,
        memory=memory,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(list(paths), y)
    fit_s = time.perf_counter() - start
    result = {
        "what": "PretrainedCNNClassifier(mode='features').fit on image paths",
        "n_images": int(len(paths)),
        "image_size": args.image_size,
        "equalize": args.equalize,
        "in_chans": args.in_chans,
        "memory_cache": memory,
        "cache_dir_existed_before": existed,
        "fit_seconds": fit_s,
        "images_per_second": len(paths) / fit_s,
        "peak_rss_mb": rss_mb(),
        "rss_after_imports_mb": rss_after_imports,
        "training_accuracy": float(clf.score(list(paths[:256]), y[:256]))
        if args.limit is None
        else None,
        "machine": _common.machine(),
        "command": "python benchmarks/feature_mode_memory.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    tag = f"{args.image_size}px_eq{int(args.equalize)}_c{args.in_chans}"
    if args.limit:
        tag += f"_n{args.limit}"
    if memory is not None and args.limit is None:
        # A cache hit of the same images: hand the embeddings to accuracy.py.
        embeddings = clf.features_.transform(list(paths))
        out = _common.CACHE_DIR / f"emb_{tag}.npz"
        np.savez(out, embeddings=embeddings, paths=paths)
        result["embeddings_saved_to"] = str(out)
    path = _common.save_json(f"feature_mode_memory_{tag}.json", result)
    print(result)
    print("saved", path)


if __name__ == "__main__":
    main()
