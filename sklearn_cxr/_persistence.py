"""Safe save / load of fitted estimators: JSON + safetensors + skops, no pickle.

A saved model is one zip file holding

- ``config.json``: the constructor parameters and the fitted attributes that
  prediction needs (``classes_`` with their dtype, normalisation statistics,
  feature width, mode, device...), as plain JSON;
- ``model.safetensors``: the network's tensors (moved to the CPU);
- ``*.skops``: fitted scikit-learn parts (final estimator, scaler), read back
  with :func:`skops.io.loads` and only the types trusted by skops or listed
  in ``TRUSTED_TYPES`` (or by the caller).

Loading never unpickles: the network is rebuilt from its name with
``weights=None`` (so nothing is downloaded) and the saved tensors are loaded
into it strictly.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
import zipfile

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ._atomic import atomic_path
from ._model_schema import check_members, validate_config
from ._version import __version__
from .exceptions import ModelFileError

__all__ = [
    "HISTORY",
    "ModelFileError",
    "TRUSTED_TYPES",
    "apply_memory_format",
    "cpu_tensors",
    "decode_classes",
    "decode_params",
    "encode_classes",
    "encode_params",
    "load_model",
    "load_tensors",
    "memory_format",
    "save_model",
]

logger = logging.getLogger(__name__)

FORMAT = "sklearn_cxr-model"
FORMAT_VERSION = 1

#: Types accepted in the ``.skops`` members besides those skops trusts by
#: default (scikit-learn estimators, numpy and scipy containers). Everything
#: else is refused unless the caller passes it in ``trusted=``.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)

_CONFIG = "config.json"
_TENSORS = "model.safetensors"
#: The member holding a finetune net's history (the estimator writes it).
HISTORY = "history.json"
_SKOPS_MEMBERS = (
    "final_estimator.skops",
    "scaler.skops",
    "final_estimator_param.skops",
)
_MEMBERS = {_CONFIG, _TENSORS, HISTORY, *_SKOPS_MEMBERS}


# --------------------------------------------------------------------- params
def _to_json(value, name):
    """Encode a parameter value as JSON, tagging tuples and non-str-key dicts."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, name) for v in value]}
    if isinstance(value, list):
        return [_to_json(v, name) for v in value]
    if isinstance(value, dict):
        items = [[_to_json(k, name), _to_json(v, name)] for k, v in value.items()]
        return {"__items__": items}
    # torchvision weights enums ("ResNet18_Weights.IMAGENET1K_V1") resolve by name
    if type(value).__name__.endswith("_Weights") and hasattr(value, "url"):
        return f"{type(value).__name__}.{value.name}"
    raise TypeError(
        f"Parameter {name}={value!r} ({type(value).__name__}) cannot be stored in "
        "the safe format, which keeps parameters as JSON. Use a JSON-able value "
        "(str, number, bool, None, tuple, list, dict), or persist the model with "
        "joblib (only for files you trust)."
    )


def _from_json(value):
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if set(value) == {"__items__"}:
            return {_from_json(k): _from_json(v) for k, v in value["__items__"]}
        raise ModelFileError(f"Unexpected JSON object in config: {value!r}.")
    return value


def encode_params(estimator, skops_parts):
    """Constructor parameters as JSON; estimators go to ``skops_parts``."""
    params = estimator.get_params(deep=False)
    encoded = {}
    for name, value in params.items():
        if name == "backbone" and isinstance(value, torch.nn.Module):
            raise TypeError(
                f"backbone is an nn.Module ({type(value).__name__}): the safe "
                "format rebuilds the network from its name and stores no code. "
                "Use a torchvision name or 'timm:<name>' (with weights=<path> for "
                "your own weights), or persist with joblib (trusted files only)."
            )
        if isinstance(value, BaseEstimator):
            # a scikit-learn estimator given as a parameter: stored with skops
            member = f"{name}_param.skops"
            if member not in _SKOPS_MEMBERS:
                raise TypeError(
                    f"Parameter {name}={value!r} is an estimator, which the safe "
                    "format cannot store here; persist the model with joblib "
                    "(only for files you trust)."
                )
            skops_parts[member] = value
            encoded[name] = {"__skops__": member}
            continue
        if name == "callbacks" and value:
            warnings.warn(
                "The safe format does not store skorch callbacks (they are code "
                "and only act during training); the loaded model has "
                "callbacks=None. Its predictions are unaffected.",
                UserWarning,
                stacklevel=4,
            )
            encoded[name] = None
            continue
        if name in ("memory", "checkpoint_dir"):
            # Folders belong to the machine, not to the model: a loaded model
            # must not write into the saver's checkpoint folder, and the file
            # must not leak the saver's paths.
            encoded[name] = None
            continue
        if name == "random_state" and isinstance(value, np.random.RandomState):
            # The seed actually drawn at fit reproduces the fit.
            value = int(estimator.seed_)
        encoded[name] = _to_json(value, name)
    return encoded


# --------------------------------------------------------------------- tensors
def cpu_tensors(module):
    """State dict on the CPU, each tensor its own contiguous copy.

    Copies drop shared storage (tied weights), which safetensors refuses.
    """
    return {
        key: tensor.detach().to("cpu", copy=True).contiguous()
        for key, tensor in module.state_dict().items()
    }


def load_tensors(module, tensors, prefix, what):
    state = {
        key[len(prefix) :]: value
        for key, value in tensors.items()
        if key.startswith(prefix)
    }
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelFileError(
            f"The saved tensors do not match the rebuilt {what}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}. Was the file saved with "
            "another version of the backbone library?"
        )
    module.load_state_dict(state, strict=True)


def memory_format(module):
    """"channels_last" when the 4-d weights are stored so, else "contiguous".

    Convolutions may take other code paths in either layout; restoring the
    saved layout keeps predictions bitwise identical.
    """
    for param in module.parameters():
        if param.ndim == 4 and not param.is_contiguous():
            if param.is_contiguous(memory_format=torch.channels_last):
                return "channels_last"
    return "contiguous"


def apply_memory_format(module, fitted):
    if fitted.get("memory_format") == "channels_last":
        module.to(memory_format=torch.channels_last)
    return module


# ----------------------------------------------------------------------- skops
def _skops_dumps(obj):
    import skops.io as sio

    return sio.dumps(obj)


def _skops_loads(data, member, trusted):
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelFileError(f"{member} is not a valid skops file: {exc}") from exc
    accepted = set(TRUSTED_TYPES) | set(trusted or ())
    refused = sorted(set(untrusted) - accepted)
    if refused:
        raise ModelFileError(
            f"{member} holds types that are not trusted: {refused}. Loading "
            "them could run code. If you trust the file's origin, pass "
            f"trusted={refused!r} to load()."
        )
    return sio.loads(data, trusted=sorted(set(untrusted)))


# ------------------------------------------------------------------ classes_
def encode_classes(classes):
    values = classes.tolist()
    for value in values:
        if not isinstance(value, (str, int, float, bool)):
            raise TypeError(
                f"Label {value!r} ({type(value).__name__}) cannot be stored in "
                "JSON; use str, int, float or bool labels."
            )
    return {"values": values, "dtype": classes.dtype.str}


def decode_classes(spec):
    return np.asarray(spec["values"], dtype=np.dtype(spec["dtype"]))


def decode_params(encoded, parts):
    params = {}
    for name, value in encoded.items():
        if isinstance(value, dict) and set(value) == {"__skops__"}:
            params[name] = parts.load(value["__skops__"])
        else:
            params[name] = _from_json(value)
    return params


# ------------------------------------------------------------------ save/load
def save_model(estimator, path):
    """Write a fitted estimator to ``path`` in the safe format.

    The estimator hands over its fitted state with ``_get_state()``: a dict
    with ``"fitted"`` (JSON-able), ``"tensors"`` (name -> tensor) and,
    optionally, ``"skops"`` (member -> scikit-learn object) and ``"extra"``
    (member -> bytes). This module writes them; it knows nothing of the
    estimators themselves.

    Parameters
    ----------
    estimator : PretrainedCNNClassifier or PretrainedFeatures
        A fitted estimator.
    path : str or os.PathLike
        The file to write (a zip archive; ``.cxr`` is a good extension). An
        existing file is replaced atomically.

    Returns
    -------
    path : str
    """
    get_state = getattr(estimator, "_get_state", None)
    if get_state is None:
        raise TypeError(
            "save_model accepts the estimators of sklearn_cxr "
            "(PretrainedCNNClassifier, PretrainedFeatures), got "
            f"{type(estimator).__name__}."
        )
    state = get_state()  # raises NotFittedError on an unfitted estimator
    skops_parts = dict(state.get("skops", {}))
    params = encode_params(estimator, skops_parts)
    from safetensors.torch import save as save_tensors

    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(estimator).__name__,
        "sklearn_cxr_version": __version__,
        "torch_version": torch.__version__,
        "params": params,
        "fitted": state["fitted"],
    }
    path = os.fspath(path)
    # a fresh mkstemp name (never a planted link), renamed into place whole
    with atomic_path(path, suffix=".cxr") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_CONFIG, json.dumps(config, indent=1))
            archive.writestr(_TENSORS, save_tensors(state["tensors"]))
            for member, obj in skops_parts.items():
                archive.writestr(member, _skops_dumps(obj))
            for member, data in state.get("extra", {}).items():
                if member not in _MEMBERS:  # pragma: no cover - a coding error
                    raise ValueError(f"Unknown model file member {member!r}.")
                archive.writestr(member, data)
    _warn_if_untrusted(skops_parts)
    return path


def _warn_if_untrusted(skops_parts):
    import skops.io as sio

    for member, obj in skops_parts.items():
        untrusted = set(sio.get_untrusted_types(data=_skops_dumps(obj)))
        untrusted -= set(TRUSTED_TYPES)
        if untrusted:
            warnings.warn(
                f"{member} holds types that load() refuses by default: "
                f"{sorted(untrusted)}. Load with trusted={sorted(untrusted)!r}.",
                UserWarning,
                stacklevel=3,
            )


class _Parts:
    """Read access to the members of an opened model archive."""

    def __init__(self, archive, trusted, path=""):
        self.archive = archive
        self.path = path
        self.names = set(archive.namelist())
        self.trusted = trusted

    def has(self, name):
        return name in self.names

    def read(self, name):
        if name not in self.names:
            raise ModelFileError(f"The model file lacks {name!r}.")
        return self.archive.read(name)

    def decode_params(self, encoded):
        """Constructor parameters from their JSON form (see encode_params)."""
        return decode_params(encoded, self)

    def load(self, name):
        if name not in _SKOPS_MEMBERS:
            raise ModelFileError(f"Unexpected skops member {name!r}.")
        return _skops_loads(self.read(name), name, self.trusted)


def _open_archive(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(2)
        hint = (
            " It looks like a pickle (joblib) file: load it with joblib.load only "
            "if you trust its origin, since unpickling can run arbitrary code."
            if head[:1] == b"\x80"
            else ""
        )
        raise ModelFileError(
            f"{path!r} is not a sklearn_cxr model file (not a zip archive written "
            f"by model.save()).{hint}"
        )
    return zipfile.ZipFile(path, "r")


def _check_loaded_params(estimator, path):
    try:
        estimator._validate_state_params()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{os.fspath(path)!r} holds invalid parameters: {exc}"
        ) from exc


def load_model(path, *, expected_class, trusted=None):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    expected_class : type
        ``PretrainedCNNClassifier`` or ``PretrainedFeatures``; a file holding
        another class is refused.
    trusted : list of str, default=None
        Extra types (``"module.Class"``) to accept in the skops members, on
        top of skops' defaults and ``TRUSTED_TYPES``.

    Returns
    -------
    estimator : expected_class
    """
    with _open_archive(path) as archive:
        parts = _Parts(archive, trusted, os.fspath(path))
        unknown = sorted(parts.names - _MEMBERS)
        if unknown:
            raise ModelFileError(
                f"{os.fspath(path)!r} holds unexpected members {unknown}; it was "
                "not written by model.save() and is refused."
            )
        check_members(archive, os.fspath(path))
        try:
            config = json.loads(parts.read(_CONFIG))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{_CONFIG} is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise ModelFileError(
                f"{_CONFIG} of {os.fspath(path)!r} is nested too deeply to be a "
                "model configuration; the file is refused."
            ) from exc
        found = config.get("format") if isinstance(config, dict) else None
        if found != FORMAT:
            raise ModelFileError(
                f"{os.fspath(path)!r} is not a sklearn_cxr model file "
                f"(format {found!r} in {_CONFIG}, expected {FORMAT!r})."
            )
        if config.get("class") != expected_class.__name__:
            raise ModelFileError(
                f"{os.fspath(path)!r} holds a {config.get('class')}, not a "
                f"{expected_class.__name__}; use {config.get('class')}.load()."
            )
        version = config.get("format_version")
        if type(version) is int and version > FORMAT_VERSION:
            raise ModelFileError(
                f"{os.fspath(path)!r} uses format version {version}; this "
                f"sklearn_cxr reads up to {FORMAT_VERSION}. Upgrade sklearn_cxr."
            )
        validate_config(config, expected_class, os.fspath(path))
        # the estimator's own part of the file, checked before anything is built
        expected_class._check_saved_state(config["fitted"], os.fspath(path))
        from safetensors.torch import load as read_safetensors

        try:
            tensors = read_safetensors(parts.read(_TENSORS))
        except Exception as exc:
            raise ModelFileError(f"{_TENSORS} is not valid: {exc}") from exc
        estimator = expected_class(**decode_params(config["params"], parts))
        # a file from before checkpoint_dir was dropped at save
        if "checkpoint_dir" in estimator.get_params(deep=False):
            estimator.set_params(checkpoint_dir=None)
        _check_loaded_params(estimator, path)
        estimator._set_state(config["fitted"], tensors, parts)
        return estimator
