"""Export a fitted model to run without this package: ONNX and TorchScript.

The exported graph takes the output of :func:`prepare`, a ``uint8`` array of
shape ``(n, image_size, image_size)`` (input name ``images``), and returns
the class probabilities (output name ``probabilities``, columns in the order
of ``classes_``). Scaling to [0, 1], the normalisation of the weights, the
channel handling and the softmax are inside the graph; in feature mode the
standard scaler and the logistic regression are folded into it as one linear
layer. What stays outside is reading the file, the histogram equalisation
(when the model uses it) and the resize, which :func:`prepare` does exactly as
the model does; the model's ``preprocessing_`` describes them for a
reimplementation in another language.

ONNX export needs the optional ``onnx`` package (``pip install
'sklearn-cxr[export]'``, which also installs ``onnxruntime`` to run the
file). It uses PyTorch's TorchScript-based exporter (``dynamo=False``), which
needs no further package.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._images import check_images
from ._preprocessing import Preprocessing
from ._utils import to_builtin

__all__ = ["prepare", "to_onnx", "to_torchscript", "SUPPORTED_FINAL_ESTIMATORS"]

logger = logging.getLogger(__name__)

#: Final estimators of feature mode that can be folded into an exported graph.
SUPPORTED_FINAL_ESTIMATORS = ("LogisticRegression", "LogisticRegressionCV")

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def _check_model(model):
    from ._classifier import PretrainedCNNClassifier

    if not isinstance(model, PretrainedCNNClassifier):
        raise TypeError(
            f"model must be a fitted PretrainedCNNClassifier, got "
            f"{type(model).__name__}."
        )
    check_is_fitted(model, "classes_")
    return model.preprocessing_


def prepare(images, model):
    """Read and resize images exactly as ``model`` does before its network.

    Parameters
    ----------
    images : images
        Anything the estimators accept: image file paths, a ``(n, H, W)`` or
        ``(n, H, W, C)`` array, PIL images or arrays of any size.
    model : PretrainedCNNClassifier or PretrainedFeatures
        The fitted model whose ``preprocessing_`` is applied.

    Returns
    -------
    pixels : ndarray of shape (n, image_size, image_size), uint8
        The input of the exported graphs.

    Notes
    -----
    Chest radiographs are gray; a colour image (channels that differ) is
    converted to gray here and a warning is logged, so the exported graph
    sees its gray version while ``predict_proba`` of a 3-channel model sees
    the colours. Float images in [0, 1] are rounded to uint8 first.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr import PretrainedFeatures
    >>> from sklearn_cxr.export import prepare
    >>> X = np.zeros((2, 50, 40), dtype=np.uint8)
    >>> feats = PretrainedFeatures(backbone="resnet18", weights=None,
    ...                            image_size=32).fit(X)
    >>> prepare(X, feats).shape
    (2, 32, 32)
    """
    preprocessing = (
        model if isinstance(model, Preprocessing) else model.preprocessing_
    )
    collection = check_images(images)
    steps = preprocessing.pixel_transform()
    size = preprocessing.image_size
    out = np.empty((len(collection), size, size), dtype=np.uint8)
    for index in range(len(collection)):
        image = collection[index]
        if image.dtype != torch.uint8:
            image = (image * 255).round().to(torch.uint8)
        pixels = steps(image)
        if pixels.shape[0] == 3 and not (
            torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[0], pixels[2])
        ):
            from torchvision.transforms.v2 import functional as F

            logger.warning(
                "Image %d is in colour; the exported graph takes gray images, so "
                "it is converted to gray.",
                index,
            )
            pixels = F.rgb_to_grayscale(pixels)
        out[index] = pixels[0].numpy()
    return out


class _InferenceGraph(torch.nn.Module):
    """uint8 ``(n, size, size)`` -> class probabilities."""

    def __init__(self, network, mean, std, head=None):
        super().__init__()
        self.network = network
        self.head = head
        channels = len(mean)
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1)
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1)
        )

    def forward(self, images):
        x = images.unsqueeze(1).to(torch.float32) * (1.0 / 255.0)
        # broadcasting one gray channel against the per-channel statistics
        # repeats it to the network's channels
        x = (x - self.mean) / self.std
        out = self.network(x)
        if self.head is not None:
            out = self.head(out)
        return torch.softmax(out, dim=1)


def _linear_head(model):
    """The scaler and the final estimator of feature mode as one Linear."""
    estimator = model.final_estimator_
    name = type(estimator).__name__
    if name not in SUPPORTED_FINAL_ESTIMATORS:
        raise ValueError(
            f"Cannot export a feature-mode model whose final estimator is "
            f"{name}: only {', '.join(SUPPORTED_FINAL_ESTIMATORS)} (a linear model "
            "with a softmax) can be folded into the graph. Refit with "
            "final_estimator=LogisticRegression(), or use mode='finetune'."
        )
    if getattr(estimator, "multi_class", "auto") == "ovr" and len(
        estimator.classes_
    ) > 2:
        raise ValueError(
            f"Cannot export a one-vs-rest {name} of {len(estimator.classes_)} "
            "classes; only the multinomial (softmax) model can be exported. Refit "
            "without multi_class='ovr'."
        )
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    scaler = model.scaler_
    if scaler is not None:
        mean = 0.0 if scaler.mean_ is None else np.asarray(scaler.mean_)
        scale = 1.0 if scaler.scale_ is None else np.asarray(scaler.scale_)
        coef = coef / scale
        intercept = intercept - coef @ (np.zeros(coef.shape[1]) + mean)
    if coef.shape[0] == 1:
        # binary: softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)]
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    # the final estimator saw encoded labels; put rows in the order of classes_
    order = np.asarray(estimator.classes_).astype(int)
    if sorted(order.tolist()) != list(range(len(model.classes_))):
        raise ValueError(
            f"The final estimator knows classes {order.tolist()} of "
            f"{len(model.classes_)}; the graph needs all of them."
        )
    weight = np.empty_like(coef)
    bias = np.empty_like(intercept)
    weight[order], bias[order] = coef, intercept
    head = torch.nn.Linear(coef.shape[1], coef.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return head


def _inference_graph(model):
    preprocessing = _check_model(model)
    if model.mode_fitted_ == "features":
        network = model.features_.backbone_
        head = _linear_head(model)
    else:
        if getattr(model, "amp", False):
            logger.warning(
                "The model predicts with mixed precision (amp=True); the exported "
                "graph computes in float32, so its probabilities differ slightly."
            )
        network, head = model.module_, None
    network = copy.deepcopy(network).cpu().float().eval()
    graph = _InferenceGraph(
        network, preprocessing.channel_mean, preprocessing.channel_std, head
    )
    return graph.eval(), preprocessing


def _metadata(model, preprocessing):
    from ._version import __version__

    return {
        "classes": json.dumps([to_builtin(c) for c in model.classes_.tolist()]),
        "preprocessing": json.dumps(preprocessing.to_dict()),
        "input": f"{INPUT_NAME}: uint8 (n, {preprocessing.image_size}, "
        f"{preprocessing.image_size}) from sklearn_cxr.export.prepare",
        "output": f"{OUTPUT_NAME}: float32 (n, {len(model.classes_)}), columns "
        "in the order of classes",
        "sklearn_cxr_version": __version__,
    }


def _example_input(preprocessing):
    size = preprocessing.image_size
    return torch.zeros((2, size, size), dtype=torch.uint8)


def to_onnx(model, path, *, opset_version=17):
    """Write the whole inference graph of ``model`` as an ONNX file.

    Parameters
    ----------
    model : PretrainedCNNClassifier
        Fitted, in either mode. In feature mode the final estimator must be
        a :class:`~sklearn.linear_model.LogisticRegression` (the default).
    path : str or os.PathLike
        File to write, e.g. ``model.onnx``.
    opset_version : int, default=17
        ONNX operator set.

    Returns
    -------
    path : str

    Notes
    -----
    The input ``images`` is the uint8 output of :func:`prepare` (any batch
    size); the output ``probabilities`` has one column per class, in the
    order of ``classes_``. The file's metadata holds the classes and the
    preprocessing as JSON. The model is checked with ``onnx.checker``.

    Examples
    --------
    >>> import numpy as np, onnxruntime
    >>> from sklearn_cxr import PretrainedCNNClassifier
    >>> from sklearn_cxr.export import prepare, to_onnx
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 255, (8, 32, 32), dtype=np.uint8)
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 4)
    >>> clf = PretrainedCNNClassifier(backbone="resnet18", weights=None,
    ...     image_size=32, mode="features", random_state=0).fit(X, y)
    >>> path = to_onnx(clf, getfixture("tmp_path") / "model.onnx")
    >>> session = onnxruntime.InferenceSession(path)
    >>> proba = session.run(["probabilities"], {"images": prepare(X, clf)})[0]
    >>> bool(np.abs(proba - clf.predict_proba(X)).max() < 1e-4)
    True
    """
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "ONNX export needs the onnx package: pip install 'sklearn-cxr[export]'."
        ) from exc
    graph, preprocessing = _inference_graph(model)
    path = os.fspath(path)
    with warnings.catch_warnings():
        # the TorchScript-based exporter warns that it is deprecated
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(
            graph,
            (_example_input(preprocessing),),
            path,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset_version,
        )
    proto = onnx.load(path)
    onnx.helper.set_model_props(proto, _metadata(model, preprocessing))
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)
    return path


def to_torchscript(model, path):
    """Write the whole inference graph of ``model`` as a TorchScript file.

    Parameters
    ----------
    model : PretrainedCNNClassifier
        Fitted, in either mode (see :func:`to_onnx`).
    path : str or os.PathLike
        File to write, e.g. ``model.pt``; load it with ``torch.jit.load``.

    Returns
    -------
    path : str

    Notes
    -----
    The same graph as :func:`to_onnx`: uint8 ``(n, image_size, image_size)``
    in, probabilities out. The classes and the preprocessing are stored as
    the extra files ``classes.json`` and ``preprocessing.json``.
    """
    graph, preprocessing = _inference_graph(model)
    path = os.fspath(path)
    metadata = _metadata(model, preprocessing)
    with warnings.catch_warnings():
        # torch.jit.trace warns that TorchScript is deprecated
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        with torch.no_grad():
            traced = torch.jit.trace(
                graph, (_example_input(preprocessing),), check_trace=False
            )
        torch.jit.save(
            traced,
            path,
            _extra_files={
                "classes.json": metadata["classes"],
                "preprocessing.json": metadata["preprocessing"],
            },
        )
    return path
