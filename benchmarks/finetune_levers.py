"""Finetune-mode levers of issue 10 on patient-grouped subsets of the real X-rays.

Each run draws ``--n-train`` training images by whole patients and
``--n-test`` test images from the other patients (stratified), fits
``PretrainedCNNClassifier`` at the scored shape (offline EfficientNet-Lite0,
``image_size=128``, ``max_epochs=4``; every other parameter at its default
unless the candidate sets it) and scores the held-out patients, and, where the
acquisition-shift proxy of ``benchmarks/`` is importable (``--shift``), the
same patients' images sent through other acquisition pipelines
(``--shift moderate``). Test-time
augmentation is a predict-time parameter, so each fitted model is also scored
with every ``--tta`` setting at no extra fit.

    # item 5: small training sets (300 images, other patients test)
    python benchmarks/finetune_levers.py --n-train 300 --seeds 0 1 2 \\
        --candidates 'default={}' 'vf025={"validation_fraction": 0.25}' \\
        'novalid={"validation_fraction": null}' --out small_data.json
    # item 2: levers on ~1,000 images
    python benchmarks/finetune_levers.py --n-train 1000 --seeds 0 \\
        --candidates 'base={}' 'acq={"augment": "acquisition"}' \\
        --tta false true --out levers.json

    # both modes at the scored setting, with label-free adaptation to each
    # shifted test set (AdaBN / per-site standardisation), models kept
    python benchmarks/finetune_levers.py --n-train 4100 --n-test 1000 \\
        --shift moderate severe heldout --adapt --save-dir models \\
        --candidates 'acq={"augment": "acquisition"}' \\
        'feat={"mode": "features", "image_size": 224}' --out scored.json

``--shift heldout`` is ``shift_levers.HELDOUT_PRESET``; any pipeline string
of ``simulate_acquisition`` (``markers:3``, ``zoom_out:2+resample:2``) works.
``--reuse`` loads a model saved by an earlier run with ``--save-dir`` and
scores it again instead of refitting.

Candidates are ``name=<JSON of constructor parameters>``. Results (one row
per candidate and seed, with the per-epoch history) go to
``benchmarks/results/<out>``, rewritten after every fit;
``python benchmarks/finetune_levers.py --print <out>`` prints one as a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

logger = logging.getLogger("finetune_levers")

SCORED = {"image_size": 128, "max_epochs": 4}


def split(data, n_train, n_test, seed):
    """Train indices (~n_train images, whole patients) and test indices
    (n_test images of other patients, stratified by label)."""
    rng = np.random.RandomState(seed)
    patients = np.unique(data["groups"])
    rng.shuffle(patients)
    sizes = dict(zip(*np.unique(data["groups"], return_counts=True)))
    chosen, count = [], 0
    for g in patients:
        if count >= n_train:
            break
        chosen.append(g)
        count += sizes[g]
    train = np.flatnonzero(np.isin(data["groups"], chosen))
    rest = np.flatnonzero(~np.isin(data["groups"], chosen))
    y = data["y"][rest]
    test = []
    for label in np.unique(y):
        members = rest[y == label]
        k = int(round(n_test * len(members) / len(rest)))
        test.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return train, np.sort(np.concatenate(test))


def simulate_none(paths, seed):
    """The images of ``paths`` as arrays, through the proxy's ``"none"``."""
    return load_shift()(paths, "none", random_state=seed)


def load_shift():
    """``simulate_acquisition`` of the acquisition-shift proxy.

    From :mod:`sklearn_cxr.datasets` once merged; before that, from the file
    named by ``SKLEARN_CXR_SHIFT_MODULE`` (the proxy's ``_shift.py``).
    """
    try:
        from sklearn_cxr.datasets import simulate_acquisition
    except ImportError:
        import importlib.util
        import os

        path = os.environ.get("SKLEARN_CXR_SHIFT_MODULE")
        if not path:
            raise SystemExit(
                "--shift needs sklearn_cxr.datasets.simulate_acquisition or "
                "SKLEARN_CXR_SHIFT_MODULE=<path to _shift.py>."
            ) from None
        spec = importlib.util.spec_from_file_location("_shift", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        simulate_acquisition = module.simulate_acquisition
    return simulate_acquisition


def adabn_proba(clf, images, seed):
    """Probabilities after ``adaptation="adabn"`` to ``images`` as the target.

    The package re-estimates BatchNorm statistics on the target images *after*
    training, so the weights of an AdaBN fit are those of the plain fit with
    the same seed: this applies the package's own re-estimation
    (:func:`sklearn_cxr._adapt_finetune.reestimate_batchnorm`, with the
    estimator's inference transform, as ``fit(..., sample_domain=...)``
    does) to a copy of the fitted model, so that one fit serves every target.
    """
    import copy

    from sklearn_cxr._adapt_finetune import reestimate_batchnorm
    from sklearn_cxr._images import ImageDataset, check_images

    adapted = copy.deepcopy(clf)
    module = getattr(adapted.net_.module_, "module", adapted.net_.module_)
    collection = check_images(images)
    reestimate_batchnorm(
        module, ImageDataset(collection, transform=adapted._eval_transform()),
        batch_size=adapted.batch_size, device=adapted.net_.device,
        num_workers=adapted.num_workers, seed=seed)
    return adapted.predict_proba(images)


def adapted_proba(clf, images, seed, source):
    """``(method, probabilities)`` after label-free adaptation to ``images``.

    Finetune mode: :func:`adabn_proba`. Feature mode: a fit of a clone with
    ``adaptation="auto"`` (per-site standardisation of the embeddings) on
    the ``source`` images and labels, with ``images`` as the unlabelled
    target (``sample_domain=-2``, label ``"-1"``); its embeddings come from
    the model's ``memory`` cache when it has one.
    """
    if clf.mode_fitted_ == "finetune":
        return "adabn", adabn_proba(clf, images, seed)
    from sklearn.base import clone

    X_source, y_source = source
    model = clone(clf).set_params(adaptation="auto")
    X = list(X_source) + list(images)
    y = np.concatenate([y_source, np.full(len(images), "-1")])
    domains = np.concatenate([np.ones(len(X_source), dtype=int),
                              np.full(len(images), -2)])
    model.fit(X, y, sample_domain=domains)
    return model.adaptation_["method"], model.predict_proba(images)


def score(y_true, proba, classes):
    p = proba[:, list(classes).index("PNEUMONIA")]
    return _common.binary_metrics(y_true, p)


def run(data, train, test, params, seed, tta_settings, shifted, adapt=False,
        save=None, reuse=False):
    from sklearn_cxr import PretrainedCNNClassifier

    kwargs = {**SCORED, **params}
    clf = PretrainedCNNClassifier(
        backbone=_common.BACKBONE, weights=str(_common.WEIGHTS),
        random_state=seed, **kwargs,
    )
    paths, y, groups = data["paths"], data["y"], data["groups"]
    start = time.perf_counter()
    loaded = save is not None and reuse and Path(save).exists()
    if loaded:
        clf = PretrainedCNNClassifier.load(save)  # scored again, not refitted
        logger.info("loaded %s instead of fitting", save)
    else:
        clf.fit(list(paths[train]), y[train], groups=groups[train])
        if save is not None:
            clf.save(save)  # to score or inspect the same model again
    history = clf.history_ if clf.mode_fitted_ == "finetune" else []
    out = {
        "params": kwargs, "seed": seed,
        "n_train": int(len(train)), "n_test": int(len(test)),
        "fit_seconds": None if loaded else time.perf_counter() - start,
        "epochs_run": len(history),
        "history": [
            {k: row.get(k) for k in ("epoch", "train_loss", "valid_loss",
                                     "valid_auc", "dur")}
            for row in history
        ],
        "load_avg": list(__import__("os").getloadavg()),
        "scores": {},
    }
    source = None
    for tta in tta_settings:
        if tta is not None:
            clf.set_params(tta=tta)
        key = f"tta={json.dumps(tta)}"
        start = time.perf_counter()
        proba = clf.predict_proba(list(paths[test]))
        out["scores"][key] = {"clean": score(y[test], proba, clf.classes_),
                              "predict_seconds": time.perf_counter() - start}
        for name, images in shifted.items():
            proba = clf.predict_proba(images)
            out["scores"][key][name] = score(y[test], proba, clf.classes_)
            if adapt:
                if source is None:  # in-memory, like the shifted targets
                    source = (simulate_none(list(paths[train]), seed), y[train])
                method, proba = adapted_proba(clf, images, seed, source)
                out["scores"][key][f"{name}+{method}"] = score(
                    y[test], proba, clf.classes_)
    return out


def print_table(name):
    """One line per run and scored test set: ROC AUC, accuracy, sens., spec."""
    with open(_common.RESULTS_DIR / name) as handle:
        payload = json.load(handle)
    for run in payload["runs"]:
        best = [h["epoch"] for h in run["history"] if h.get("valid_auc") is not None]
        aucs = [round(h["valid_auc"], 3) for h in run["history"]
                if h.get("valid_auc") is not None]
        if aucs:
            kept = best[int(np.argmax(aucs))]
        else:  # no validation split, or feature mode (no epochs)
            kept = run["history"][-1]["epoch"] if run["history"] else None
        for tta, sets in run["scores"].items():
            for test_set, m in sets.items():
                if not isinstance(m, dict):
                    continue
                print(f"{run['candidate']:10s} seed {run['seed']} {tta:16s} "
                      f"{test_set:9s} auc {m['roc_auc']:.3f} acc {m['accuracy']:.3f} "
                      f"sens {m['sensitivity']:.3f} spec {m['specificity']:.3f} | "
                      f"fit {run['fit_seconds'] or float('nan'):.0f} s, "
                      f"epochs {run['epochs_run']}, "
                      f"kept epoch {kept}, valid_auc {aucs}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--print":
        return print_table(sys.argv[2])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--candidates", nargs="+", default=["default={}"])
    parser.add_argument("--tta", nargs="+", default=[None],
                        help="JSON values of tta to score each model with")
    parser.add_argument("--shift", nargs="*", default=[],
                        help="also score the test images through these presets "
                        "of the acquisition-shift proxy (mild, moderate, severe)")
    parser.add_argument("--adapt", "--adabn", dest="adapt", action="store_true",
                        help="also score each --shift test set after label-free "
                        "adaptation to its images as the target: AdaBN in "
                        "finetune mode, adaptation='auto' in feature mode")
    parser.add_argument("--save-dir", default=None,
                        help="save each fitted model there as "
                        "<candidate>_seed<seed>.cxr")
    parser.add_argument("--reuse", action="store_true",
                        help="load a model already saved in --save-dir instead "
                        "of fitting it again (its fit time is then not measured)")
    parser.add_argument("--out", required=True)
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    data = _common.load_data()
    candidates = []
    for item in args.candidates:
        name, _, params = item.partition("=")
        candidates.append((name, json.loads(params or "{}")))
    tta_settings = [None if t in (None, "none") else json.loads(t)
                    for t in args.tta]
    payload = {"machine": _common.machine(), "argv": sys.argv[1:], "runs": []}
    for seed in args.seeds:
        train, test = split(data, args.n_train, args.n_test, seed)
        shifted = {}
        if args.shift:
            from shift_levers import HELDOUT_PRESET

            simulate = load_shift()
            shifted = {
                level: simulate(list(data["paths"][test]),
                                HELDOUT_PRESET if level == "heldout" else level,
                                random_state=seed)
                for level in args.shift
            }
        for name, params in candidates:
            logger.info("seed %d candidate %s: %d train, %d test images",
                        seed, name, len(train), len(test))
            result = run(data, train, test, params, seed, tta_settings, shifted,
                         adapt=args.adapt,
                         save=None if args.save_dir is None else
                         Path(args.save_dir) / f"{name}_seed{seed}.cxr",
                         reuse=args.reuse)
            result["candidate"] = name
            payload["runs"].append(result)
            path = _common.save_json(args.out, payload)
            logger.info("%s seed %d: %s (fit %.0f s, %d epochs) -> %s", name, seed,
                        {k: round(v["clean"]["roc_auc"], 4)
                         for k, v in result["scores"].items()},
                        result["fit_seconds"] or float("nan"),
                        result["epochs_run"], path)
    payload["machine"]["load_avg_end"] = list(__import__("os").getloadavg())
    _common.save_json(args.out, payload)


if __name__ == "__main__":
    main()
