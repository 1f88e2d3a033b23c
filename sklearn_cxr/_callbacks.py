"""skorch callbacks of finetune mode that are not about the schedule."""

from __future__ import annotations

from skorch.callbacks import Callback, EarlyStopping

__all__ = ["WeightAveraging"]


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
