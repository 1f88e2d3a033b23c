"""What a model archive may hold: member sizes, config schema, tensor shapes.

Every check here runs before the member it guards is read or any tensor is
allocated, so that a hostile file costs little: a deflated ``config.json`` of
800 MB, a label dtype of gigabytes or a head width of 2e9 are refused up
front, with a :class:`ModelFileError` naming what is wrong.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from numbers import Integral, Real

import numpy as np

from .exceptions import ModelFileError

__all__ = [
    "ModelFileError",
    "check_classifier_fitted",
    "check_features_fitted",
    "check_head_shapes",
    "check_members",
    "check_params",
    "validate_config",
]

_MiB = 1 << 20
#: Largest uncompressed size of each member, read before its bytes are.
MEMBER_LIMITS = {
    "config.json": 1 * _MiB,
    "history.json": 64 * _MiB,
    "final_estimator.skops": 512 * _MiB,
    "scaler.skops": 64 * _MiB,
    "final_estimator_param.skops": 64 * _MiB,
    "model.safetensors": 8 * 1024 * _MiB,
}
_CONFIG_KEYS = {
    "format",
    "format_version",
    "class",
    "sklearn_cxr_version",
    "torch_version",
    "params",
    "fitted",
}
_REQUIRED_KEYS = {"format", "format_version", "class", "params", "fitted"}
#: Label dtypes a file may name: strings, integers, floats, bools, objects.
_LABEL_DTYPE = re.compile(r"[<>|=]?(U\d{1,5}|[iu][1248]|f[248]|b1|O)")
_MAX_CLASSES = 100_000


def check_members(archive, path):
    """Refuse duplicate members and members over their size limit.

    Parameters
    ----------
    archive : zipfile.ZipFile
    path : str
        The file, for the messages.
    """
    names = [info.filename for info in archive.infolist()]
    duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
    if duplicates:
        raise ModelFileError(
            f"{path!r} holds the members {duplicates} more than once; a file "
            "written by model.save() holds each once. It is refused."
        )
    for info in archive.infolist():
        limit = MEMBER_LIMITS.get(info.filename)
        if limit is not None and info.file_size > limit:
            raise ModelFileError(
                f"{path!r}: member {info.filename} would decompress to "
                f"{info.file_size} bytes, over the limit of {limit} bytes for it; "
                "the file is refused."
            )


def _fail(path, what):
    raise ModelFileError(f"{path!r}: config.json {what}; the file is refused.")


def _check_label_spec(spec, n_classes, path):
    if not isinstance(spec, dict) or set(spec) != {"values", "dtype"}:
        _fail(path, "has no valid classes_ (a dict with 'values' and 'dtype')")
    dtype = spec["dtype"]
    if not isinstance(dtype, str) or not _LABEL_DTYPE.fullmatch(dtype):
        _fail(
            path,
            f"names the label dtype {dtype!r}; allowed are strings, integers, "
            "floats, bools and objects (such as '<U9', '<i8', '<f8', '|b1')",
        )
    values = spec["values"]
    if not isinstance(values, list) or len(values) != n_classes:
        _fail(path, f"lists classes_ that are not {n_classes} labels")
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        _fail(path, "holds labels that are not str, int, float or bool")


def _check_stats(fitted, path):
    for name in ("mean_", "std_"):
        value = fitted.get(name)
        if (
            not isinstance(value, list)
            or len(value) not in (1, 3)
            or not all(isinstance(v, Real) and np.isfinite(v) for v in value)
        ):
            _fail(path, f"has {name} {value!r}; expected 1 or 3 finite numbers")
    # written since detail_size exists; absent in older files (read as None)
    if fitted.get("detail_size_") is not None:
        _check_int(fitted, "detail_size_", path, low=8)


def _check_int(fitted, name, path, low=0):
    value = fitted.get(name)
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        _fail(path, f"has {name} {value!r}; expected an integer >= {low}")


def check_features_fitted(fitted, path):
    """Check the ``fitted`` part of a saved :class:`PretrainedFeatures`."""
    if not isinstance(fitted, dict):
        _fail(path, "has 'fitted' of another type than a JSON object")
    _check_stats(fitted, path)
    _check_int(fitted, "n_features_out_", path, low=1)
    _check_int(fitted, "seed_", path)
    for name in ("device_", "interpolation_"):
        if not isinstance(fitted.get(name), str):
            _fail(path, f"has {name} {fitted.get(name)!r}; expected a string")


def check_params(params, expected_class, path):
    """Check that ``params`` is a JSON object of ``expected_class``'s parameters."""
    if not isinstance(params, dict):
        _fail(path, "has 'params' of another type than a JSON object")
    allowed = set(expected_class().get_params(deep=False))
    unknown = sorted(set(params) - allowed)
    if unknown:
        _fail(
            path,
            f"sets parameters {unknown} that {expected_class.__name__} does not "
            "have",
        )


def validate_config(config, expected_class, path):
    """Check the structure and types of a parsed ``config.json``.

    Only the parts every model file has; the estimator checks its own
    ``fitted`` part when it restores itself (:func:`check_features_fitted`,
    :func:`check_classifier_fitted`).

    Parameters
    ----------
    config : object
        What ``json.loads`` returned.
    expected_class : type
        The estimator class being loaded; its parameters are the allowed keys
        of ``params``.
    path : str
        The file, for the messages.
    """
    if not isinstance(config, dict):
        _fail(path, "is not a JSON object")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        _fail(path, f"has unknown keys {unknown}")
    missing = sorted(_REQUIRED_KEYS - set(config))
    if missing:
        _fail(path, f"lacks {missing}")
    version = config["format_version"]
    if not isinstance(version, Integral) or isinstance(version, bool) or version < 1:
        _fail(path, f"has format_version {version!r}; expected an integer >= 1")
    check_params(config["params"], expected_class, path)


def check_classifier_fitted(fitted, path, features_class):
    """Check the ``fitted`` part of a saved :class:`PretrainedCNNClassifier`.

    ``features_class`` is the class of the embedded transformer of feature
    mode, whose parameters and fitted part are checked too.
    """
    if not isinstance(fitted, dict):
        _fail(path, "has 'fitted' of another type than a JSON object")
    n_classes = fitted.get("n_classes_")
    if (
        not isinstance(n_classes, Integral)
        or isinstance(n_classes, bool)
        or not 2 <= n_classes <= _MAX_CLASSES
    ):
        _fail(path, f"has n_classes_ {n_classes!r}; expected 2 to {_MAX_CLASSES}")
    _check_label_spec(fitted.get("classes_"), n_classes, path)
    _check_int(fitted, "seed_", path)
    if not isinstance(fitted.get("device_"), str):
        _fail(path, f"has device_ {fitted.get('device_')!r}; expected a string")
    mode = fitted.get("mode")
    if mode == "features":
        spec = fitted.get("features_")
        if not isinstance(spec, dict) or set(spec) != {"params", "fitted"}:
            _fail(path, "has no valid features_ (params and fitted)")
        check_params(spec["params"], features_class, path)
        check_features_fitted(spec["fitted"], path)
    elif mode == "finetune":
        _check_stats(fitted, path)
        _check_int(fitted, "head_in_features", path, low=1)
        if not isinstance(fitted.get("interpolation_"), str):
            _fail(path, "has no interpolation_ string")
    else:
        _fail(path, f"has mode {mode!r}; expected 'features' or 'finetune'")


def check_head_shapes(tensors, prefix, widths, path):
    """The head's linear layers in ``tensors`` must have exactly ``widths``.

    Checked before the head is built, so a head width of 2e9 in a file never
    allocates anything.

    Parameters
    ----------
    tensors : dict of str to Tensor
    prefix : str
        Prefix of the head's tensors, e.g. ``"module.head."``.
    widths : list of int
        ``[in_features, *hidden_units, n_classes]``.
    path : str
    """
    weights = sorted(
        (
            (int(key[len(prefix) :].split(".")[0]), tuple(tensor.shape))
            for key, tensor in tensors.items()
            if key.startswith(prefix)
            and key.endswith(".weight")
            and key[len(prefix) :].split(".")[0].isdigit()
        ),
    )
    found = [shape for _, shape in weights]
    expected = [(widths[k + 1], widths[k]) for k in range(len(widths) - 1)]
    if found != expected:
        raise ModelFileError(
            f"{os.fspath(path)!r}: the head's layers in model.safetensors have "
            f"shapes {found}, but config.json describes {expected} (input width, "
            "hidden_units, classes). The file is inconsistent and is refused."
        )
