"""The skorch net that trains a :class:`CXRNetwork`, and its one factory.

``make_net`` builds the net both when a classifier is fitted and when a saved
one is loaded, so the two cannot drift apart (the ``amp`` rule, the loss, the
DataLoader settings).
"""

from __future__ import annotations

import torch
from skorch import NeuralNetClassifier
from skorch.utils import to_tensor

from ._adapt_finetune import DeepCoralMixin
from ._progress import PlainPrintLog
from ._utils import resolve_num_workers

__all__ = ["DeepCoralSkorchNet", "SkorchNet", "make_net", "resolve_amp"]


class SkorchNet(NeuralNetClassifier):
    """The skorch net of finetune mode: per-sample weights, mixed precision,
    and an interrupted fit that keeps its last whole epoch.

    Not to be confused with :class:`~sklearn_cxr._backbones.CXRNetwork`, the
    torch module (body + head) that this net trains.
    """

    def __init__(self, *args, amp=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.amp = amp

    @property
    def _default_callbacks(self):
        # the per-epoch table without colour codes in logs
        return [
            (name, PlainPrintLog() if name == "print_log" else callback)
            for name, callback in super()._default_callbacks
        ]

    def _autocast(self):
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        dtype = torch.float16 if device_type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=device_type, dtype=dtype, enabled=self.amp)

    def infer(self, x, **fit_params):
        with self._autocast():
            out = super().infer(x, **fit_params)
        # half-precision logits leave the autocast region as float32
        return out.float() if torch.is_tensor(out) else out

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.device)
        losses = self.criterion_(y_pred.float(), y_true)
        if isinstance(X, dict) and "sample_weight" in X:
            weight = to_tensor(X["sample_weight"], device=self.device).float()
            return (losses * weight).sum() / weight.sum().clamp_min(1e-12)
        return losses.mean()

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        resumed_at = getattr(self, "resumed_at_epoch_", None)
        if epochs is None and resumed_at is not None:
            # a fit resumed from a checkpoint runs only the epochs not yet done
            epochs = max(self.max_epochs - resumed_at, 0)
        self.resumed_at_epoch_ = None  # later partial_fit calls: skorch's rule
        self.interrupted_ = False
        self._snapshot_epoch()
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = True
            self._restore_last_epoch()
            raise  # skorch's partial_fit catches it and ends training
        finally:
            self.last_epoch_state_ = None

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        self._snapshot_epoch()

    def _snapshot_epoch(self):
        """Keep the weights of the last completed epoch for an interrupted fit."""
        self.completed_epochs_ = len(self.history)
        self.last_epoch_state_ = (
            {
                k: v.detach().to("cpu", copy=True)
                for k, v in self.module_.state_dict().items()
            }
            if self.completed_epochs_
            else None
        )

    def _restore_last_epoch(self):
        """Drop a half-done epoch: its history row and its weight updates."""
        if len(self.history) == self.completed_epochs_:
            return
        while len(self.history) > self.completed_epochs_:
            self.history.pop()
        if self.last_epoch_state_ is not None:
            self.module_.load_state_dict(self.last_epoch_state_)

    def initialize(self):
        super().initialize()
        enabled = self.amp and str(self.device).startswith("cuda")
        self.grad_scaler_ = torch.amp.GradScaler("cuda", enabled=enabled)
        return self

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.notify(
            "on_grad_computed",
            named_parameters=list(self.get_all_learnable_params()),
            batch=batch,
        )
        for name in self._optimizers:
            self.grad_scaler_.step(getattr(self, name + "_"))
        self.grad_scaler_.update()
        return step


class DeepCoralSkorchNet(DeepCoralMixin, SkorchNet):
    """``SkorchNet`` trained with a Deep CORAL loss toward a target site."""



def resolve_amp(amp, device):
    """Whether mixed precision is on: ``amp="auto"`` means on CUDA only."""
    if amp == "auto":
        return str(device).startswith("cuda")
    return bool(amp)


def make_net(
    module, *, n_classes, device, amp, batch_size, num_workers, net_class=None,
    loader_device=None, **settings,
):
    """The skorch net around ``module``, for training or for prediction.

    Parameters
    ----------
    module : torch.nn.Module
        The network (:class:`~sklearn_cxr._backbones.CXRNetwork`).
    n_classes : int
        Its outputs; the net's classes are ``0 .. n_classes - 1``.
    device : str or None
        Where the tensors go (also decides ``pin_memory`` and the workers,
        unless ``loader_device`` is given). None leaves the placement to the
        net (Accelerate places the tensors itself).
    amp : {"auto", True, False}
        The estimator's ``amp`` parameter (see :func:`resolve_amp`).
    batch_size : int
    num_workers : int or "auto"
        The estimator's ``num_workers`` parameter.
    net_class : type, default=None
        :class:`SkorchNet` when None.
    loader_device : str, default=None
        The device of this process, whose DataLoader settings apply when
        ``device`` is None; ``device`` when None.
    **settings
        Any other skorch argument (``lr``, ``callbacks``, ``criterion__*``,
        ``optimizer__*``, ``train_split``...); they override the defaults.

    Returns
    -------
    net : SkorchNet
        Not initialised.
    """
    loader = str(device if loader_device is None else loader_device)
    pin = loader.startswith("cuda")
    workers = resolve_num_workers(num_workers, loader)
    kwargs = {
        "criterion": torch.nn.CrossEntropyLoss,
        "criterion__reduction": "none",
        "optimizer": torch.optim.AdamW,
        "batch_size": batch_size,
        "train_split": None,
        "iterator_train__shuffle": True,
        "iterator_train__num_workers": workers,
        "iterator_train__pin_memory": pin,
        "iterator_valid__num_workers": workers,
        "iterator_valid__pin_memory": pin,
        "classes": list(range(n_classes)),
        "device": device,
        "amp": resolve_amp(amp, loader),
        "verbose": 0,
    }
    kwargs.update(settings)
    return (SkorchNet if net_class is None else net_class)(module, **kwargs)
