"""What the commands share: errors, option types and options, model files."""

from __future__ import annotations

import argparse
import os
import zipfile

from .._backbones import check_backbone_name
from .._classifier import PretrainedCNNClassifier
from .._images import IMAGE_EXTENSIONS
from .._labels import resolve_positive_label
from ..datasets._chest_xray import load_folder

__all__ = [
    "PROG",
    "EXIT_SKIPPED",
    "JOBLIB_SUFFIXES",
    "CommandError",
    "Parser",
    "weights_option",
    "positive_int",
    "probability",
    "add_model_options",
    "add_trust_pickle",
    "add_pos_label",
    "check_output_file",
    "save_model",
    "load_model",
    "set_verbosity",
    "class_named",
    "disease_class",
    "check_names",
    "load_data_folder",
    "one_line",
    "echo",
]

PROG = "sklearn-cxr"
#: Exit status of ``predict --skip-bad`` when some images were skipped.
EXIT_SKIPPED = 3
JOBLIB_SUFFIXES = (".joblib", ".pkl", ".pickle")


class CommandError(Exception):
    """A user error found by the command line itself."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def weights_option(value):
    """``none`` means random initialisation; anything else is passed on."""
    return None if value.lower() in ("none", "random") else value


def positive_int(value):
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, got {value!r}"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number


def probability(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, got {value!r}"
        ) from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return number


def add_model_options(
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
        type=weights_option,
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
        type=positive_int,
        default=epochs_default,
        help="training epochs in finetune mode (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
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
        type=positive_int,
        default=32,
        help="images per batch (default: %(default)s)",
    )
    parser.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seed of the split and the training (default: %(default)s)",
    )


def add_trust_pickle(parser):
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="also load a MODEL saved with joblib (.joblib, .pkl, .pickle). "
        "Loading a pickle runs any code its author put in it: pass this only "
        "for a file you made yourself or fully trust. Without it only the safe "
        "format (.cxr, written by 'train' without --joblib) is loaded",
    )


def add_pos_label(parser):
    parser.add_argument(
        "--pos-label",
        metavar="LABEL",
        default=None,
        help="the class that is the disease (positive). Default: the class "
        "named PNEUMONIA (any case), else the class beside normal, healthy, "
        "negative or 'no finding', else 1 of the classes 0 and 1; other "
        "class names must be given",
    )


def check_output_file(path, option="--out"):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(
            f"the folder of {option} {path} does not exist; create {folder} first"
        )
    if os.path.isdir(path):
        raise CommandError(f"{option} {path} is a folder; give a file name")


def save_model(model, path, use_joblib):
    if use_joblib:
        import joblib

        joblib.dump(model, path)
    else:
        model.save(path)
    return path


def load_model(path, trust_pickle=False):
    """A model written by ``train``: the safe format, or joblib if trusted."""
    if not os.path.isfile(path):
        raise CommandError(f"model file not found: {path!r}")
    if zipfile.is_zipfile(path):
        return PretrainedCNNClassifier.load(path)
    if path.lower().endswith(JOBLIB_SUFFIXES):
        if not trust_pickle:
            # Unpickling runs the file's code before any type check can happen.
            raise CommandError(
                f"{path!r} is a pickle (joblib) file, and loading a pickle runs "
                "any code it holds; it was not opened. Pass --trust-pickle only "
                "if you made this file yourself or fully trust it, or save the "
                f"model in the safe format ('{PROG} train' without --joblib)"
            )
        import joblib

        model = joblib.load(path)
        if not isinstance(model, PretrainedCNNClassifier):
            raise CommandError(
                f"{path!r} holds a {type(model).__name__}, not a "
                "PretrainedCNNClassifier"
            )
        return model
    raise CommandError(
        f"{path!r} is not a model saved by '{PROG} train' (neither the safe "
        f"format nor a joblib file ending in {', '.join(JOBLIB_SUFFIXES)})"
    )


def set_verbosity(model, verbose):
    model.set_params(verbose=verbose)
    features = getattr(model, "features_", None)
    if features is not None:
        features.set_params(verbose=verbose)


def class_named(classes, text):
    """The class of the model that ``--pos-label text`` names."""
    matches = [c for c in classes if str(c) == text]
    if not matches:
        raise CommandError(
            f"--pos-label {text} is not a class of the model; its classes are "
            f"{', '.join(str(c) for c in classes)}"
        )
    return matches[0]


def check_names(args):
    """Backbone and weights names, before any data is read."""
    check_backbone_name(args.backbone, args.weights)


def load_data_folder(data_dir, preferred_split, labels="binary"):
    """:func:`~sklearn_cxr.datasets._chest_xray.load_folder`, its errors said in
    command-line terms."""
    if not os.path.exists(data_dir):
        raise CommandError(f"no such folder: {data_dir}")
    if not os.path.isdir(data_dir):
        raise CommandError(f"{data_dir} is a file; give the folder of the images")
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
        raise CommandError(
            f"no NORMAL or PNEUMONIA folder in {folder}: expected "
            f"{data_dir}/NORMAL/ and {data_dir}/PNEUMONIA/ (or "
            f"{data_dir}/{preferred_split}/NORMAL/ ...) holding image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    try:
        return load_folder(data_dir, preferred_split, labels=labels)
    except FileNotFoundError as exc:
        # e.g. a class folder without images; the loader names the folder
        raise CommandError(
            one_line(exc).replace(" (extensions", " (image files")
        ) from exc


def disease_class(classes, pos_label):
    """The positive class of a binary model: ``--pos-label``, else the rule of
    :func:`~sklearn_cxr._labels.resolve_positive_label`."""
    if pos_label is not None:
        return class_named(classes, pos_label)
    try:
        return resolve_positive_label(classes)
    except ValueError:
        raise CommandError(
            f"cannot tell which of the classes {', '.join(map(str, classes))} is "
            "the disease (the positive class); name it with --pos-label LABEL"
        ) from None


def one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def echo(text=""):
    print(text, flush=True)
