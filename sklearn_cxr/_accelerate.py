"""Data-parallel fine-tuning with Hugging Face Accelerate (optional).

:class:`PretrainedCNNClassifier` builds its skorch net from
:class:`AccelerateSkorchNet` when ``accelerator`` is set. The script is then
started once per device by ``accelerate launch``; every process fits on the
same images, Accelerate gives each one its shard of every batch and averages
the gradients (DistributedDataParallel), so all processes end with the same
weights.
"""

from __future__ import annotations

import copy
import math

import torch
from skorch.hf import AccelerateMixin

from ._callbacks import FineTuneSchedule
from ._net import SkorchNet

__all__ = ["make_accelerator", "accelerated_net"]

_INSTALL = "pip install 'sklearn-cxr[distributed]'"


def make_accelerator(spec):
    """The :class:`accelerate.Accelerator` that ``accelerator=spec`` asks for.

    Parameters
    ----------
    spec : True, dict or accelerate.Accelerator
        True builds ``Accelerator()``; a dict gives its keyword arguments
        (e.g. ``{"mixed_precision": "bf16"}``); an ``Accelerator`` is used as
        it is. Unless the dict gives ``kwargs_handlers``, DistributedDataParallel
        is told ``find_unused_parameters=True``, which the frozen body of the
        first ``freeze_epochs`` needs.

    Returns
    -------
    accelerator : accelerate.Accelerator
    """
    try:
        from accelerate import Accelerator, DistributedDataParallelKwargs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"accelerator={spec!r} needs the 'accelerate' package: {_INSTALL}"
        ) from exc
    if isinstance(spec, Accelerator):
        return spec
    if spec is True:
        spec = {}
    if isinstance(spec, dict):
        spec = dict(spec)
        # The body is frozen for freeze_epochs: its parameters get no gradient
        # then, which DistributedDataParallel accepts only when told.
        spec.setdefault(
            "kwargs_handlers",
            [DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        try:
            return Accelerator(**spec)
        except TypeError as exc:
            raise TypeError(
                f"accelerator={spec!r}: {exc}. The dict holds keyword arguments "
                "of accelerate.Accelerator, e.g. {'mixed_precision': 'bf16'}."
            ) from exc
    raise TypeError(
        "accelerator must be None, True, a dict of accelerate.Accelerator "
        f"arguments or an accelerate.Accelerator, got {spec!r}."
    )


def accelerated_net(spec):
    """The net class and the keyword arguments that train under Accelerate.

    Returns
    -------
    net_class : type
    kwargs : dict
        ``accelerator``, ``device=None`` (Accelerate places the tensors),
        and ``amp=False`` (Accelerate's ``mixed_precision`` replaces it).
    device : str
        The device of this process, ``"cpu"`` or ``"cuda:<local rank>"``.
    """
    accelerator = make_accelerator(spec)
    kwargs = {"accelerator": accelerator, "device": None, "amp": False}
    return AccelerateSkorchNet, kwargs, _device_name(accelerator)


def _device_name(accelerator):
    device = accelerator.device
    return "cpu" if device.type == "cpu" else str(device)


class AccelerateSkorchNet(AccelerateMixin, SkorchNet):
    """The classifier's skorch net, trained under an ``accelerate.Accelerator``.

    Four changes to skorch's ``AccelerateMixin``:

    - the loss, which has no trainable parameters, is moved to the device
      instead of being wrapped (DistributedDataParallel refuses it);
    - the gradient scaler of ``SkorchNet`` is created (disabled; Accelerate
      scales the loss itself);
    - the callbacks see the validation targets and predictions gathered from
      all processes, so the per-epoch ``valid_auc`` and hence early stopping
      are the same in every process (a process that stopped alone would
      leave the others waiting for it);
    - the modules are unwrapped only after the callbacks' ``on_train_end``,
      so that ``EarlyStopping(load_best=True)`` restores weights saved from
      the DistributedDataParallel wrapper into that same wrapper.

    A fitted net pickles as a plain ``SkorchNet`` (the module, optimizer and
    schedule unwrapped, the accelerator left out), so that a model trained
    under ``accelerate launch`` is saved with joblib and loaded anywhere.
    """

    def _initialize_callbacks(self):
        if not self.verbose:
            # skorch's PrintLog is silent at verbose=0 only with print as sink
            self.callbacks__print_log__sink = print
        return super()._initialize_callbacks()

    def initialize(self):
        super().initialize()
        self.grad_scaler_ = torch.amp.GradScaler("cuda", enabled=False)
        n_processes = self.accelerator.num_processes
        for _, callback in self.callbacks_:
            schedule = getattr(callback, "lr_lambda", None)
            if isinstance(schedule, FineTuneSchedule) and n_processes > 1:
                # each process takes batch_size images a step: fewer steps
                callback.lr_lambda = FineTuneSchedule(
                    math.ceil(schedule.steps_per_epoch / n_processes),
                    schedule.freeze_epochs,
                    schedule.max_epochs,
                    schedule.warmup,
                )
        return self

    def _initialize_accelerator(self):
        if self._wrapped_with_accelerator:
            return self
        # DistributedDataParallel refuses a module without trainable
        # parameters, such as the loss: place it, do not wrap it.
        criteria = self._criteria
        plain = []
        for name in criteria:
            criterion = getattr(self, name + "_")
            if isinstance(criterion, torch.nn.Module) and not any(
                p.requires_grad for p in criterion.parameters()
            ):
                setattr(self, name + "_", criterion.to(self.accelerator.device))
                plain.append(name)
        self._criteria = [name for name in criteria if name not in plain]
        try:
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.accelerator.wait_for_everyone()
        SkorchNet.on_train_end(self, net, X=X, y=y, **kwargs)

    def notify(self, method_name, **cb_kwargs):
        if method_name == "on_batch_end" and not cb_kwargs.get("training", True):
            Xi, yi = cb_kwargs["batch"]
            gather = self.accelerator.gather_for_metrics
            cb_kwargs["batch"] = (Xi, gather(yi))
            cb_kwargs["y_pred"] = gather(cb_kwargs["y_pred"])
        super().notify(method_name, **cb_kwargs)
        if method_name == "on_train_end" and self.unwrap_after_train:
            self._unwrap_accelerator()

    def __reduce__(self):
        return _restore_plain_net, (_plain_net(self).__getstate__(),)


def _restore_plain_net(state):
    net = SkorchNet.__new__(SkorchNet)
    net.__setstate__(state)
    return net


def _plain_net(net):
    """A ``SkorchNet`` with the state of ``net`` and no trace of Accelerate."""
    from accelerate.optimizer import AcceleratedOptimizer
    from accelerate.scheduler import AcceleratedScheduler

    state = dict(net.__dict__)
    accelerator = state.pop("accelerator")
    for key in ("unwrap_after_train", "_wrapped_with_accelerator"):
        state.pop(key, None)
    state["device"] = _device_name(accelerator)
    state["callbacks__print_log__sink"] = print
    for name in net._modules + net._criteria:
        module = state.get(name + "_")
        if isinstance(module, torch.nn.Module):
            state[name + "_"] = accelerator.unwrap_model(
                module, keep_fp32_wrapper=False
            )
    for name in net._optimizers:
        optimizer = state.get(name + "_")
        if isinstance(optimizer, AcceleratedOptimizer):
            state[name + "_"] = optimizer.optimizer
    plain_callbacks = {}
    for _, callback in state.get("callbacks_", []):
        for attr in ("policy_", "lr_scheduler_"):
            scheduler = getattr(callback, attr, None)
            if isinstance(scheduler, AcceleratedScheduler):
                scheduler = scheduler.scheduler
            if not isinstance(
                getattr(scheduler, "optimizer", None), AcceleratedOptimizer
            ):
                continue
            plain = plain_callbacks.setdefault(id(callback), copy.copy(callback))
            scheduler = copy.copy(scheduler)
            scheduler.optimizer = scheduler.optimizer.optimizer
            setattr(plain, attr, scheduler)

    def replace(items):
        if items is None:
            return None
        out = []
        for item in items:
            if isinstance(item, tuple):
                out.append((item[0], plain_callbacks.get(id(item[1]), item[1])))
            else:
                out.append(plain_callbacks.get(id(item), item))
        return out

    state["callbacks_"] = replace(state.get("callbacks_"))
    state["callbacks"] = replace(state.get("callbacks"))
    plain = SkorchNet.__new__(SkorchNet)
    plain.__dict__.update(state)
    return plain
