"""Label-free adaptation measured on the acquisition-shift proxy (issue 10).

Train on the proxy's training patients (labelled source, ``sample_domain=1``);
the test patients, through another acquisition pipeline
(``benchmarks/shift.py``), are given *unlabelled* as the target site
(``sample_domain=-2``, label -1) and scored with their true labels: the
transductive protocol of a hospital that hands over its own X-rays.

Feature mode (frozen Lite0, balanced ``LogisticRegression(C=...)``, the
issue's reference set-up): no adaptation, per-site standardisation, skada's
CORAL, and EM re-estimation of the class prior (Saerens et al. 2002) on the
unadapted model's target probabilities. Finetune mode: one training, scored
without adaptation (the source BatchNorm statistics, ``sample_domain=1``)
and with AdaBN; and a Deep CORAL training.

Usage::

    python benchmarks/adaptation.py features --preset moderate
    python benchmarks/adaptation.py finetune --preset moderate --n-train 800 \\
        --n-test 400 --max-epochs 3
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

logger = logging.getLogger("adaptation")

SOURCE, TARGET = 1, -2


def em_prior(proba, train_prior, tol=1e-6, max_iter=1000):
    """Saerens et al. (2002): re-estimate the class prior on unlabelled images.

    Returns the adjusted posteriors and the estimated prior.
    """
    prior = np.asarray(train_prior, dtype=float)
    ratio_base = proba / prior
    for _ in range(max_iter):
        adjusted = ratio_base * prior
        adjusted /= adjusted.sum(axis=1, keepdims=True)
        new_prior = adjusted.mean(axis=0)
        if np.max(np.abs(new_prior - prior)) < tol:
            prior = new_prior
            break
        prior = new_prior
    adjusted = ratio_base * prior
    return adjusted / adjusted.sum(axis=1, keepdims=True), prior


def shifted_paths(data, test, preset, seed):
    """Export the shifted test images once (lossless PNG) and return the paths."""
    out = Path(f"/tmp/cxr_adapt_shift/{preset}_seed{seed}")
    manifest = out / "manifest.json"
    names = [Path(p).stem + ".png" for p in data["paths"][test]]
    paths = [str(out / str(lab) / n) for lab, n in zip(data["y"][test], names)]
    if (
        manifest.is_file()
        and _same_pipeline(manifest, preset, seed)
        and all(Path(p).is_file() for p in paths)
    ):
        return np.asarray(paths)
    written = shift.export_shifted(
        data["paths"][test], data["y"][test], out, preset, seed=seed
    )
    assert written == paths, "export order changed"
    return np.asarray(paths)


def _same_pipeline(manifest, preset, seed):
    """Whether an earlier export used today's steps of ``preset`` and ``seed``
    (a preset's definition can change; stale images must not be reused)."""
    from sklearn_cxr.datasets._shift import ACQUISITION_PRESETS

    info = json.loads(manifest.read_text())
    steps = [list(step) for step in ACQUISITION_PRESETS[preset]]
    return info.get("steps") == steps and info.get("seed") == seed


def pneumonia_proba(model, X, **kwargs):
    proba = model.predict_proba(X, **kwargs)
    return proba[:, list(model.classes_).index("PNEUMONIA")]


def _detail(args):
    """``detail_size`` when given (releases before it have no such parameter)."""
    if args.detail_size is None:
        return {}
    return {"detail_size": None if args.detail_size == "none" else
            args.detail_size if args.detail_size == "auto" else int(args.detail_size)}


def run_features(args, data, train, test, target_paths):
    from sklearn.linear_model import LogisticRegression

    from sklearn_cxr import PretrainedCNNClassifier

    y_test = data["y"][test]
    X = list(data["paths"][train]) + list(target_paths)
    y = np.concatenate([data["y"][train], np.full(len(test), "-1")])
    domains = np.r_[np.full(len(train), SOURCE), np.full(len(test), TARGET)]
    results = {}
    for adaptation in (None, "standardize", "coral"):
        model = PretrainedCNNClassifier(
            backbone=_common.BACKBONE,
            weights=str(_common.WEIGHTS),
            mode="features",
            image_size=args.image_size,
            final_estimator=LogisticRegression(C=args.C, max_iter=2000),
            class_weight="balanced",
            memory=str(shift.EMBED_CACHE),
            random_state=args.seed,
            adaptation=adaptation,
            **_detail(args),
        )
        start = time.perf_counter()
        model.fit(X, y, sample_domain=domains)
        fit_s = time.perf_counter() - start
        p = pneumonia_proba(model, list(target_paths))
        name = str(adaptation).lower()
        results[name] = {**_common.binary_metrics(y_test, p), "fit_seconds": fit_s}
        logger.info("%-12s %s", name, _fmt(results[name]))
        if adaptation is None:
            # balanced class weights: the model was fitted under a 50/50 prior
            pos = list(model.classes_).index("PNEUMONIA")
            proba = model.predict_proba(list(target_paths))
            adjusted, prior = em_prior(proba, [0.5, 0.5])
            results["em_prior"] = {
                **_common.binary_metrics(y_test, adjusted[:, pos]),
                "estimated_prior_pneumonia": float(prior[pos]),
                "true_prior_pneumonia": float(np.mean(y_test == "PNEUMONIA")),
            }
            logger.info("%-12s %s", "em_prior", _fmt(results["em_prior"]))
            clean = pneumonia_proba(model, list(data["paths"][test]))
            results["none_unshifted_test"] = _common.binary_metrics(y_test, clean)
            logger.info("%-12s %s", "unshifted", _fmt(results["none_unshifted_test"]))
    return results


def run_finetune(args, data, train, test, target_paths):
    from sklearn_cxr import PretrainedCNNClassifier

    y_test = data["y"][test]
    X = list(data["paths"][train]) + list(target_paths)
    y = np.concatenate([data["y"][train], np.full(len(test), "-1")])
    domains = np.r_[np.full(len(train), SOURCE), np.full(len(test), TARGET)]
    groups = np.concatenate([data["groups"][train], data["groups"][test]])
    results = {}
    for adaptation in args.methods:
        model = PretrainedCNNClassifier(
            backbone=_common.BACKBONE,
            weights=str(_common.WEIGHTS),
            mode="finetune",
            image_size=args.image_size,
            max_epochs=args.max_epochs,
            random_state=args.seed,
            adaptation=adaptation,
            coral_weight=args.coral_weight,
        )
        start = time.perf_counter()
        model.fit(X, y, groups=groups, sample_domain=domains)
        fit_s = time.perf_counter() - start
        p = pneumonia_proba(model, list(target_paths))
        results[adaptation] = {
            **_common.binary_metrics(y_test, p),
            "fit_seconds": fit_s,
            "epochs_run": len(model.history_),
        }
        logger.info("%-12s %s", adaptation, _fmt(results[adaptation]))
        if adaptation == "adabn":
            # the same network with its source BatchNorm statistics: no adaptation
            p0 = pneumonia_proba(model, list(target_paths), sample_domain=SOURCE)
            results["none"] = {**_common.binary_metrics(y_test, p0),
                               "note": "adabn's network, source statistics"}
            logger.info("%-12s %s", "none", _fmt(results["none"]))
            clean = pneumonia_proba(
                model, list(data["paths"][test]), sample_domain=SOURCE
            )
            results["none_unshifted_test"] = _common.binary_metrics(y_test, clean)
            logger.info("%-12s %s", "unshifted", _fmt(results["none_unshifted_test"]))
    return results


def _fmt(m):
    return (f"AUC {m['roc_auc']:.3f} acc {m['accuracy']:.3f} "
            f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["features", "finetune"])
    parser.add_argument("--preset", default="moderate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--detail-size", default=None,
                        help="feature mode's detail_size: an integer, 'auto' "
                        "or 'none' (default: the package's default)")
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--coral-weight", type=float, default=1.0)
    parser.add_argument("--methods", nargs="+", default=["adabn", "deepcoral"])
    parser.add_argument("--out", default=None)
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    data = shift.load_data()
    train, test = shift.proxy_split(data, seed=args.seed)
    train = shift._subset(train, data["y"], args.n_train, args.seed)
    test = shift._subset(test, data["y"], args.n_test, args.seed)
    target_paths = shifted_paths(data, test, args.preset, args.seed)
    payload = {
        "mode": args.mode,
        "args": vars(args),
        "n_train": len(train),
        "n_test": len(test),
        "machine": _common.machine(),
    }
    start = time.perf_counter()
    run = run_features if args.mode == "features" else run_finetune
    payload["results"] = run(args, data, train, test, target_paths)
    payload["wall_seconds"] = time.perf_counter() - start
    out = args.out or (
        f"adaptation_{args.mode}_{args.preset}_{args.image_size}px"
        f"_n{len(train)}_seed{args.seed}.json"
    )
    path = _common.save_json(out, payload)
    print(json.dumps(payload["results"], indent=1))
    print("written", path)


if __name__ == "__main__":
    main()
