"""Patient-grouped cross-validation and an acquisition-shift proxy on real X-rays.

Data: the 5,216 training images of Kermany et al. (``SKLEARN_CXR_DATA``),
patients from the file names (``person<ID>``, ``IM-<ID>``,
``NORMAL2-IM-<ID>``). Backbone: EfficientNet-Lite0 (``timm``) with the offline
ImageNet weights (``SKLEARN_CXR_WEIGHTS``) or random initialisation.

Protocols
---------
cv
    ``StratifiedGroupKFold`` (by patient), ``--n-splits`` folds.
shift
    Whole acquisition batches of normal images held out: ``NORMAL2->IM``
    trains on the ``NORMAL2-IM-`` normals plus 80% of the pneumonia patients
    and tests on the ``IM-`` normals plus the other 20%; ``IM->NORMAL2`` is
    the reverse. A proxy for the official test split, whose normals frozen
    features call pneumonia far too often.

Metrics: ROC AUC, accuracy, sensitivity, specificity at probability 0.5 and at
an operating point chosen on the training side only (feature mode: the
equal-error threshold of patient-grouped out-of-fold probabilities of the
training fold; finetune mode: the equal-error threshold on 15% of the training
patients held out from that fit), fit and predict seconds.

Feature mode: the embeddings of ``PretrainedFeatures`` do not depend on the
training fold (the backbone is frozen), so they are computed once per
preprocessing and cached in ``SKLEARN_CXR_BENCH_CACHE``; each fold then fits
``StandardScaler`` + ``LogisticRegression(max_iter=1000)``, which is what
``PretrainedCNNClassifier(mode="features")`` does after embedding
(``--check-equivalence`` verifies it on a few images). Fit time = embedding
time of the training images (measured throughput) + scaler and final
estimator time.

    # --quick: 800 images (features); 300 at 64 px, 2 epochs (finetune); 3 folds
    python benchmarks/accuracy.py --quick
    python benchmarks/accuracy.py --modes features        # full 5-fold, features
    python benchmarks/accuracy.py --modes finetune        # hours on 2 cores
    python benchmarks/accuracy.py --labels subtype --modes features
    python benchmarks/accuracy.py --recipe features       # candidate defaults
    python benchmarks/accuracy.py --recipe finetune --n-images 1600
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

logger = logging.getLogger("accuracy")

FINETUNE_SCORED = {"image_size": 128, "max_epochs": 4}


# ----------------------------------------------------------------- embeddings
def embed(data, idx, *, weights, image_size=224, equalize=False, in_chans=3,
          seed=0):
    """Embeddings of ``data["paths"][idx]``, cached on disk."""
    from sklearn_cxr import PretrainedFeatures

    idx = np.asarray(idx)
    tag = (f"{image_size}px_eq{int(equalize)}_c{in_chans}"
           + ("" if weights else f"_random{seed}"))
    full = _common.CACHE_DIR / f"emb_{tag}.npz"
    if full.exists():
        cached = np.load(full, allow_pickle=False)
        if len(cached["paths"]) == len(data["paths"]) and np.array_equal(
            cached["paths"], data["paths"]
        ):
            return cached["embeddings"][idx], None
    key = hashlib.sha256(idx.tobytes()).hexdigest()[:12]
    part = _common.CACHE_DIR / f"emb_{tag}_{key}.npz"
    if part.exists():
        cached = np.load(part)
        return cached["embeddings"], float(cached["seconds_per_image"])
    feats = PretrainedFeatures(
        backbone=_common.BACKBONE, weights=str(_common.WEIGHTS) if weights else None,
        image_size=image_size, equalize=equalize, in_chans=in_chans,
        random_state=seed,
    ).fit()
    start = time.perf_counter()
    out = feats.transform(list(data["paths"][idx]))
    per_image = (time.perf_counter() - start) / len(idx)
    _common.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(part, embeddings=out, seconds_per_image=per_image)
    logger.info("embedded %d images (%s): %.3f s/image", len(idx), tag, per_image)
    return out, per_image


def feature_head(C=1.0, standardize=True, class_weight=None, seed=0):
    """What mode="features" fits on the embeddings (StandardScaler + LR)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(max_iter=1000, C=C, class_weight=class_weight,
                            random_state=seed)
    return make_pipeline(StandardScaler(), lr) if standardize else lr


# -------------------------------------------------------------------- metrics
def score_binary(y_true, p_pos, threshold):
    return {
        "at_0.5": _common.binary_metrics(y_true, p_pos, 0.5),
        "at_operating_point": _common.binary_metrics(y_true, p_pos, threshold),
    }


def score_subtype(y_sub, proba, classes):
    """Three-class scores: accuracy, OvR AUC, normal-vs-pneumonia, bact-vs-viral."""
    from sklearn.metrics import roc_auc_score

    classes = list(classes)
    pred = np.asarray(classes)[proba.argmax(1)]
    out = {
        "accuracy": float(np.mean(pred == y_sub)),
        "roc_auc_ovr_macro": float(
            roc_auc_score(y_sub, proba, multi_class="ovr", labels=classes)
        ),
    }
    pneu = y_sub != "normal"
    out["normal_vs_pneumonia_auc"] = float(
        roc_auc_score(pneu, 1 - proba[:, classes.index("normal")])
    )
    b, v = classes.index("bacteria"), classes.index("virus")
    pv = proba[pneu, v] / np.clip(proba[pneu, v] + proba[pneu, b], 1e-12, None)
    out["bacteria_vs_virus_auc"] = float(roc_auc_score(y_sub[pneu] == "virus", pv))
    sub = np.where(proba[pneu, v] > proba[pneu, b], "virus", "bacteria")
    out["bacteria_vs_virus_accuracy"] = float(np.mean(sub == y_sub[pneu]))
    return out


def summarise(folds):
    """Mean and std over folds of every numeric leaf."""
    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}.")
            elif isinstance(v, (int, float)):
                yield f"{prefix}{k}", v

    table = {}
    for fold in folds:
        for k, v in leaves(fold):
            table.setdefault(k, []).append(v)
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v))}
            for k, v in table.items()}


# ------------------------------------------------------------------- runners
def run_features(data, train, test, *, labels, weights, prep, head, seed=0):
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    y = data["y"] if labels == "binary" else data["subtype"]
    idx = np.r_[train, test]
    E, per_image = embed(data, np.sort(idx), weights=weights, seed=seed, **prep)
    pos = {i: k for k, i in enumerate(np.sort(idx))}
    Etr = E[[pos[i] for i in train]]
    Ete = E[[pos[i] for i in test]]
    model = feature_head(seed=seed, **head)
    start = time.perf_counter()
    model.fit(Etr, y[train])
    head_fit = time.perf_counter() - start
    start = time.perf_counter()
    proba = model.predict_proba(Ete)
    head_predict = time.perf_counter() - start
    if per_image is None:
        per_image = _embed_seconds_per_image(prep)
    out = {
        "n_train": int(len(train)), "n_test": int(len(test)),
        "fit_seconds": head_fit + per_image * len(train),
        "predict_seconds": head_predict + per_image * len(test),
        "final_estimator_fit_seconds": head_fit,
        "embedding_seconds_per_image": per_image,
    }
    if labels == "binary":
        classes = list(model.classes_)
        inner = StratifiedGroupKFold(3, shuffle=True, random_state=seed)
        oof = cross_val_predict(clone(model), Etr, y[train], cv=inner,
                                groups=data["groups"][train],
                                method="predict_proba")
        threshold = _common.balanced_threshold(
            y[train], oof[:, classes.index("PNEUMONIA")]
        )
        out.update(score_binary(y[test], proba[:, classes.index("PNEUMONIA")],
                                threshold))
    else:
        out.update(score_subtype(y[test], proba, model.classes_))
    return out


def _embed_seconds_per_image(prep):
    """Throughput of the full-set embedding run (feature_mode_memory.py)."""
    tag = f"{prep.get('image_size', 224)}px_eq{int(prep.get('equalize', False))}"
    tag += f"_c{prep.get('in_chans', 3)}"
    path = _common.RESULTS_DIR / f"feature_mode_memory_{tag}.json"
    if path.exists():
        with open(path) as fh:
            return 1.0 / json.load(fh)["images_per_second"]
    return float("nan")


def run_finetune(data, train, test, *, labels, weights, params, seed=0):
    from sklearn.model_selection import GroupShuffleSplit

    from sklearn_cxr import PretrainedCNNClassifier

    y = data["y"] if labels == "binary" else data["subtype"]
    groups = data["groups"]
    fit_idx = train
    threshold_idx = None
    if labels == "binary":
        gss = GroupShuffleSplit(1, test_size=0.15, random_state=seed)
        a, b = next(gss.split(train, groups=groups[train]))
        fit_idx, threshold_idx = train[a], train[b]
    kwargs = {**FINETUNE_SCORED, **params}
    clf = PretrainedCNNClassifier(
        backbone=_common.BACKBONE,
        weights=str(_common.WEIGHTS) if weights else None,
        random_state=seed, **kwargs,
    )
    paths = data["paths"]
    start = time.perf_counter()
    clf.fit(list(paths[fit_idx]), y[fit_idx], groups=groups[fit_idx])
    fit_s = time.perf_counter() - start
    tta = params.get("_tta", False)
    start = time.perf_counter()
    proba = clf.predict_proba(list(paths[test]))
    predict_s = time.perf_counter() - start
    del tta
    out = {
        "n_train": int(len(fit_idx)), "n_test": int(len(test)),
        "fit_seconds": fit_s, "predict_seconds": predict_s,
        "epochs_run": len(clf.history_),
        "history": [
            {k: row.get(k) for k in ("epoch", "train_loss", "valid_auc", "dur")}
            for row in clf.history_
        ],
        "params": kwargs,
    }
    classes = list(clf.classes_)
    if labels == "binary":
        p_thr = clf.predict_proba(list(paths[threshold_idx]))
        threshold = _common.balanced_threshold(
            y[threshold_idx], p_thr[:, classes.index("PNEUMONIA")]
        )
        out.update(score_binary(y[test], proba[:, classes.index("PNEUMONIA")],
                                threshold))
    else:
        out.update(score_subtype(y[test], proba, classes))
    return out


def protocol_splits(data, protocol, n_splits, idx, seed=0, labels="binary"):
    from sklearn.model_selection import StratifiedGroupKFold

    if protocol == "cv":
        y = data["y"] if labels == "binary" else data["subtype"]
        cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
        for k, (tr, te) in enumerate(cv.split(idx, y[idx], data["groups"][idx])):
            yield f"fold{k}", idx[tr], idx[te]
    else:
        keep = set(idx.tolist())
        for name, (tr, te) in _common.shift_splits(data, seed=seed).items():
            yield name, np.array([i for i in tr if i in keep]), np.array(
                [i for i in te if i in keep]
            )


def subsample(data, n, seed=0):
    """About ``n`` images drawn by whole patients, stratified by subtype."""
    if n is None or n >= len(data["paths"]):
        return np.arange(len(data["paths"]))
    rng = np.random.RandomState(seed)
    patients = np.unique(data["groups"])
    rng.shuffle(patients)
    chosen, count = [], 0
    sizes = {g: c for g, c in zip(*np.unique(data["groups"], return_counts=True))}
    for g in patients:
        if count >= n:
            break
        chosen.append(g)
        count += sizes[g]
    return np.flatnonzero(np.isin(data["groups"], chosen))


def check_equivalence(data, seed=0):
    """mode="features" and the cached-embedding head give the same scores."""
    from sklearn_cxr import PretrainedCNNClassifier

    idx = subsample(data, 48, seed=1)
    tr, te = idx[::2], idx[1::2]
    clf = PretrainedCNNClassifier(
        backbone=_common.BACKBONE, weights=str(_common.WEIGHTS), mode="features",
        random_state=seed,
    ).fit(list(data["paths"][tr]), data["y"][tr])
    p_clf = clf.predict_proba(list(data["paths"][te]))
    E, _ = embed(data, np.sort(idx), weights=True)
    pos = {i: k for k, i in enumerate(np.sort(idx))}
    head = feature_head(seed=seed).fit(E[[pos[i] for i in tr]], data["y"][tr])
    p_head = head.predict_proba(E[[pos[i] for i in te]])
    diff = float(np.abs(p_clf - p_head).max())
    logger.info("equivalence: max |proba difference| = %.2e", diff)
    return diff


# ------------------------------------------------------------------- recipes
FEATURE_CANDIDATES = {
    "default": ({}, {}),
    "C=0.1": ({}, {"C": 0.1}),
    "C=0.01": ({}, {"C": 0.01}),
    "C=0.001": ({}, {"C": 0.001}),
    "no_standardize": ({}, {"standardize": False}),
    "class_weight=balanced": ({}, {"class_weight": "balanced"}),
    "C=0.01+balanced": ({}, {"C": 0.01, "class_weight": "balanced"}),
    "equalize": ({"equalize": True}, {}),
    "equalize+C=0.01": ({"equalize": True}, {"C": 0.01}),
    "equalize+C=0.01+balanced": (
        {"equalize": True}, {"C": 0.01, "class_weight": "balanced"}
    ),
    "equalize+balanced": ({"equalize": True}, {"class_weight": "balanced"}),
    "in_chans=1": ({"in_chans": 1}, {}),
}

FINETUNE_CANDIDATES = {
    "default": {},
    "equalize": {"equalize": True},
    "class_weight=balanced": {"class_weight": "balanced"},
    "in_chans=1": {"in_chans": 1},
    "freeze_epochs=0": {"freeze_epochs": 0},
    "lr=3e-4": {"lr": 3e-4},
    "dropout=0.3": {"dropout": 0.3},
    "augment=False": {"augment": False},
    "validation_fraction=None": {"validation_fraction": None},
    "balanced+equalize": {"class_weight": "balanced", "equalize": True},
    "balanced+lr=3e-4": {"class_weight": "balanced", "lr": 3e-4},
    "balanced+freeze_epochs=0": {"class_weight": "balanced", "freeze_epochs": 0},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="subsample, 3 folds; finishes in < 15 min")
    parser.add_argument("--modes", nargs="+", default=["features", "finetune"])
    parser.add_argument("--init", nargs="+", default=["imagenet", "random"])
    parser.add_argument("--protocols", nargs="+", default=["cv", "shift"])
    parser.add_argument("--labels", choices=["binary", "subtype"],
                        default="binary")
    parser.add_argument("--n-splits", type=int, default=5)
    parser.add_argument("--n-images", type=int, default=None,
                        help="subsample of about N images, by patient")
    parser.add_argument("--finetune-n-images", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None,
                        help="finetune image size (default 128, as scored)")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--recipe", choices=["features", "finetune"],
                        default=None, help="compare candidate defaults")
    parser.add_argument("--candidates", nargs="+", default=None)
    parser.add_argument("--splits", nargs="+", default=None,
                        help="only these folds / shift directions, e.g. NORMAL2->IM")
    parser.add_argument("--check-equivalence", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="results JSON file name")
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("sklearn_cxr").setLevel(logging.WARNING)

    if args.quick:
        args.n_images = args.n_images or 800
        args.finetune_n_images = args.finetune_n_images or 300
        args.n_splits = 3
        args.image_size = args.image_size or 64
        args.max_epochs = args.max_epochs or 2
    data = _common.load_data()
    started = time.perf_counter()
    result = {"machine": _common.machine(), "args": vars(args),
              "command": "python benchmarks/accuracy.py "
              + " ".join(argv if argv is not None else sys.argv[1:]),
              "runs": {}}
    out_name = args.out or (
        f"accuracy_{'quick_' if args.quick else ''}"
        f"{args.recipe + '_recipe_' if args.recipe else ''}{args.labels}.json"
    )

    def save():
        result["total_seconds"] = time.perf_counter() - started
        _common.save_json(out_name, result)

    if args.check_equivalence:
        result["equivalence_max_abs_diff"] = check_equivalence(data, args.seed)
        save()

    ft_params = {}
    if args.image_size:
        ft_params["image_size"] = args.image_size
    if args.max_epochs:
        ft_params["max_epochs"] = args.max_epochs

    jobs = []  # (name, mode, init, extra)
    if args.recipe == "features":
        names = args.candidates or list(FEATURE_CANDIDATES)
        jobs = [(f"features/{n}", "features", "imagenet", FEATURE_CANDIDATES[n])
                for n in names]
    elif args.recipe == "finetune":
        names = args.candidates or list(FINETUNE_CANDIDATES)
        jobs = [(f"finetune/{n}", "finetune", "imagenet",
                 {**ft_params, **FINETUNE_CANDIDATES[n]}) for n in names]
    else:
        for mode in args.modes:
            for init in args.init:
                extra = ({}, {}) if mode == "features" else ft_params
                jobs.append((f"{mode}/{init}", mode, init, extra))

    for name, mode, init, extra in jobs:
        n = args.finetune_n_images if mode == "finetune" else None
        idx = subsample(data, n or args.n_images, seed=args.seed)
        for protocol in args.protocols:
            if args.labels == "subtype" and protocol == "shift":
                continue
            folds = {}
            for split, tr, te in protocol_splits(
                data, protocol, args.n_splits, idx, args.seed, args.labels
            ):
                if args.splits and split not in args.splits:
                    continue
                t0 = time.perf_counter()
                if mode == "features":
                    prep, head = extra
                    folds[split] = run_features(
                        data, tr, te, labels=args.labels,
                        weights=init == "imagenet", prep=prep, head=head,
                        seed=args.seed,
                    )
                else:
                    folds[split] = run_finetune(
                        data, tr, te, labels=args.labels,
                        weights=init == "imagenet", params=extra, seed=args.seed,
                    )
                logger.info("%s %s %s done in %.0fs: %s", name, protocol, split,
                            time.perf_counter() - t0, _brief(folds[split]))
                key = f"{name}/{protocol}"
                result["runs"][key] = {"folds": folds, "summary": summarise(
                    list(folds.values())) if protocol == "cv" else None}
                save()
    save()
    print(json.dumps({k: _brief_run(v) for k, v in result["runs"].items()},
                     indent=1))


def _brief(fold):
    if "at_0.5" in fold:
        a, b = fold["at_0.5"], fold["at_operating_point"]
        return (f"auc {a['roc_auc']:.3f} acc {a['accuracy']:.3f} sens "
                f"{a['sensitivity']:.3f} spec {a['specificity']:.3f} | op "
                f"acc {b['accuracy']:.3f} sens {b['sensitivity']:.3f} spec "
                f"{b['specificity']:.3f}")
    return (f"acc {fold['accuracy']:.3f} auc {fold['roc_auc_ovr_macro']:.3f} "
            f"b-vs-v auc {fold['bacteria_vs_virus_auc']:.3f}")


def _brief_run(run):
    return {k: _brief(v) for k, v in run["folds"].items()}


if __name__ == "__main__":
    main()
