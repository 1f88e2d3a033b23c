"""``sklearn-cxr train``: fit a classifier on a folder and save it."""

from __future__ import annotations

import time

from .._classifier import PretrainedCNNClassifier
from ._common import (
    add_model_options,
    check_names,
    check_output_file,
    echo,
    load_data_folder,
    save_model,
)

__all__ = ["add_train_command", "run_train"]


def add_train_command(commands, common):
    train = commands.add_parser(
        "train",
        parents=[common],
        help="train on a folder in the Kermany layout and save the model",
        description="Train a PretrainedCNNClassifier on DATA_DIR "
        "(DATA_DIR/{NORMAL,PNEUMONIA}/* or DATA_DIR/train/{NORMAL,PNEUMONIA}/*) "
        "and save it to MODEL in the safe format (or with joblib).",
    )
    train.add_argument("data_dir", metavar="DATA_DIR", help="the image folder")
    train.add_argument(
        "--out", required=True, metavar="MODEL", help="file to write, e.g. model.cxr"
    )
    add_model_options(train, mode_default="finetune", epochs_default=10,
                      size_default=224)
    train.add_argument(
        "--labels",
        choices=("binary", "subtype"),
        default="binary",
        help="NORMAL/PNEUMONIA, or normal/bacterial/viral from the file names "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--class-weight",
        choices=("none", "balanced"),
        default="balanced",
        help="'balanced' weighs classes inversely to their frequency "
        "(default: %(default)s)",
    )
    train.add_argument(
        "--joblib",
        action="store_true",
        help="save with joblib (a pickle: predict and evaluate then need "
        "--trust-pickle) instead of the safe format",
    )
    train.set_defaults(func=run_train)
    return train


def run_train(args):
    check_output_file(args.out)
    check_names(args)
    data = load_data_folder(args.data_dir, "train", labels=args.labels)
    y = data.target_names[data.target]
    model = PretrainedCNNClassifier(
        backbone=args.backbone,
        weights=args.weights,
        mode=args.mode,
        max_epochs=args.epochs,
        image_size=args.image_size,
        device=args.device,
        batch_size=args.batch_size,
        random_state=args.random_state,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        verbose=0 if args.quiet else 1,
    )
    counts = ", ".join(
        f"{name}: {int((y == name).sum())}" for name in data.target_names
    )
    echo(
        f"Training {args.backbone} ({args.mode}) on {len(y)} images of "
        f"{len(set(data.groups))} patients ({counts})"
    )
    start = time.perf_counter()
    model.fit(data.paths, y, groups=data.groups)
    echo(f"Trained in {time.perf_counter() - start:.1f} s")
    save_model(model, args.out, args.joblib)
    echo(f"Saved the model to {args.out}")
    return 0
