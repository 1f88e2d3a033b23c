"""The skorch callbacks of finetune mode: schedule, freeze, divergence stop,
validation ROC AUC and early stopping, weight averaging."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from skorch.callbacks import (
    Callback,
    EarlyStopping,
    EpochScoring,
    LRScheduler,
    ProgressBar,
)

from ._checks import diverged_message

__all__ = [
    "VALID_AUC",
    "FineTuneSchedule",
    "FreezeBody",
    "StopOnNonFiniteLoss",
    "WeightAveraging",
    "finetune_callbacks",
    "valid_roc_auc",
]

#: The history column of the validation ROC AUC, monitored by early stopping
#: and by :mod:`sklearn_cxr.tuning`'s pruning.
VALID_AUC = "valid_auc"


class WeightAveraging(Callback):
    """Exponential moving average of the weights (EMA), used for validation and
    kept at the end of training.

    Built on :class:`torch.optim.swa_utils.AveragedModel` (parameters and
    BatchNorm statistics both averaged). The average is updated after every
    training batch with the decay ``1 - 1 / (horizon * steps_per_epoch)``,
    capped early on by ``(1 + t) / (10 + t)`` at step ``t`` so that the
    first updates are not dominated by the initial weights. Validation
    batches run with the averaged weights, so early stopping selects and
    restores averaged weights; training continues from the raw weights.

    Parameters
    ----------
    horizon : float
        Time constant of the average, in epochs.
    steps_per_epoch : int
        Optimiser steps per epoch.
    """

    def __init__(self, horizon, steps_per_epoch):
        self.horizon = horizon
        self.steps_per_epoch = steps_per_epoch

    def initialize(self):
        self.averaged_ = None
        self.raw_state_ = None
        self.steps_ = 0
        return self

    def _decay(self):
        decay = 1.0 - 1.0 / max(self.horizon * self.steps_per_epoch, 1.0)
        return min(decay, (1.0 + self.steps_) / (10.0 + self.steps_))

    def on_train_begin(self, net, **kwargs):
        from torch.optim.swa_utils import AveragedModel

        def ema(averaged, current, num_averaged):
            decay = self._decay()
            return averaged * decay + current * (1.0 - decay)

        self.averaged_ = AveragedModel(net.module_, avg_fn=ema, use_buffers=True)
        self.averaged_.requires_grad_(False)
        self.steps_ = 0

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training and self.averaged_ is not None:
            self.averaged_.update_parameters(net.module_)
            self.steps_ += 1

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training or self.averaged_ is None or self.raw_state_ is not None:
            return
        # first validation batch of the epoch: validate the averaged weights
        self.raw_state_ = {
            k: v.detach().clone() for k, v in net.module_.state_dict().items()
        }
        self._load_average(net)

    def on_epoch_end(self, net, **kwargs):
        # after early stopping took its snapshot: back to the raw weights
        if self.raw_state_ is not None:
            net.module_.load_state_dict(self.raw_state_)
            self.raw_state_ = None

    def on_train_end(self, net, **kwargs):
        if self.averaged_ is None:
            return
        restored_best = any(
            isinstance(cb, EarlyStopping)
            and cb.load_best
            and cb.best_model_weights_ is not None
            and cb.best_epoch_ != net.history[-1, "epoch"]
            for _, cb in net.callbacks_
        )
        if not restored_best and len(net.history):
            self._load_average(net)
        self.averaged_ = None  # the fitted model keeps one copy of the weights
        self.raw_state_ = None

    def _load_average(self, net):
        net.module_.load_state_dict(self.averaged_.module.state_dict())


class FineTuneSchedule:
    """Learning-rate factor per optimiser step: fastai's ``fine_tune`` shape.

    The head-only phase (``freeze_epochs``) and the whole-network phase each
    get a linear warm-up over their first ``warmup`` fraction, then a cosine
    decay to zero.
    """

    def __init__(self, steps_per_epoch, freeze_epochs, max_epochs, warmup=0.1):
        self.steps_per_epoch = steps_per_epoch
        self.freeze_epochs = freeze_epochs
        self.max_epochs = max_epochs
        self.warmup = warmup

    def __call__(self, step):
        boundary = self.freeze_epochs * self.steps_per_epoch
        total = self.max_epochs * self.steps_per_epoch
        if step < boundary:
            start, length = 0, boundary
        else:
            start, length = boundary, max(total - boundary, 1)
        t = min(max((step - start) / length, 0.0), 1.0)
        if t < self.warmup:
            return max(t / self.warmup, 0.01)
        t = (t - self.warmup) / (1.0 - self.warmup)
        return max(0.5 * (1.0 + math.cos(math.pi * t)), 0.01)


class FreezeBody(Callback):
    """Train only the new head for the first ``freeze_epochs`` epochs."""

    def __init__(self, freeze_epochs):
        self.freeze_epochs = freeze_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # 1-based: the row of this epoch exists
        module = getattr(net.module_, "module", net.module_)  # DDP wrapper
        module.body.requires_grad_(epoch > self.freeze_epochs)


class StopOnNonFiniteLoss(Callback):
    """End a fit whose training loss became NaN or infinite, with a clear error.

    Without it a diverged fit "succeeds": every probability is NaN and
    ``predict`` answers the first class for every image.
    """

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training and loss is not None and not torch.isfinite(loss).all():
            epoch = len(net.history)
            n_batch = len(net.history[-1, "batches"]) if epoch else 0
            raise ValueError(diverged_message(loss.item(), epoch, n_batch, net.lr))


def valid_roc_auc(net, X, y):
    """ROC AUC of the validation set (one-vs-rest for several classes)."""
    y = np.asarray(y)
    proba = net.predict_proba(X)
    if len(np.unique(y)) < 2:
        return float(np.mean(proba.argmax(axis=1) == y))
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(
        roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1]))
    )


def finetune_callbacks(
    *, steps_per_epoch, freeze_epochs, max_epochs, validate, patience, ema, verbose
):
    """The built-in callbacks of a finetune fit, in the order they must run.

    Parameters
    ----------
    steps_per_epoch : int
    freeze_epochs, max_epochs, patience : int
        The estimator's parameters.
    validate : bool
        Whether there is a validation split (score it, stop early on it).
    ema : float or None
        The estimator's ``ema``.
    verbose : int

    Returns
    -------
    callbacks : list of (name, callback)
    """
    callbacks = [
        ("finite_loss", StopOnNonFiniteLoss()),
        ("freeze_body", FreezeBody(freeze_epochs)),
        (
            "lr_schedule",
            LRScheduler(
                policy=torch.optim.lr_scheduler.LambdaLR,
                lr_lambda=FineTuneSchedule(steps_per_epoch, freeze_epochs, max_epochs),
                step_every="batch",
            ),
        ),
    ]
    if validate:
        callbacks += [
            (
                VALID_AUC,
                EpochScoring(valid_roc_auc, lower_is_better=False, name=VALID_AUC),
            ),
            (
                "early_stopping",
                EarlyStopping(
                    monitor=VALID_AUC,
                    lower_is_better=False,
                    patience=patience,
                    load_best=True,
                ),
            ),
        ]
    if ema is not None:
        # after early stopping: it must snapshot the averaged weights
        callbacks.append(("weight_averaging", WeightAveraging(ema, steps_per_epoch)))
    if verbose:
        # per-batch bars on stderr, beside skorch's per-epoch table
        callbacks.append(("progress_bar", ProgressBar()))
    return callbacks
