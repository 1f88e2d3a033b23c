"""Grad-CAM and class activation maps of a fitted PretrainedCNNClassifier."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn
from torch.nn import functional as F

from .._images import check_images

__all__ = ["gradcam", "find_target_layer"]


def _is_global_pool(module):
    return "pool" in type(module).__name__.lower() and (
        "adaptive" in type(module).__name__.lower()
        or "select" in type(module).__name__.lower()
    )


def find_target_layer(body, image_size=224, in_chans=3):
    """Name of the layer whose feature map Grad-CAM explains by default.

    That is the module that last produces a spatial (4-d, larger than 1x1)
    feature map in the forward pass: in a ResNet ``layer4``, in torchvision's
    EfficientNet, DenseNet and ConvNeXt ``features``, in timm's EfficientNet
    ``bn2``. It is the map that the global pooling averages, so that the
    class activation map of feature mode is exact.

    Parameters
    ----------
    body : torch.nn.Module
        A headless backbone returning pooled features.
    image_size : int, default=224
        Side of the dummy input used to trace the forward pass (large enough
        that the last map is more than 1x1).
    in_chans : int, default=3
        Channels of the dummy input.

    Returns
    -------
    name : str
        A name of ``body.named_modules()``.

    Examples
    --------
    >>> import torchvision
    >>> from sklearn_cxr.inspection import find_target_layer
    >>> find_target_layer(torchvision.models.resnet18(weights=None))
    'layer4'
    """
    names = {module: name for name, module in body.named_modules()}
    fired = []

    def record(module, args, output):
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            if not _is_global_pool(module) and module in names:
                fired.append((names[module], output.shape[-2] * output.shape[-1]))

    handles = [m.register_forward_hook(record) for m in names if m is not body]
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            param = next(body.parameters(), None)
            device = param.device if param is not None else "cpu"
            body(torch.zeros(1, in_chans, image_size, image_size, device=device))
    finally:
        body.train(was_training)
        for handle in handles:
            handle.remove()
    if not fired:
        raise ValueError(
            f"{type(body).__name__} produces no 4-d feature map; Grad-CAM needs a "
            "convolutional backbone. Pass layer=<name of a module> to choose one."
        )
    # Layers after the pooling (a LayerNorm on the pooled 1x1 map, as in
    # ConvNeXt) and squeeze-excitation branches are not spatial maps.
    spatial = [name for name, area in fired if area > 1]
    return spatial[-1] if spatial else fired[-1][0]


def _resolve_layer(body, layer, image_size, in_chans):
    modules = dict(body.named_modules())
    if layer is None:
        layer = find_target_layer(body, image_size, in_chans)
    if isinstance(layer, nn.Module):
        if not any(layer is m for m in modules.values()):
            raise ValueError(
                f"layer {type(layer).__name__} is not a module of the backbone."
            )
        return layer
    if not isinstance(layer, str) or layer not in modules or layer == "":
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(
            f"layer={layer!r} is not a module of the backbone. Give a name from "
            f"named_modules(), e.g. one of the convolutions {convs[-3:]}, or None "
            "for the last feature map."
        )
    return modules[layer]


class _Capture:
    """Forward hook keeping the layer's output (cloned: later in-place ops)."""

    def __init__(self, module):
        self.output = None
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, args, output):
        if isinstance(output, (tuple, list)):
            output = output[0]
        self.output = output
        return output.clone()

    def remove(self):
        self.handle.remove()


def _encode_targets(estimator, target, predicted, n):
    """Column index of the explained class, per image."""
    classes = estimator.classes_.tolist()
    if target is None:
        return predicted
    values = [target] * n if np.ndim(target) == 0 else list(np.asarray(target))
    if len(values) != n:
        raise ValueError(
            f"target has {len(values)} entries but X has {n} images; pass one "
            "label, or one label per image."
        )
    unknown = [v for v in values if v not in classes]
    if unknown:
        raise ValueError(
            f"target {unknown[0]!r} is not a class of the model; classes: "
            f"{classes}."
        )
    return np.asarray([classes.index(v) for v in values])


def _linear_class_weights(estimator):
    """(n_classes, n_features) weights on the raw pooled features."""
    final = estimator.final_estimator_
    coef = getattr(final, "coef_", None)
    if coef is None:
        raise TypeError(
            f"Class activation maps in feature mode need a linear final "
            f"estimator with coef_ (such as LogisticRegression); got "
            f"{type(final).__name__}. Use a linear final_estimator or "
            "mode='finetune'."
        )
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    n_classes = estimator.n_classes_
    # The final estimator was fitted on encoded labels 0..n-1.
    fitted_classes = np.asarray(final.classes_).astype(int)
    weights = np.zeros((n_classes, coef.shape[1]))
    if coef.shape[0] == 1 and len(fitted_classes) == 2:
        weights[fitted_classes[1]] = coef[0]
        weights[fitted_classes[0]] = -coef[0]
    else:
        weights[fitted_classes] = coef
    scaler = getattr(estimator, "scaler_", None)
    if scaler is not None and getattr(scaler, "scale_", None) is not None:
        # w . (f - mean) / scale = (w / scale) . f + constant
        weights = weights / scaler.scale_
    return torch.as_tensor(weights, dtype=torch.float32)


def gradcam(estimator, X, *, target=None, layer=None, batch_size=None):
    """Grad-CAM heatmaps of a fitted :class:`~sklearn_cxr.PretrainedCNNClassifier`.

    In ``mode="finetune"`` this is Grad-CAM (Selvaraju et al., 2017): the
    feature map of ``layer`` weighted by the mean gradient of the class logit
    with respect to each channel. In ``mode="features"`` it is the class
    activation map (Zhou et al., 2016): the same feature map weighted by the
    final linear model's coefficients for the class (through the
    standardisation), which is what the pooled features feed. Both are
    rectified, resized to each input image and scaled to [0, 1].

    Parameters
    ----------
    estimator : PretrainedCNNClassifier
        Fitted, in either mode; in feature mode the final estimator must be
        linear (have ``coef_``).
    X : images
        Anything the estimator accepts: an ``(n, H, W[, C])`` array, or a
        sequence of paths, PIL images or arrays of any sizes.
    target : label, array-like of labels or None, default=None
        The class explained, one for all or one per image; None explains the
        predicted class of each image.
    layer : str, torch.nn.Module or None, default=None
        The layer of the backbone whose output is explained, by name in
        ``named_modules()``. None picks the last feature map before the
        global pooling (see :func:`find_target_layer`).
    batch_size : int, default=None
        Images per forward pass; None uses the estimator's ``batch_size``.

    Returns
    -------
    heatmaps : ndarray of shape (n, H, W) or list of ndarray
        float32 in [0, 1], aligned with the input images; a list when the
        images differ in size.

    See Also
    --------
    plot_gradcam : overlay heatmaps on their images.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr import PretrainedCNNClassifier
    >>> from sklearn_cxr.inspection import gradcam
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 255, (6, 48, 48), dtype=np.uint8)
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 3)
    >>> clf = PretrainedCNNClassifier(weights=None, image_size=64, max_epochs=1,
    ...     mode="features", random_state=0).fit(X, y)
    >>> heatmaps = gradcam(clf, X[:2])
    >>> heatmaps.shape, float(heatmaps.min()) >= 0, float(heatmaps.max()) <= 1
    ((2, 48, 48), True, True)
    """
    check_is_fitted(estimator, "classes_")
    mode = getattr(estimator, "mode_fitted_", None)
    if mode not in ("finetune", "features"):
        raise TypeError(
            "gradcam explains a fitted PretrainedCNNClassifier; got "
            f"{type(estimator).__name__}."
        )
    images = check_images(X)
    n = len(images)
    preprocessing = estimator.preprocessing_
    transform = preprocessing.transform()
    if mode == "finetune":
        body = estimator.module_.body
        device = estimator.device_
    else:
        body = estimator.features_.backbone_
        device = estimator.features_.device_
        class_weights = _linear_class_weights(estimator).to(device)
    module = _resolve_layer(
        body, layer, max(preprocessing.image_size, 224), preprocessing.in_chans
    )
    batch_size = int(batch_size or estimator.batch_size)

    maps, sizes, predicted = [], [], []
    capture = _Capture(module)
    was_training = body.training
    body.eval()
    try:
        for start in range(0, n, batch_size):
            raw = [images[i] for i in range(start, min(start + batch_size, n))]
            sizes += [tuple(image.shape[-2:]) for image in raw]
            x = torch.stack([transform(image) for image in raw]).to(device)
            if mode == "finetune":
                cams, pred = _gradcam_batch(estimator.module_, capture, x)
            else:
                cams, pooled = _cam_batch(body, capture, x, class_weights)
                pred = _linear_predict(estimator, pooled)
            maps.append(cams)
            predicted.append(pred)
    finally:
        capture.remove()
        body.train(was_training)
    predicted = np.concatenate(predicted) if predicted else np.empty(0, int)
    columns = _encode_targets(estimator, target, predicted, n)
    # maps[b] holds every class's map: (batch, n_classes, h, w)
    stacked = torch.cat(maps) if maps else torch.empty(0)
    heatmaps = []
    for i in range(n):
        cam = F.relu(stacked[i, columns[i]])[None, None]
        cam = F.interpolate(cam, size=sizes[i], mode="bilinear", align_corners=False)
        cam = cam[0, 0]
        peak = cam.max()
        cam = cam / peak if peak > 0 else torch.zeros_like(cam)
        heatmaps.append(cam.clamp_(0, 1).numpy().astype(np.float32))
    if len(set(sizes)) <= 1:
        shape = (n, *sizes[0]) if sizes else (0, 0, 0)
        return np.stack(heatmaps) if heatmaps else np.empty(shape, np.float32)
    return heatmaps


def _gradcam_batch(network, capture, x):
    """Grad-CAM of every class for a batch: (batch, n_classes, h, w)."""
    with torch.enable_grad():
        x = x.clone().requires_grad_(True)
        logits = network(x).float()
        activation = capture.output
        cams = []
        for k in range(logits.shape[1]):
            (grad,) = torch.autograd.grad(
                logits[:, k].sum(), activation, retain_graph=True
            )
            alpha = grad.float().mean(dim=(2, 3), keepdim=True)
            cams.append((alpha * activation.float()).sum(dim=1))
    pred = logits.argmax(dim=1).detach().cpu().numpy()
    return torch.stack(cams, dim=1).detach().cpu(), pred


def _cam_batch(body, capture, x, class_weights):
    """Class activation maps of every class: (batch, n_classes, h, w)."""
    with torch.no_grad():
        pooled = body(x).float()
        activation = capture.output.float()
    if activation.shape[1] != class_weights.shape[1]:
        raise ValueError(
            f"The chosen layer has {activation.shape[1]} channels but the final "
            f"estimator weighs {class_weights.shape[1]} pooled features; in "
            "feature mode use the last feature map (layer=None)."
        )
    cams = torch.einsum("kc,nchw->nkhw", class_weights, activation)
    return cams.cpu(), pooled.cpu().numpy()


def _linear_predict(estimator, pooled):
    """Column of the class the feature-mode model predicts from embeddings."""
    if estimator.scaler_ is not None:
        pooled = estimator.scaler_.transform(pooled)
    # the final estimator predicts the encoded labels 0..n-1, i.e. columns
    return np.asarray(estimator.final_estimator_.predict(pooled)).astype(int)
