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
from sklearn.utils.validation import check_is_fitted

from ._atomic import atomic_path
from ._backbones import CXRNetwork, build_head, load_backbone
from ._model_schema import (
    ModelFileError,
    check_head_shapes,
    check_members,
    validate_config,
)
from ._utils import resolve_num_workers

__all__ = ["ModelFileError", "TRUSTED_TYPES", "save_model", "load_model"]

logger = logging.getLogger(__name__)

FORMAT = "sklearn_cxr-model"
FORMAT_VERSION = 1

#: Types accepted in the ``.skops`` members besides those skops trusts by
#: default (scikit-learn estimators, numpy and scipy containers). Everything
#: else is refused unless the caller passes it in ``trusted=``.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)

_CONFIG = "config.json"
_TENSORS = "model.safetensors"
_HISTORY = "history.json"
_SKOPS_MEMBERS = (
    "final_estimator.skops",
    "scaler.skops",
    "final_estimator_param.skops",
)
_MEMBERS = {_CONFIG, _TENSORS, _HISTORY, *_SKOPS_MEMBERS}


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


def _encode_params(estimator, skops_parts):
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
        if name == "final_estimator" and value is not None:
            skops_parts["final_estimator_param.skops"] = value
            encoded[name] = {"__skops__": "final_estimator_param.skops"}
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
def _cpu_tensors(module):
    """State dict on the CPU, each tensor its own contiguous copy.

    Copies drop shared storage (tied weights), which safetensors refuses.
    """
    return {
        key: tensor.detach().to("cpu", copy=True).contiguous()
        for key, tensor in module.state_dict().items()
    }


def _load_tensors(module, tensors, prefix, what):
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


def _rebuild_body(backbone, in_chans):
    """The headless backbone architecture, with random (soon replaced) weights."""
    with torch.random.fork_rng(devices=[]):
        return load_backbone(backbone, None, in_chans=in_chans).body


def _memory_format(module):
    """"channels_last" when the 4-d weights are stored so, else "contiguous".

    Convolutions may take other code paths in either layout; restoring the
    saved layout keeps predictions bitwise identical.
    """
    for param in module.parameters():
        if param.ndim == 4 and not param.is_contiguous():
            if param.is_contiguous(memory_format=torch.channels_last):
                return "channels_last"
    return "contiguous"


def _apply_memory_format(module, fitted):
    if fitted.get("memory_format") == "channels_last":
        module.to(memory_format=torch.channels_last)
    return module


def _load_device(fitted_on):
    if str(fitted_on).startswith("cuda") and not torch.cuda.is_available():
        logger.warning(
            "Model fitted on %s loaded on a machine without CUDA: using the CPU.",
            fitted_on,
        )
        return "cpu"
    return str(fitted_on)


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
def _encode_classes(classes):
    values = classes.tolist()
    for value in values:
        if not isinstance(value, (str, int, float, bool)):
            raise TypeError(
                f"Label {value!r} ({type(value).__name__}) cannot be stored in "
                "JSON; use str, int, float or bool labels."
            )
    return {"values": values, "dtype": classes.dtype.str}


def _decode_classes(spec):
    return np.asarray(spec["values"], dtype=np.dtype(spec["dtype"]))


# ------------------------------------------------------------ per estimator
_FEATURES_FITTED = ("seed_", "device_", "n_features_out_", "interpolation_")


def _features_state(features, skops_parts, tensors, prefix):
    fitted = {name: getattr(features, name) for name in _FEATURES_FITTED}
    fitted["mean_"] = list(features.mean_)
    fitted["std_"] = list(features.std_)
    fitted["memory_format"] = _memory_format(features.backbone_)
    if hasattr(features, "n_images_seen_"):
        fitted["n_images_seen_"] = int(features.n_images_seen_)
    tensors.update(
        {prefix + k: v for k, v in _cpu_tensors(features.backbone_).items()}
    )
    return {"params": _encode_params(features, skops_parts), "fitted": fitted}


def _restore_features(features, fitted, tensors, prefix):
    for name in _FEATURES_FITTED:
        setattr(features, name, fitted[name])
    features.mean_ = tuple(fitted["mean_"])
    features.std_ = tuple(fitted["std_"])
    if "n_images_seen_" in fitted:
        features.n_images_seen_ = fitted["n_images_seen_"]
    features.device_ = _load_device(fitted["device_"])
    body = _rebuild_body(features.backbone, features.in_chans)
    _load_tensors(body, tensors, prefix, f"backbone {features.backbone!r}")
    features.backbone_ = _apply_memory_format(
        body.eval().to(features.device_), fitted
    )
    return features


def _classifier_state(clf, skops_parts, tensors, extra):
    mode = clf.mode_fitted_
    fitted = {
        "mode": mode,
        "classes_": _encode_classes(clf.classes_),
        "n_classes_": int(clf.n_classes_),
        "device_": str(clf.device_),
        "seed_": int(clf.seed_),
    }
    if mode == "features":
        fitted["features_"] = _features_state(
            clf.features_, skops_parts, tensors, "features."
        )
        skops_parts["final_estimator.skops"] = clf.final_estimator_
        if clf.scaler_ is not None:
            skops_parts["scaler.skops"] = clf.scaler_
    else:
        module = clf.net_.module_
        fitted["mean_"] = list(clf.mean_)
        fitted["std_"] = list(clf.std_)
        fitted["interpolation_"] = clf.interpolation_
        fitted["memory_format"] = _memory_format(module)
        fitted["head_in_features"] = int(
            next(m for m in module.head if isinstance(m, torch.nn.Linear)).in_features
        )
        tensors.update({"module." + k: v for k, v in _cpu_tensors(module).items()})
        extra[_HISTORY] = json.dumps(clf.net_.history.to_list()).encode()
    return fitted


def _restore_classifier(clf, fitted, tensors, parts):
    clf.classes_ = _decode_classes(fitted["classes_"])
    clf.n_classes_ = fitted["n_classes_"]
    clf.seed_ = fitted["seed_"]
    clf.device_ = _load_device(fitted["device_"])
    if fitted["mode"] == "features":
        from ._features import PretrainedFeatures

        spec = fitted["features_"]
        features = PretrainedFeatures(**_decode_params(spec["params"], parts))
        clf.features_ = _restore_features(
            features, spec["fitted"], tensors, "features."
        )
        clf.final_estimator_ = parts.load("final_estimator.skops")
        clf.scaler_ = (
            parts.load("scaler.skops") if parts.has("scaler.skops") else None
        )
        return clf
    # Finetune: rebuild body + head, then a skorch net around it for predict.
    from skorch.history import History

    from ._classifier import _CXRNet

    widths = [fitted["head_in_features"], *clf.hidden_units, clf.n_classes_]
    check_head_shapes(tensors, "module.head.", [int(w) for w in widths], parts.path)
    body = _rebuild_body(clf.backbone, clf.in_chans)
    head = build_head(
        fitted["head_in_features"],
        clf.n_classes_,
        tuple(clf.hidden_units),
        float(clf.dropout),
    )
    module = CXRNetwork(body, head)
    _load_tensors(module, tensors, "module.", f"network {clf.backbone!r}")
    _apply_memory_format(module, fitted)
    clf.mean_ = tuple(fitted["mean_"])
    clf.std_ = tuple(fitted["std_"])
    clf.interpolation_ = fitted["interpolation_"]
    device = clf.device_
    amp = device.startswith("cuda") if clf.amp == "auto" else bool(clf.amp)
    net = _CXRNet(
        module,
        criterion=torch.nn.CrossEntropyLoss,
        criterion__reduction="none",
        optimizer=torch.optim.AdamW,
        lr=clf.lr,
        max_epochs=clf.max_epochs,
        batch_size=clf.batch_size,
        train_split=None,
        iterator_valid__num_workers=resolve_num_workers(clf.num_workers, device),
        iterator_valid__pin_memory=device.startswith("cuda"),
        classes=list(range(clf.n_classes_)),
        device=device,
        amp=amp,
        verbose=0,
    ).initialize()
    if parts.has(_HISTORY):
        net.history = History(json.loads(parts.read(_HISTORY)))
    net.module_.eval()
    clf.net_ = net
    return clf


def _decode_params(encoded, parts):
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
    kind = type(estimator).__name__
    if kind not in ("PretrainedCNNClassifier", "PretrainedFeatures"):
        raise TypeError(
            "save_model accepts PretrainedCNNClassifier or PretrainedFeatures, "
            f"got {kind}."
        )
    is_classifier = kind == "PretrainedCNNClassifier"
    check_is_fitted(estimator, "classes_" if is_classifier else "backbone_")
    skops_parts, tensors, extra = {}, {}, {}
    params = _encode_params(estimator, skops_parts)
    if kind == "PretrainedFeatures":
        state = _features_state(estimator, skops_parts, tensors, "features.")
        fitted = state["fitted"]
    else:
        fitted = _classifier_state(estimator, skops_parts, tensors, extra)
        if getattr(estimator, "adaptation_", None) is not None:
            from ._adapt import adaptation_to_file

            fitted["adaptation"], adapt_tensors = adaptation_to_file(
                estimator.adaptation_
            )
            tensors.update(adapt_tensors)
    from safetensors.torch import save as save_tensors

    from ._version import __version__

    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": kind,
        "sklearn_cxr_version": __version__,
        "torch_version": torch.__version__,
        "params": params,
        "fitted": fitted,
    }
    path = os.fspath(path)
    # a fresh mkstemp name (never a planted link), renamed into place whole
    with atomic_path(path, suffix=".cxr") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_CONFIG, json.dumps(config, indent=1))
            archive.writestr(_TENSORS, save_tensors(tensors))
            for member, obj in skops_parts.items():
                archive.writestr(member, _skops_dumps(obj))
            for member, data in extra.items():
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
    check = getattr(estimator, "_validate_params_values", None)
    if check is None:
        check = estimator._check_common_params
    try:
        check()
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
        from safetensors.torch import load as load_tensors

        try:
            tensors = load_tensors(parts.read(_TENSORS))
        except Exception as exc:
            raise ModelFileError(f"{_TENSORS} is not valid: {exc}") from exc
        estimator = expected_class(**_decode_params(config["params"], parts))
        # a file from before checkpoint_dir was dropped at save
        if "checkpoint_dir" in estimator.get_params(deep=False):
            estimator.set_params(checkpoint_dir=None)
        _check_loaded_params(estimator, path)
        if expected_class.__name__ == "PretrainedFeatures":
            return _restore_features(estimator, config["fitted"], tensors, "features.")
        clf = _restore_classifier(estimator, config["fitted"], tensors, parts)
        if "adaptation" in config["fitted"]:
            from ._adapt import adaptation_from_file

            try:
                clf.adaptation_ = adaptation_from_file(
                    config["fitted"]["adaptation"], tensors
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelFileError(
                    f"The adaptation stored in {os.fspath(path)!r} is incomplete "
                    f"({type(exc).__name__}: {exc}); the file is damaged."
                ) from exc
        return clf
