"""Label-free adaptation in finetune mode: AdaBN and Deep CORAL.

AdaBN (Li et al. 2016) re-estimates every BatchNorm layer's statistics on
the target site's images after training; Deep CORAL (Sun & Saenko 2016) adds
the distance between the covariances of source and target pooled features to
the training loss. The domain bookkeeping is in :mod:`sklearn_cxr._adapt`.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ._adapt import _state
from ._utils import make_loader, resolve_num_workers

__all__ = ["DeepCoralMixin"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------- finetune mode
def _batchnorms(module):
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def batchnorm_state(module):
    """Copies (on the CPU) of the running statistics of every BatchNorm layer."""
    state = {}
    for name, m in module.named_modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats:
            state[name] = {
                "running_mean": m.running_mean.detach().cpu().clone(),
                "running_var": m.running_var.detach().cpu().clone(),
                "num_batches_tracked": m.num_batches_tracked.detach().cpu().clone(),
            }
    return state


def load_batchnorm_state(module, state):
    modules = dict(module.named_modules())
    for name, buffers in state.items():
        layer = modules[name]
        for key, value in buffers.items():
            getattr(layer, key).copy_(value.to(getattr(layer, key).device))


@contextlib.contextmanager
def batchnorm_statistics(module, state):
    """Temporarily run ``module`` with other BatchNorm statistics."""
    if state is None:
        yield
        return
    current = batchnorm_state(module)
    load_batchnorm_state(module, state)
    try:
        yield
    finally:
        load_batchnorm_state(module, current)


def reestimate_batchnorm(module, dataset, *, batch_size, device, num_workers, seed):
    """AdaBN: recompute every BatchNorm layer's statistics on ``dataset``.

    The statistics become the plain average over all the target images
    (``momentum=None``); weights are untouched. Returns False when the
    network has no BatchNorm layer (nothing to adapt).
    """
    layers = [m for m in _batchnorms(module) if m.track_running_stats]
    if not layers:
        logger.warning(
            "adaptation='adabn': the network has no BatchNorm layer; nothing "
            "is adapted. Use a backbone with BatchNorm (ResNet, EfficientNet)."
        )
        return False
    loader = make_loader(
        dataset,
        batch_size=batch_size,
        num_workers=resolve_num_workers(num_workers, device),
        device=device,
        seed=seed,
    )
    momenta = [m.momentum for m in layers]
    was_training = module.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every target batch
    module.eval()
    for m in layers:
        m.train()
    try:
        with torch.no_grad():
            for inputs, _ in loader:
                batch = inputs["x"].to(device)
                if batch.ndim == 4 and str(device).startswith("cuda"):
                    batch = batch.contiguous(memory_format=torch.channels_last)
                module(batch)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        module.train(was_training)
        module.eval()
    return True


def coral_loss(source, target):
    """Deep CORAL loss: squared Frobenius distance of the feature covariances.

    Divided by ``4 d^2`` as in Sun & Saenko (2016).
    """
    d = source.shape[1]

    def covariance(x):
        x = x - x.mean(dim=0, keepdim=True)
        return x.T @ x / max(x.shape[0] - 1, 1)

    diff = covariance(source) - covariance(target)
    return (diff * diff).sum() / (4.0 * d * d)


class DeepCoralMixin:
    """skorch net mixin: adds ``coral_weight * coral_loss`` on pooled features.

    Each training step also draws a batch of target images (``target_batches_``,
    an endless iterator set before ``fit``) and passes it through the body.
    """

    def __init__(self, *args, coral_weight=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.coral_weight = coral_weight

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = batch
        module = getattr(self.module_, "module", self.module_)
        x_source = Xi["x"].to(self.device)
        x_target = next(self.target_batches_)[0]["x"].to(self.device)
        if x_source.ndim == 4 and str(self.device).startswith("cuda"):
            x_source = x_source.contiguous(memory_format=torch.channels_last)
            x_target = x_target.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            feats_source = module.body(x_source)
            feats_target = module.body(x_target)
            logits = module.head(feats_source)
        y_pred = logits.float()
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        alignment = coral_loss(feats_source.float(), feats_target.float())
        loss = loss + self.coral_weight * alignment
        self.history.record_batch("coral_loss", float(alignment.detach()))
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}


def endless_batches(dataset, *, batch_size, device, num_workers, seed):
    """Shuffled target batches, cycling over the target images forever."""
    loader = make_loader(
        dataset,
        batch_size=batch_size,
        num_workers=resolve_num_workers(num_workers, device),
        device=device,
        shuffle=True,
        seed=seed,
    )
    while True:
        yield from loader


# ------------------------------------------------- finetune-mode plumbing
@contextlib.contextmanager
def target_batches(estimator, net, adapt, train_transform, device, seed):
    """Give a Deep CORAL net its endless target batches while it trains.

    The iterator (and so the target images) is dropped afterwards: the
    fitted model keeps weights, not data.
    """
    if adapt is None or adapt[0] != "deepcoral":
        yield
        return
    from ._images import ImageDataset

    _, _, target_images = adapt
    dataset = ImageDataset(target_images, transform=train_transform)
    net.target_batches_ = endless_batches(
        dataset,
        batch_size=estimator.batch_size,
        device=device,
        num_workers=estimator.num_workers,
        seed=seed,
    )
    try:
        yield
    finally:
        net.target_batches_ = None


def fit_batchnorm_adaptation(estimator, net, adapt, eval_transform, device, seed):
    """Finetune mode: AdaBN on the target images after training.

    The network keeps the target statistics (so that ``module_`` and
    Grad-CAM see the target site); the source statistics are kept in the
    returned state for predictions on source images.
    """
    if adapt is None:
        return None
    from ._images import ImageDataset

    method, split, target_images = adapt
    module = getattr(net.module_, "module", net.module_)
    source_stats = batchnorm_state(module)
    dataset = ImageDataset(target_images, transform=eval_transform)
    adapted = reestimate_batchnorm(
        module,
        dataset,
        batch_size=estimator.batch_size,
        device=device,
        num_workers=estimator.num_workers,
        seed=seed,
    )
    state = _state(method, split)
    state["source_batchnorm"] = source_stats if adapted else None
    return state


def predict_per_domain(estimator, images, domains):
    """Finetune mode: probabilities with each site's BatchNorm statistics."""
    from ._images import ImageDataset
    from ._utils import explain_out_of_memory

    state = estimator.adaptation_
    module = estimator.net_.module_
    transform = estimator._eval_transform()
    proba = np.empty((len(images), estimator.n_classes_), dtype=np.float64)
    is_target = domains < 0
    for rows, stats in (
        (np.flatnonzero(is_target), None),
        (np.flatnonzero(~is_target), state["source_batchnorm"]),
    ):
        if not len(rows):
            continue
        dataset = ImageDataset(images.take(rows), transform=transform)
        module.eval()
        with (
            batchnorm_statistics(module, stats),
            explain_out_of_memory(estimator.batch_size, estimator.image_size),
        ):
            proba[rows] = estimator.net_.predict_proba(dataset)
    return proba
