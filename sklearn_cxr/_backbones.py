"""Backbone registry, weights loading and the head swap."""

from __future__ import annotations

import contextlib
import copy
import difflib
import io
import logging
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from ._offline_weights import (
    OFFLINE_NAME,
    OFFLINE_WEIGHTS,
    _package_file,
    offline_state_dict,
)
from .exceptions import WeightsUnavailableError

__all__ = [
    "Backbone",
    "CXRNetwork",
    "WeightsUnavailableError",
    "build_architecture",
    "build_head",
    "check_backbone_name",
    "list_backbones",
    "load_backbone",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision_names():
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def list_backbones(source="torchvision"):
    """List the backbone names accepted by the estimators.

    Parameters
    ----------
    source : {"torchvision", "timm", "all"}, default="torchvision"
        ``"torchvision"`` lists torchvision's classification models;
        ``"timm"`` lists timm's models prefixed with ``"timm:"`` (needs the
        optional ``timm`` dependency); ``"all"`` lists both.

    Returns
    -------
    names : list of str
        Sorted names.

    Examples
    --------
    >>> from sklearn_cxr import list_backbones
    >>> "resnet18" in list_backbones()
    True
    """
    if source not in ("torchvision", "timm", "all"):
        raise ValueError(
            f"source must be 'torchvision', 'timm' or 'all', got {source!r}."
        )
    names = []
    if source in ("torchvision", "all"):
        names += _torchvision_names()
    if source in ("timm", "all"):
        timm = _import_timm("list timm backbones")
        names += ["timm:" + name for name in timm.list_models()]
    return sorted(names)


def _import_timm(purpose):
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            f"To {purpose} install the optional timm dependency: "
            "pip install 'sklearn-cxr[timm]'."
        ) from exc
    return timm


def _suggest(name, valid):
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _suggest_backbone(name):
    """Close torchvision names and ``timm:`` names (when timm is installed)."""
    bare = str(name).removeprefix("timm:")
    try:
        import timm
    except ImportError:
        timm = None
    if timm is not None and timm.is_model(bare):
        return f" Did you mean 'timm:{bare}'?"
    candidates = {n: n for n in _torchvision_names()}
    if timm is not None:
        # a torchvision name wins over timm's model of the same name
        for timm_name in timm.list_models():
            candidates.setdefault(timm_name, "timm:" + timm_name)
    close = difflib.get_close_matches(bare, list(candidates), n=4, cutoff=0.6)
    if not close:
        return ""
    return f" Did you mean {' or '.join(repr(candidates[c]) for c in close)}?"


def check_backbone_name(backbone, weights="DEFAULT"):
    """Check a backbone name and its weights name without building anything.

    Cheap (no weights are read, nothing is downloaded): for command lines and
    scripts that should fail before reading any data.

    Parameters
    ----------
    backbone : str or torch.nn.Module
        As :func:`load_backbone` takes it.
    weights : str, os.PathLike or None, default="DEFAULT"
        As :func:`load_backbone` takes it.

    Raises
    ------
    ValueError
        If the backbone or the weights name is unknown (with suggestions).
    FileNotFoundError
        If ``weights`` is a path to a missing file.
    ImportError
        If an optional package the names need is missing.
    """
    if isinstance(backbone, nn.Module) or not isinstance(backbone, str):
        return
    if weights is not None and _is_path(weights):
        if not os.path.isfile(os.fspath(weights)):
            raise FileNotFoundError(
                f"weights file not found: {os.fspath(weights)}. Pass an existing "
                "state-dict file, a weights name such as 'DEFAULT', or None."
            )
        weights = None
    if backbone.startswith("timm:"):
        name = backbone[5:]
        _checked_timm(name, weights)
        if weights == OFFLINE_NAME:
            _package_file_check(name)
        return
    if backbone not in _torchvision_names():
        raise ValueError(_unknown_backbone_message(backbone))
    if weights is not None:
        _resolve_torchvision_weights(backbone, weights)


def _unknown_backbone_message(name):
    return (
        f"Unknown backbone {name!r}.{_suggest_backbone(name)} Use a torchvision "
        "model name, 'timm:<name>' for a timm model, or an nn.Module; "
        "sklearn_cxr.list_backbones('all') lists the names."
    )


def _check_timm_weights(name, weights):
    allowed = ["'DEFAULT'", "a path to a state-dict file", "None"]
    if name in OFFLINE_WEIGHTS:
        allowed.insert(1, f"{OFFLINE_NAME!r} (offline, from an installed package)")
    if weights is None or weights == "DEFAULT" or _is_path(weights):
        return
    if weights == OFFLINE_NAME and name in OFFLINE_WEIGHTS:
        return
    hint = ""
    if weights == OFFLINE_NAME:
        hint = (
            f" {OFFLINE_NAME!r} weights are available offline only for "
            + ", ".join(f"'timm:{n}'" for n in OFFLINE_WEIGHTS)
            + "."
        )
    raise ValueError(
        f"Unknown weights {weights!r} for timm backbone {name!r}: use "
        + ", ".join(allowed[:-1])
        + f" or {allowed[-1]}.{hint}"
    )


def _package_file_check(name):
    """Raise ImportError where the package of offline weights is missing."""
    import importlib

    module = OFFLINE_WEIGHTS[name][1]
    try:
        importlib.import_module(module)  # tiny: the weights are read later
    except ImportError:
        _package_file(name)  # raises the ImportError that says what to install


@dataclass
class Backbone:
    """A headless backbone and the preprocessing its weights expect."""

    body: nn.Module
    mean: tuple
    std: tuple
    interpolation: str
    name: str


class CXRNetwork(nn.Module):
    """A headless backbone followed by a new classification head.

    ``forward(x)`` returns logits; ``sample_weight`` is accepted (and ignored)
    so that skorch can pass the per-sample weights that the loss uses.
    """

    def __init__(self, body, head):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x, sample_weight=None):
        return self.head(self.body(x))

    @property
    def in_features(self):
        """Width of the pooled features the head takes."""
        linear = next(m for m in self.head.modules() if isinstance(m, nn.Linear))
        return linear.in_features


def build_head(n_features, n_classes, hidden_units=(), dropout=0.0):
    """Build the new head: optional hidden layers, then one output per class."""
    layers = []
    width = n_features
    for units in hidden_units:
        layers += [nn.Linear(width, int(units)), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = int(units)
    if dropout and not hidden_units:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def _strip_head(model):
    """Remove the classification layer of ``model`` in place.

    Returns a short description of what was removed.
    """
    if hasattr(model, "reset_classifier") and hasattr(model, "num_features"):
        model.reset_classifier(0)  # timm
        return "reset_classifier"
    if getattr(model, "aux_logits", False):
        # Inception v3 and GoogLeNet: auxiliary heads only train the old task.
        model.aux_logits = False
        for aux in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    for attr in ("fc", "classifier", "head", "heads", "last_linear"):
        layer = getattr(model, attr, None)
        if layer is None:
            continue
        if isinstance(layer, nn.Linear):
            setattr(model, attr, nn.Identity())
            return attr
        if isinstance(layer, nn.Sequential):
            children = list(layer.children())
            linear_at = [
                i for i, child in enumerate(children) if isinstance(child, nn.Linear)
            ]
            if linear_at:
                layer[linear_at[-1]] = nn.Identity()
                return f"{attr}[{linear_at[-1]}]"
            if any(isinstance(child, nn.Conv2d) for child in children):
                setattr(
                    model, attr, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
                )
                return attr
    raise ValueError(
        f"Cannot find the classification layer of {type(model).__name__}: "
        "expected an nn.Linear (or a Sequential ending in one) named fc, "
        "classifier, head or heads, or a timm model with reset_classifier. Pass "
        "a module whose forward returns pooled features instead."
    )


def _first_conv(model):
    """``(parent, name, conv)`` of the first ``nn.Conv2d`` (the stem), or None."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, child_name, child
    return None


def _adapt_first_conv(model, in_chans, name="the backbone"):
    """Make the stem take ``in_chans`` channels.

    A stem that already takes ``in_chans`` channels (torchxrayvision's
    models, ``timm.create_model(..., in_chans=1)``) is kept as it is; a
    3-channel stem is adapted to 1 channel by summing its RGB filters.
    """
    found = _first_conv(model)
    if found is None:
        if in_chans == 3:
            return None  # nothing to check against: probe_features will tell
        raise ValueError(
            f"{name} has no convolution to adapt to in_chans=1; pass in_chans=3."
        )
    parent, child_name, conv = found
    if conv.in_channels == in_chans:
        return child_name
    if conv.in_channels == 3 and in_chans == 1:
        # deepcopy keeps subclasses (timm's "same"-padded convs) intact
        new = copy.deepcopy(conv)
        new.in_channels = in_chans
        new.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True))
        setattr(parent, child_name, new)
        return child_name
    hint = (
        f"pass in_chans={conv.in_channels}"
        if conv.in_channels in (1, 3)
        else "use a backbone whose first convolution takes 1 or 3 channels"
    )
    raise ValueError(
        f"The first convolution of {name} ({child_name}) takes "
        f"{conv.in_channels} channel(s), but in_chans={in_chans}; {hint}."
    )


def _module_scaling(model, name):
    """The input mean and std a module backbone declares, else ImageNet's.

    A module declares them as timm models do, in a ``pretrained_cfg`` dict
    with ``"mean"`` and ``"std"`` (1 or 3 values each, in the 0-1 pixel
    scale): ``module.pretrained_cfg = {"mean": (0.5,), "std": (0.25,)}``.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if not isinstance(cfg, dict):
        cfg = {}
    mean = cfg.get("mean", IMAGENET_MEAN)
    std = cfg.get("std", IMAGENET_STD)
    try:
        mean = tuple(float(v) for v in mean)
        std = tuple(float(v) for v in std)
        valid = (
            len(mean) in (1, 3)
            and len(std) in (1, 3)
            and all(math.isfinite(v) for v in mean + std)
            and all(v > 0 for v in std)
        )
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"{name} declares pretrained_cfg mean={cfg.get('mean')!r}, "
            f"std={cfg.get('std')!r}; give 1 or 3 finite numbers each, in the "
            "0-1 pixel scale, with every std above 0."
        )
    return mean, std


def _load_state_dict_file(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file not found: {path!r}. Pass an existing state-dict file, "
            "a torchvision weights name such as 'DEFAULT', or None."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Cannot load weights file {path!r} with torch.load(weights_only=True): "
            f"{exc}. Only plain state dicts of tensors are accepted; a file that "
            "needs unpickling of arbitrary objects is refused."
        ) from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in state and isinstance(state[key], dict) and len(state) <= 4:
                state = state[key]
                break
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"weights file {path!r} does not hold a state dict of tensors."
        )
    return state


def _load_into(model, state, path):
    """Load ``state`` into ``model`` strictly; report key mismatches by name."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:

        def show(keys):
            head = ", ".join(keys[:8])
            return head + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches: {show(mismatched)}")
        raise ValueError(
            f"weights file {os.fspath(path)!r} does not match the backbone "
            f"{type(model).__name__}: " + "; ".join(parts) + ". Check that the "
            "file was saved from the same architecture."
        )
    model.load_state_dict(state, strict=True)


def _torchvision_weights_enum(name):
    from torchvision.models import get_model_weights

    return get_model_weights(name)


def _resolve_torchvision_weights(name, weights):
    enum = _torchvision_weights_enum(name)
    valid = list(enum.__members__)
    if isinstance(weights, enum):
        return weights
    if isinstance(weights, str) and weights in enum.__members__:
        return enum[weights]
    if isinstance(weights, str) and "." in weights:
        prefix, _, member = weights.partition(".")
        if prefix == enum.__name__ and member in enum.__members__:
            return enum[member]
    hint = _suggest(weights, valid)
    if weights == OFFLINE_NAME:
        hint = (
            f" {OFFLINE_NAME!r} weights are available offline only for "
            + ", ".join(f"'timm:{n}'" for n in OFFLINE_WEIGHTS)
            + f"; {name!r} takes torchvision's weights, downloaded once."
        )
    raise ValueError(
        f"Unknown weights {weights!r} for backbone {name!r}. Valid names: "
        f"{', '.join(valid)}, a path to a state-dict file, or None for random "
        f"initialisation.{hint}"
    )


def _fetch_torchvision_state(weights_enum):
    """Return the state dict of torchvision weights from the cache or network."""
    from urllib.error import URLError

    hub_dir = torch.hub.get_dir()
    filename = os.path.basename(weights_enum.url)
    cached = os.path.join(hub_dir, "checkpoints", filename)
    if os.path.isfile(cached):
        logger.info("Loading cached weights %s", cached)
        return torch.load(cached, map_location="cpu", weights_only=True)
    logger.info("Downloading %s to %s", weights_enum.url, cached)
    try:
        # torch.hub prints "Downloading: ..." to stdout even without progress
        with contextlib.redirect_stdout(io.StringIO()):
            return weights_enum.get_state_dict(progress=False, check_hash=True)
    except (URLError, OSError, RuntimeError, ConnectionError) as exc:
        if os.path.exists(cached):  # never keep a partial download
            os.remove(cached)
        raise WeightsUnavailableError(
            f"Cannot download the pretrained weights {weights_enum} ({exc}). "
            f"Place the file {filename!r} (from {weights_enum.url}) in "
            f"{os.path.join(hub_dir, 'checkpoints')!r} (set TORCH_HOME to move "
            "that folder), or pass weights=<path to a state-dict file>, or "
            "weights=None for random initialisation."
        ) from exc


def _is_path(weights):
    return isinstance(weights, os.PathLike) or (
        isinstance(weights, str)
        and (os.sep in weights or weights.endswith((".pth", ".pt", ".bin")))
    )


def _load_torchvision(name, weights):
    from torchvision.models import get_model

    valid = _torchvision_names()
    if name not in valid:
        raise ValueError(_unknown_backbone_message(name))
    enum = _torchvision_weights_enum(name)
    preprocess = enum.DEFAULT.transforms()
    mean, std = tuple(preprocess.mean), tuple(preprocess.std)
    interpolation = preprocess.interpolation.value
    kwargs = {}
    if name in ("inception_v3", "googlenet"):
        kwargs = {"aux_logits": True, "init_weights": False}
    model = get_model(name, weights=None, **kwargs)
    if weights is None:
        pass
    elif _is_path(weights):
        _load_into(model, _load_state_dict_file(weights), weights)
    else:
        resolved = _resolve_torchvision_weights(name, weights)
        state = _fetch_torchvision_state(resolved)
        _load_into(model, state, resolved.url)
        preprocess = resolved.transforms()
        mean, std = tuple(preprocess.mean), tuple(preprocess.std)
        interpolation = preprocess.interpolation.value
    if name == "inception_v3" and weights is not None:
        model.transform_input = False
    return model, mean, std, interpolation


def _checked_timm(name, weights):
    """timm, once ``name`` is a timm model and ``weights`` fit it."""
    timm = _import_timm(f"use the backbone 'timm:{name}'")
    if not timm.is_model(name):
        raise ValueError(
            f"Unknown timm backbone {name!r}.{_suggest_backbone(name)} See "
            "sklearn_cxr.list_backbones('timm')."
        )
    _check_timm_weights(name, weights)
    return timm


def _load_timm(name, weights):
    timm = _checked_timm(name, weights)
    if weights == OFFLINE_NAME:
        model = timm.create_model(name, pretrained=False)
        state, source = offline_state_dict(name, model)
        logger.info("Loading ImageNet weights of %s from %s", name, source)
        _load_into(model, state, source)
    elif weights is None or _is_path(weights):
        model = timm.create_model(name, pretrained=False)
        if weights is not None:
            _load_into(model, _load_state_dict_file(weights), weights)
    elif weights == "DEFAULT":
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as exc:
            offline = (
                f" or weights={OFFLINE_NAME!r} (ImageNet weights from an "
                "installed package, no network needed)"
                if name in OFFLINE_WEIGHTS
                else ""
            )
            raise WeightsUnavailableError(
                f"Cannot download the pretrained weights of timm model {name!r} "
                f"({type(exc).__name__}: {exc}). Without network, save a state "
                f"dict of the model and pass weights=<path>{offline}, or "
                "weights=None."
            ) from exc
    cfg = timm.data.resolve_data_config({}, model=model)
    return model, tuple(cfg["mean"]), tuple(cfg["std"]), cfg["interpolation"]


def load_backbone(backbone, weights="DEFAULT", *, in_chans=3):
    """Build a headless backbone with its weights.

    Parameters
    ----------
    backbone : str or torch.nn.Module
        A torchvision model name, ``"timm:<name>"`` or a module.
    weights : str, os.PathLike or None, default="DEFAULT"
        A weights name, a path to a state-dict file or None.
    in_chans : {1, 3}, default=3
        Channels of the input; 1 adapts a 3-channel stem convolution by
        summing its pretrained RGB filters. A stem that already takes
        ``in_chans`` channels is kept; one that takes another count is an
        error saying which ``in_chans`` to pass.

    Returns
    -------
    backbone : Backbone
    """
    if isinstance(backbone, nn.Module):
        model = copy.deepcopy(backbone)
        mean, std = _module_scaling(model, f"The backbone {type(model).__name__}")
        cfg = getattr(model, "pretrained_cfg", None)
        cfg = cfg if isinstance(cfg, dict) else {}
        interpolation = cfg.get("interpolation", "bilinear")
        if weights is not None and weights != "DEFAULT":
            if not _is_path(weights):
                raise ValueError(
                    "With an nn.Module backbone, weights must be 'DEFAULT' or None "
                    f"(keep the module's own weights) or a path; got {weights!r}."
                )
            _load_into(model, _load_state_dict_file(weights), weights)
        name = type(backbone).__name__
    elif isinstance(backbone, str) and backbone.startswith("timm:"):
        model, mean, std, interpolation = _load_timm(backbone[5:], weights)
        name = backbone
    elif isinstance(backbone, str):
        model, mean, std, interpolation = _load_torchvision(backbone, weights)
        name = backbone
    else:
        raise TypeError(
            "backbone must be a torchvision model name, 'timm:<name>' or an "
            f"nn.Module, got {type(backbone).__name__}."
        )
    _strip_head(model)
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans!r}.")
    _adapt_first_conv(model, in_chans, f"the backbone {name}")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    return Backbone(
        body=model,
        mean=mean,
        std=std,
        interpolation=interpolation,
        name=name,
    )


def build_architecture(backbone, in_chans):
    """The headless architecture of ``backbone`` with random weights, to load
    saved weights into; it draws from no random stream of the caller."""
    with torch.random.fork_rng(devices=[]):
        return load_backbone(backbone, None, in_chans=in_chans).body


def probe_features(body, image_size, in_chans):
    """Run one dummy image through ``body`` and return the feature width."""
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            out = body(torch.zeros(1, in_chans, image_size, image_size))
    except Exception as exc:
        raise ValueError(
            f"The backbone failed on a {image_size}x{image_size} input: {exc}. "
            "Some backbones (vision transformers) need a fixed image_size such as "
            "224; a backbone module whose forward does not return pooled "
            "features needs its own head removed."
        ) from exc
    finally:
        body.train(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.ndim != 2:
        raise ValueError(
            f"The headless backbone returns shape {tuple(out.shape)}; pooled "
            "features of shape (n, d) are needed."
        )
    return int(out.shape[1])
