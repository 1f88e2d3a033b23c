"""How hard is ``make_chest_xrays``? Raw-pixel logistic regression vs a CNN.

Both models see the same patient-grouped split (about 300 training and 200
test images at 64 px). The CNN is ``PretrainedCNNClassifier`` trained from
scratch (``weights=None``) and, when the offline ImageNet weights are given,
fine-tuned from them.

It also times ``make_chest_xrays(200, image_size=128)``.

Usage::

    python benchmarks/synthetic_lr_vs_cnn.py [--epochs 15] [--skip-cnn]
        [--imagenet-weights PATH]
"""

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, GroupKFold, GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_cxr.datasets import make_chest_xrays


def report(name, y_true, proba, seconds):
    auc = roc_auc_score(y_true, proba)
    acc = accuracy_score(y_true, proba > 0.5)
    print(f"{name:<40s} ROC AUC {auc:.3f}  accuracy {acc:.3f}  ({seconds:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cnn", action="store_true")
    parser.add_argument("--imagenet-weights", default=None)
    args = parser.parse_args()

    times = []
    for _ in range(3):
        start = time.perf_counter()
        make_chest_xrays(200, image_size=128, random_state=0)
        times.append(time.perf_counter() - start)
    print(f"make_chest_xrays(200, image_size=128): best of 3 {min(times):.2f} s")

    data = make_chest_xrays(
        args.n_samples, image_size=args.image_size, random_state=args.seed
    )
    X, y, groups = data.images, data.target, data.groups
    split = GroupShuffleSplit(n_splits=1, test_size=0.4, random_state=args.seed)
    train, test = next(split.split(X, y, groups))
    print(
        f"{len(train)} training images ({len(np.unique(groups[train]))} patients), "
        f"{len(test)} test images ({len(np.unique(groups[test]))} patients); "
        f"pneumonia share {y.mean():.2f}"
    )

    start = time.perf_counter()
    flat = X.reshape(len(X), -1).astype(np.float32) / 255.0
    lr = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        {"logisticregression__C": np.logspace(-4, 0, 5)},
        cv=GroupKFold(n_splits=4),
        scoring="roc_auc",
    )
    lr.fit(flat[train], y[train], groups=groups[train])
    best_c = lr.best_params_["logisticregression__C"]
    report(
        f"logistic regression, raw pixels (C={best_c:g})",
        y[test],
        lr.predict_proba(flat[test])[:, 1],
        time.perf_counter() - start,
    )
    if args.skip_cnn:
        return

    from sklearn_cxr import PretrainedCNNClassifier

    configs = [
        (
            "resnet18 from scratch",
            dict(
                backbone="resnet18", weights=None, freeze_epochs=0, body_lr_factor=1
            ),
        )
    ]
    if args.imagenet_weights:
        configs.append(
            (
                "efficientnet-lite0 ImageNet, fine-tuned",
                dict(
                    backbone="timm:tf_efficientnet_lite0",
                    weights=args.imagenet_weights,
                ),
            )
        )
    for name, params in configs:
        start = time.perf_counter()
        clf = PretrainedCNNClassifier(
            image_size=args.image_size,
            max_epochs=args.epochs,
            batch_size=32,
            device="cpu",
            random_state=args.seed,
            **params,
        )
        clf.fit(X[train], y[train], groups=groups[train])
        proba = clf.predict_proba(X[test])[:, list(clf.classes_).index(1)]
        report(name, y[test], proba, time.perf_counter() - start)


if __name__ == "__main__":
    main()
