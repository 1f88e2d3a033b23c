"""Shared helpers of the benchmarks: data paths, labels, patient groups, splits,
metrics and machine description. Not part of the package.

Paths of the machine (the data folder, the weights file) come from each
script's ``--data`` / ``--weights`` options or from ``SKLEARN_CXR_DATA`` /
``SKLEARN_CXR_WEIGHTS``; there are no defaults.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

import numpy as np

# The machine's paths come from the command line or the environment only:
# name -> (option, environment variable, what it is).
PATHS = {
    "DATA_DIR": (
        "--data",
        "SKLEARN_CXR_DATA",
        "the Kermany training folder holding NORMAL/ and PNEUMONIA/",
    ),
    "WEIGHTS": (
        "--weights",
        "SKLEARN_CXR_WEIGHTS",
        "the offline ImageNet EfficientNet-Lite0 state dict, "
        "efficientnet_lite0_imagenet_timm.pth",
    ),
}
_GIVEN = {}
BACKBONE = "timm:tf_efficientnet_lite0"
CACHE_DIR = Path(
    os.environ.get(
        "SKLEARN_CXR_BENCH_CACHE",
        os.path.expanduser("~/.cache/sklearn_cxr_benchmarks"),
    )
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"

_PNEUMONIA = re.compile(r"^(person\d+)_(bacteria|virus)(?:_\d+)+\.jpe?g$", re.I)
_NORMAL = re.compile(r"^((?:NORMAL2-)?IM-\d+)(?:-\d+)+\.jpe?g$", re.I)


def parse_name(name):
    """(patient, subtype, acquisition) from a Kermany file name.

    Acquisition is ``"IM"`` or ``"NORMAL2"`` for normals and ``"person"`` for
    pneumonia images.
    """
    match = _PNEUMONIA.match(name)
    if match:
        return match.group(1), match.group(2).lower(), "person"
    match = _NORMAL.match(name)
    if match:
        patient = match.group(1)
        return patient, "normal", "NORMAL2" if patient.startswith("NORMAL2") else "IM"
    raise ValueError(f"Unexpected file name {name!r} in the Kermany data set.")


def add_path_arguments(parser):
    """``--data DIR`` and ``--weights FILE``, defaulting to the environment."""
    for name, (option, env, what) in PATHS.items():
        parser.add_argument(
            option,
            metavar="DIR" if name == "DATA_DIR" else "FILE",
            default=None,
            help=f"{what} (default: ${env})",
        )
    return parser


def set_paths(args):
    """Use the ``--data`` / ``--weights`` of parsed ``args`` where given."""
    for name, (option, _, _) in PATHS.items():
        value = getattr(args, option.lstrip("-"), None)
        if value is not None:
            _GIVEN[name] = Path(value).expanduser()


def path(name):
    """The path ``name`` (``"DATA_DIR"`` or ``"WEIGHTS"``): the option given,
    else its environment variable; a clear error when neither is set."""
    if name in _GIVEN:
        return _GIVEN[name]
    option, env, what = PATHS[name]
    value = os.environ.get(env)
    if not value:
        raise SystemExit(
            f"No {option.lstrip('-')} path: pass {option} PATH or set {env}=PATH "
            f"({what})."
        )
    return Path(value).expanduser()


def __getattr__(name):
    # _common.DATA_DIR and _common.WEIGHTS, resolved when first used
    if name in PATHS:
        return path(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_data(data_dir=None):
    """Paths, binary labels, subtype labels, patient groups, acquisition batch.

    ``data_dir`` defaults to ``--data`` / ``$SKLEARN_CXR_DATA``; groups are
    parsed from the file names.
    """
    data_dir = path("DATA_DIR") if data_dir is None else Path(data_dir)
    if not data_dir.is_dir():
        option, env, what = PATHS["DATA_DIR"]
        raise SystemExit(
            f"Data folder {data_dir} not found; pass {option} DIR or set {env} "
            f"to {what}."
        )
    paths = sorted(
        str(p)
        for cls in ("NORMAL", "PNEUMONIA")
        for p in (data_dir / cls).iterdir()
        if p.suffix.lower() in (".jpeg", ".jpg")
    )
    parsed = [parse_name(os.path.basename(p)) for p in paths]
    groups = np.array([g for g, _, _ in parsed])
    subtype = np.array([s for _, s, _ in parsed])
    batch = np.array([b for _, _, b in parsed])
    y = np.where(subtype == "normal", "NORMAL", "PNEUMONIA")
    return {
        "paths": np.array(paths),
        "y": y,
        "subtype": subtype,
        "groups": groups,
        "batch": batch,
    }


def shift_splits(data, seed=0, test_fraction=0.2):
    """Train/test index pairs that hold out a whole acquisition batch of normals.

    Direction ``"NORMAL2->IM"``: train on the ``NORMAL2-IM-`` normals plus a
    patient split of pneumonia; test on the ``IM-`` normals plus held-out
    pneumonia patients. ``"IM->NORMAL2"`` is the reverse.
    """
    from sklearn.model_selection import GroupShuffleSplit

    pneu = np.flatnonzero(data["y"] == "PNEUMONIA")
    gss = GroupShuffleSplit(1, test_size=test_fraction, random_state=seed)
    tr, te = next(gss.split(pneu, groups=data["groups"][pneu]))
    pneu_train, pneu_test = pneu[tr], pneu[te]
    out = {}
    for train_batch, test_batch in (("NORMAL2", "IM"), ("IM", "NORMAL2")):
        normal_train = np.flatnonzero(data["batch"] == train_batch)
        normal_test = np.flatnonzero(data["batch"] == test_batch)
        out[f"{train_batch}->{test_batch}"] = (
            np.sort(np.r_[normal_train, pneu_train]),
            np.sort(np.r_[normal_test, pneu_test]),
        )
    return out


def binary_metrics(y_true, score, threshold=0.5, positive="PNEUMONIA"):
    """ROC AUC, accuracy, sensitivity, specificity of ``score >= threshold``."""
    from sklearn.metrics import roc_auc_score

    pos = np.asarray(y_true) == positive
    pred = np.asarray(score) >= threshold
    return {
        "roc_auc": float(roc_auc_score(pos, score)),
        "accuracy": float(np.mean(pred == pos)),
        "sensitivity": float(np.mean(pred[pos])),
        "specificity": float(np.mean(~pred[~pos])),
        "threshold": float(threshold),
    }


def balanced_threshold(y_true, score, positive="PNEUMONIA"):
    """Threshold where sensitivity and specificity are closest (Youden-like)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(np.asarray(y_true) == positive, score)
    i = int(np.argmin(np.abs(tpr - (1 - fpr))))
    return float(min(max(thr[i], 0.0), 1.0))


def machine():
    import sklearn
    import torch

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
        "load_avg_start": os.getloadavg(),
    }


def save_json(name, payload):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=float)
    return path
