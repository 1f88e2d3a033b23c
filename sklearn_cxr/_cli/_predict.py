"""``sklearn-cxr predict``: label and probabilities of each image."""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

from .._image_files import list_image_files
from .._images import IMAGE_EXTENSIONS, read_image
from .._labels import plain_label, resolve_positive_label
from ._common import (
    EXIT_SKIPPED,
    PROG,
    CommandError,
    add_pos_label,
    add_trust_pickle,
    check_output_file,
    disease_class,
    load_model,
    one_line,
    probability,
    set_verbosity,
)

__all__ = ["add_predict_command", "image_files", "predict_rows", "run_predict"]


def add_predict_command(commands, common):
    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="label and probability of each image",
        description="Predict the label of each image (folders are searched "
        "recursively for image files).",
    )
    predict.add_argument("model", metavar="MODEL", help="a model saved by train")
    predict.add_argument(
        "inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders"
    )
    predict.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="-",
        help="write CSV to FILE ('-': standard output; default: %(default)s): a "
        "header, then one row per image: path, label, p_<class> for each class, "
        "threshold",
    )
    predict.add_argument(
        "--json", action="store_true", help="write JSON instead of CSV"
    )
    add_trust_pickle(predict)
    predict.add_argument(
        "--threshold",
        type=probability,
        default=None,
        metavar="T",
        help="binary models: call an image positive (the disease, see "
        "--pos-label) when its probability is at least T (default: 0.5; models "
        "of more classes: the most probable class)",
    )
    add_pos_label(predict)
    predict.add_argument(
        "--skip-bad",
        action="store_true",
        help="predict the readable images and list the unreadable ones with "
        f"their reasons on stderr; the exit status is then {EXIT_SKIPPED} when "
        "some were skipped (without it, one unreadable image stops the "
        "command)",
    )
    predict.set_defaults(func=run_predict)
    return predict


def image_files(inputs):
    """The files named, and the image files found in the folders named."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = list_image_files(item)
            if not found:
                raise CommandError(
                    f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder "
                    f"{item!r}"
                )
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise CommandError(f"no such file or folder: {item!r}")
    return files


def _readable(files):
    """Split ``files`` into readable ones and ``(path, reason)`` of the rest."""
    good, bad = [], []
    for path in files:
        try:
            read_image(path)
        except (OSError, ValueError) as exc:
            bad.append((path, one_line(exc)))
        else:
            good.append(path)
    return good, bad


def _positive_class(classes, args):
    """The disease class a threshold applies to, or None (most probable)."""
    if len(classes) != 2:
        for option, value in (("--threshold", args.threshold),
                              ("--pos-label", args.pos_label)):
            if value is not None:
                raise CommandError(
                    f"{option} needs a binary model; this one has classes "
                    f"{classes}"
                )
        return None
    if args.threshold is None and args.pos_label is None:
        try:
            return resolve_positive_label(classes)
        except ValueError:
            return None  # the most probable class needs no positive class
    return disease_class(classes, args.pos_label)


def predict_rows(model, files, threshold, positive):
    """One dict per image: path, label, its probability, all probabilities."""
    classes = [plain_label(c) for c in model.classes_]
    proba = model.predict_proba(files)
    if positive is not None:
        threshold = 0.5 if threshold is None else threshold
        negative = next(c for c in classes if c != positive)
        column = proba[:, classes.index(positive)]
        labels = [positive if p >= threshold else negative for p in column]
    else:
        labels = [classes[k] for k in np.argmax(proba, axis=1)]
    return [
        {
            "path": path,
            "label": label,
            "probability": float(p[classes.index(label)]),
            "probabilities": {str(c): float(v) for c, v in zip(classes, p)},
            "threshold": threshold,
        }
        for path, label, p in zip(files, labels, proba)
    ]


def _write_csv(handle, classes, rows):
    writer = csv.writer(handle)
    writer.writerow(
        ["path", "label", *(f"p_{c}" for c in classes), "threshold"]
    )
    for row in rows:
        threshold = row["threshold"]
        writer.writerow(
            [
                row["path"],
                row["label"],
                *(repr(row["probabilities"][str(c)]) for c in classes),
                "" if threshold is None else repr(threshold),
            ]
        )


def _emit(args, handle, classes, rows):
    if args.json:
        # the skipped images are listed on stderr, as with CSV
        handle.write(json.dumps(rows, indent=2) + "\n")
    else:
        _write_csv(handle, classes, rows)
    handle.flush()


def run_predict(args):
    model = load_model(args.model, args.trust_pickle)
    set_verbosity(model, 0 if args.quiet else 1)
    if args.output != "-":
        check_output_file(args.output, option="--output")
    classes = [plain_label(c) for c in model.classes_]
    positive = _positive_class(classes, args)
    files = image_files(args.inputs)
    skipped = []
    if args.skip_bad:
        files, skipped = _readable(files)
        for path, reason in skipped:
            print(f"{PROG} predict: skipped {path}: {reason}", file=sys.stderr)
        if not files:
            raise CommandError(
                f"none of the {len(skipped)} images could be read (see above)"
            )
    try:
        rows = predict_rows(model, files, args.threshold, positive)
    except (OSError, ValueError) as exc:
        if args.skip_bad:
            raise
        raise CommandError(
            f"{one_line(exc)} (pass --skip-bad to predict the other images)"
        ) from exc
    if args.output == "-":
        _emit(args, sys.stdout, classes, rows)
    else:
        with open(args.output, "w", newline="", encoding="utf-8") as handle:
            _emit(args, handle, classes, rows)
        print(
            f"{PROG} predict: wrote {len(rows)} predictions to {args.output}",
            file=sys.stderr,
        )
    if skipped:
        print(
            f"{PROG} predict: {len(skipped)} of {len(skipped) + len(rows)} "
            f"images skipped (exit status {EXIT_SKIPPED})",
            file=sys.stderr,
        )
        return EXIT_SKIPPED
    return 0
