"""The documentation of the parameters both estimators share, written once.

:class:`PretrainedCNNClassifier` hands these parameters to
:class:`PretrainedFeatures` in feature mode; a docstring line
``%(name)s`` stands for the entry of ``name`` below.
"""

from __future__ import annotations

import re
import textwrap

__all__ = ["SHARED_PARAM_DOCS", "fill_param_docs"]

SHARED_PARAM_DOCS = {
    "backbone": """\
backbone : str or torch.nn.Module, default="resnet18"
    A torchvision classification model name (see :func:`list_backbones`),
    ``"timm:<name>"`` with the optional ``timm`` dependency, or an
    ``nn.Module`` whose classifier is named ``fc``, ``classifier``,
    ``head`` or ``heads``. Its classification layer is removed.""",
    "weights": """\
weights : str, os.PathLike or None, default="DEFAULT"
    A torchvision weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``...), a
    path to a state-dict file (``torch.load(weights_only=True)``; missing
    or unexpected keys are reported by name) or None for random
    initialisation. Weights that cannot be downloaded raise
    :class:`~sklearn_cxr.WeightsUnavailableError` naming the file to put
    under ``$TORCH_HOME/hub/checkpoints/``; never a silent random init.""",
    "image_size": """\
image_size : int, default=224
    Images of any size are resized to ``image_size x image_size``.""",
    "batch_size": """\
batch_size : int, default=32
    Images per batch, for training and inference.""",
    "device": """\
device : {"auto", "cpu", "cuda"}, default="auto"
    ``"auto"`` uses CUDA when available, else the CPU.""",
    "num_workers": """\
num_workers : int or "auto", default=0
    DataLoader workers decoding images; "auto" uses up to 4 on CUDA (where
    decoding would otherwise starve the GPU) and none on the CPU.""",
    "in_chans": """\
in_chans : {1, 3}, default=3
    Channels fed to the network. 3 replicates grayscale images to RGB; 1
    converts to grayscale and sums the stem convolution's pretrained RGB
    filters.""",
    "equalize": """\
equalize : bool, default=False
    Equalise each image's histogram before resizing (reduces acquisition
    shift).""",
    "detail_size": """\
detail_size : int, "auto" or None, default="auto"
    Side, in pixels, the image is first reduced to (antialiased) before the
    resize to ``image_size``: the network then sees no detail finer than
    that scale. "auto" is 128 for frozen features (feature mode and
    :class:`PretrainedFeatures`) at ``image_size`` 224 or more, and None
    below that and for fine-tuning; None or a size at or above
    ``image_size`` adds no such step. Frozen ImageNet features
    read fine texture, which the noise, sharpening and compression of
    another hospital's pipeline change; on the acquisition-shift proxy
    (:doc:`/benchmarks`) this keeps most of the specificity those changes
    cost, at the same grouped-CV ROC AUC.""",
}

_PLACEHOLDER = re.compile(r"^( *)%\((\w+)\)s$", re.MULTILINE)


def fill_param_docs(doc):
    """``doc`` with each ``%(name)s`` line replaced by the shared entry."""
    if doc is None:  # python -OO
        return None
    return _PLACEHOLDER.sub(
        lambda m: textwrap.indent(SHARED_PARAM_DOCS[m.group(2)], m.group(1)), doc
    )
