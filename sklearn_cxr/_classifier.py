"""PretrainedCNNClassifier: transfer learning on chest X-rays, the sklearn way."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    Options,
    StrOptions,
)
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    has_fit_parameter,
)
from skorch import NeuralNetClassifier
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    EpochScoring,
    LoadInitState,
    LRScheduler,
    ProgressBar,
)
from skorch.helper import predefined_split
from skorch.utils import to_tensor

from . import _adapt, _adapt_finetune
from ._adapt import DomainAwareMixin
from ._adapt_finetune import DeepCoralMixin
from ._augment import AUGMENT_OPTIONS, check_tta, tta_views
from ._backbones import CXRNetwork, build_head, load_backbone, probe_features
from ._callbacks import WeightAveraging
from ._checks import (
    check_class_weights,
    check_finite_proba,
    check_not_continuous,
    check_sample_weight,
    diverged_message,
)
from ._features import (
    PretrainedFeatures,
    _BackboneParamsMixin,
    _cpu_state,
    _restore_state,
)
from ._images import ImageDataset, build_transform, check_images
from ._progress import PlainPrintLog, predict_proba_with_progress
from ._utils import (
    check_random_seed,
    explain_out_of_memory,
    resolve_device,
    resolve_num_workers,
    seed_everything,
)

__all__ = ["PretrainedCNNClassifier"]

logger = logging.getLogger(__name__)

_MODES = ("finetune", "features")
# validation_fraction="auto": the share held out, and the fewest validation
# images whose ROC AUC is worth stopping on (docs/benchmarks.rst, issue 10).
_AUTO_VALIDATION_FRACTION = 0.1
_AUTO_MIN_VALIDATION = 100


def default_final_estimator():
    """The final estimator of feature mode when none is given.

    ``C=0.01``: a strong penalty on the standardised embeddings. On the
    acquisition-shift proxy (docs/benchmarks.rst, issue 10) it raised ROC AUC
    from 0.922 to 0.971 with grouped CV unchanged (0.995 -> 0.996).
    """
    return LogisticRegression(C=0.01, max_iter=1000)


def _sample_weight_param(estimator):
    """Name of the fit parameter that takes per-sample weights, or None.

    A Pipeline takes them through its last step (``<step>__sample_weight``).
    """
    if has_fit_parameter(estimator, "sample_weight"):
        return "sample_weight"
    if isinstance(estimator, Pipeline):
        name, last = estimator.steps[-1]
        if last not in (None, "passthrough") and has_fit_parameter(
            last, "sample_weight"
        ):
            return f"{name}__sample_weight"
    return None


class _FineTuneSchedule:
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


class _FreezeBody(Callback):
    """Train only the new head for the first ``freeze_epochs`` epochs."""

    def __init__(self, freeze_epochs):
        self.freeze_epochs = freeze_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # 1-based: the row of this epoch exists
        module = getattr(net.module_, "module", net.module_)  # DDP wrapper
        module.body.requires_grad_(epoch > self.freeze_epochs)


class _StopOnNonFiniteLoss(Callback):
    """End a fit whose training loss became NaN or infinite, with a clear error.

    Without it a diverged fit "succeeds": every probability is NaN and
    ``predict`` answers the first class for every image.
    """

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training and loss is not None and not torch.isfinite(loss).all():
            epoch = len(net.history)
            n_batch = len(net.history[-1, "batches"]) if epoch else 0
            raise ValueError(diverged_message(loss.item(), epoch, n_batch, net.lr))


def _valid_roc_auc(net, X, y):
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


class _CXRNet(NeuralNetClassifier):
    """skorch classifier with per-sample weights and mixed precision."""

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


class _DeepCoralNet(DeepCoralMixin, _CXRNet):
    """``_CXRNet`` trained with a Deep CORAL loss toward a target site."""


_SCHEDULER_FILE = "lr_scheduler.pt"
# Names the folder of the last whole epoch; replaced atomically after each.
_CHECKPOINT_FILE = "checkpoint.json"
# Parameters that may change between a killed fit and its resumption.
_RESUMABLE_PARAMS = {
    "max_epochs",
    "resume",
    "checkpoint_dir",
    "callbacks",
    "verbose",
    "num_workers",
    "device",
    "memory",
    "random_state",
    "tta",  # predict-time only
}


def _fit_fingerprint(estimator, images, y_encoded, classes, seed, groups, weights):
    """Identify a fit (data and parameters) so that only it can be resumed.

    Paths count by name, in-memory images by content. Without it, a
    cross-validation with one ``checkpoint_dir`` and ``resume=True`` would
    silently continue fold 1's model on fold 2.
    """
    params = {
        name: repr(value)
        for name, value in sorted(estimator.get_params(deep=False).items())
        if name not in _RESUMABLE_PARAMS
    }
    if estimator.random_state is not None:
        params["random_state"] = seed
    digest = hashlib.sha256(repr((params, classes.tolist())).encode())
    digest.update(np.ascontiguousarray(y_encoded, dtype=np.int64).tobytes())
    for extra in (groups, weights):
        text = "-" if extra is None else repr(np.asarray(extra).tolist())
        digest.update(text.encode())
    if images.kind == "paths":
        items = (os.fspath(path).encode() + b"\0" for path in images.source)
    else:
        items = images.fingerprint_items()
    for item in items:
        digest.update(hashlib.sha256(item).digest())
    return digest.hexdigest()


class _EpochCheckpoint(Checkpoint):
    """skorch's ``Checkpoint`` every epoch, written so that a kill cannot tear it.

    Each epoch's weights, optimizer, LR-schedule state and history go to a
    fresh folder made by ``mkdtemp`` (never a planted name or link). Only when
    all are written does ``checkpoint.json``, replaced atomically, name that
    folder, with the epoch and the fit's fingerprint; then the previous
    epoch's folder is removed. A kill at any moment leaves ``checkpoint.json``
    naming one whole epoch: never epoch-2 weights with epoch-1 history.
    """

    def __init__(self, dirname, fingerprint=None):
        super().__init__(
            monitor=None, dirname=dirname, f_criterion=None, event_name=None
        )
        self.fingerprint = fingerprint

    def save_model(self, net):
        import shutil
        import tempfile

        from ._atomic import atomic_path

        epoch = len(net.history)
        scheduler = getattr(
            dict(net.callbacks_).get("lr_schedule"), "lr_scheduler_", None
        )
        folder = None
        try:
            os.makedirs(self.dirname, exist_ok=True)
            folder = tempfile.mkdtemp(dir=self.dirname, prefix=f"epoch-{epoch}-")
            net.save_params(
                f_params=os.path.join(folder, self.f_params),
                f_optimizer=os.path.join(folder, self.f_optimizer),
                f_history=os.path.join(folder, self.f_history),
            )
            if scheduler is not None:
                torch.save(
                    scheduler.state_dict(), os.path.join(folder, _SCHEDULER_FILE)
                )
            for name in os.listdir(folder):
                with open(os.path.join(folder, name), "rb") as written:
                    os.fsync(written.fileno())
            pointer = {
                "epoch": epoch,
                "folder": os.path.basename(folder),
                "fingerprint": self.fingerprint,
            }
            with atomic_path(os.path.join(self.dirname, _CHECKPOINT_FILE)) as tmp:
                with open(tmp, "w") as handle:
                    json.dump(pointer, handle)
        except BaseException as exc:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, Exception):
                raise
            raise OSError(
                f"Cannot write the epoch checkpoint to {self.dirname!r} "
                f"({type(exc).__name__}: {exc}). Check the free space and the "
                "permissions of checkpoint_dir, or pass checkpoint_dir=None."
            ) from exc
        # older epochs, and folders of writes that were killed half-way
        for name in os.listdir(self.dirname):
            path = os.path.join(self.dirname, name)
            if (
                name.startswith("epoch-")
                and path != folder
                and os.path.isdir(path)
                and not os.path.islink(path)
            ):
                shutil.rmtree(path, ignore_errors=True)


def _read_checkpoint_pointer(dirname):
    """``checkpoint.json`` of ``dirname``: None if absent, else its content,
    checked; ValueError if it is damaged or names something odd."""
    path = os.path.join(dirname, _CHECKPOINT_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            pointer = json.load(handle)
        folder = pointer["folder"]
        epoch = pointer["epoch"]
        valid = (
            isinstance(folder, str)
            and folder.startswith("epoch-")
            and os.path.basename(folder) == folder
            and isinstance(epoch, int)
            and epoch >= 1
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        valid, folder = False, repr(exc)
    folder_path = os.path.join(dirname, folder) if valid else ""
    if not valid or os.path.islink(folder_path) or not os.path.isdir(folder_path):
        raise ValueError(
            f"Cannot resume from the checkpoint in {dirname!r}: its "
            f"{_CHECKPOINT_FILE} is damaged or names no epoch folder. Delete the "
            "folder, pass another checkpoint_dir, or fit with resume=False."
        )
    return dict(pointer, folder=folder_path)


class _ResumeFromCheckpoint(LoadInitState):
    """skorch's ``LoadInitState`` that also restores the LR schedule and, unlike
    it, fails loudly when a checkpoint exists but cannot be loaded."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.did_load_:
            return
        self.did_load_ = True
        checkpoint = self.checkpoint
        pointer = _read_checkpoint_pointer(checkpoint.dirname)
        if pointer is None:
            if os.path.isfile(checkpoint.f_history_):
                raise ValueError(
                    f"The checkpoint in {checkpoint.dirname!r} was written by an "
                    "older sklearn_cxr, whose files could be left from different "
                    "epochs; it cannot be resumed safely. Delete it or fit with "
                    "resume=False."
                )
            logger.info(
                "No checkpoint in %r yet: training from the first epoch.",
                checkpoint.dirname,
            )
            return
        if pointer.get("fingerprint") != checkpoint.fingerprint:
            raise ValueError(
                f"The checkpoint in {checkpoint.dirname!r} was saved by a fit on "
                "other data or with other parameters. resume=True only continues "
                "that same fit (same X, y, groups, sample_weight and parameters; "
                "max_epochs may grow). Give each fit its own checkpoint_dir (one "
                "per cross-validation fold), or fit with resume=False."
            )
        folder = pointer["folder"]
        try:
            net.load_params(
                f_params=os.path.join(folder, checkpoint.f_params),
                f_optimizer=os.path.join(folder, checkpoint.f_optimizer),
                f_history=os.path.join(folder, checkpoint.f_history),
            )
            if len(net.history) != pointer["epoch"]:
                raise ValueError(
                    f"the history has {len(net.history)} epochs, the checkpoint "
                    f"is of epoch {pointer['epoch']}"
                )
            schedule = dict(net.callbacks_).get("lr_schedule")
            path = os.path.join(folder, _SCHEDULER_FILE)
            if schedule is not None and os.path.isfile(path):
                state = torch.load(path, map_location="cpu", weights_only=True)
                # keep this fit's schedule (its max_epochs), restore the step
                state["lr_lambdas"] = [None] * len(state.get("lr_lambdas", ()))
                schedule.lr_scheduler_.load_state_dict(state)
                schedule.batch_idx_ = int(state.get("last_epoch", 0))
        except Exception as exc:
            raise ValueError(
                f"Cannot resume from the checkpoint in {checkpoint.dirname!r} "
                f"({type(exc).__name__}: {exc}). It was written by a model of "
                "another configuration (backbone, head, classes) or is damaged: "
                "delete it, pass another checkpoint_dir, or fit with resume=False."
            ) from exc
        net.resumed_at_epoch_ = len(net.history)
        logger.info(
            "Resuming from the checkpoint in %r after epoch %d of %d.",
            checkpoint.dirname,
            len(net.history),
            net.max_epochs,
        )


class _Chain:
    """Apply ``first`` then ``then`` (picklable, for DataLoader workers)."""

    def __init__(self, first, then):
        self.first = first
        self.then = then

    def __call__(self, image):
        return self.then(self.first(image))


class _ViewCollection:
    """An image collection seen through a test-time view (feature mode)."""

    def __init__(self, images, view):
        self.images = images
        self.view = view

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.view(self.images[index])


class PretrainedCNNClassifier(
    _BackboneParamsMixin, DomainAwareMixin, ClassifierMixin, BaseEstimator
):
    """Chest X-ray classifier by transfer learning from an ImageNet backbone.

    A torchvision (or timm) backbone pretrained on ImageNet has its final
    classification layer replaced by a new head with one output per class,
    optionally with hidden layers in between. In ``mode="finetune"`` the
    network is trained with skorch: first the new head alone for
    ``freeze_epochs`` epochs, then the whole network with the body at a lower
    learning rate (``lr * body_lr_factor``), under a warm-up and cosine
    schedule, with early stopping on the ROC AUC of an internal validation
    split made by patient when ``groups`` are given. In ``mode="features"``
    the frozen backbone embeds each image (:class:`PretrainedFeatures`) and
    ``final_estimator`` is fit on the embeddings, the recipe of Kermany et
    al. (2018).

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="resnet18"
        A torchvision classification model name (see :func:`list_backbones`),
        ``"timm:<name>"`` with the optional ``timm`` dependency, or an
        ``nn.Module`` whose classifier is named ``fc``, ``classifier``,
        ``head`` or ``heads``.
    weights : str, os.PathLike or None, default="DEFAULT"
        A torchvision weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``...), a
        path to a state-dict file (``torch.load(weights_only=True)``; missing
        or unexpected keys are reported by name) or None for random
        initialisation. Weights that cannot be downloaded raise
        :class:`~sklearn_cxr.WeightsUnavailableError` naming the file to put
        under ``$TORCH_HOME/hub/checkpoints/``; never a silent random init.
    mode : {"finetune", "features"}, default="finetune"
        Fine-tune the network, or fit ``final_estimator`` on frozen features.
    image_size : int, default=224
        Images of any size are resized to ``image_size x image_size``.
    hidden_units : tuple of int, default=()
        Widths of hidden layers (ReLU) between the backbone and the new head.
    dropout : float, default=0.0
        Dropout before each layer of the head.
    max_epochs : int, default=10
        Training epochs (finetune mode).
    batch_size : int, default=32
        Images per batch, for training and inference.
    lr : float, default=1e-3
        Learning rate of the head (AdamW); the body gets ``lr *
        body_lr_factor``.
    freeze_epochs : int, default=1
        Epochs at the start during which only the new head trains.
    class_weight : dict, "balanced" or None, default="balanced"
        Weights of the classes in the loss (finetune) or in the final
        estimator (features). "balanced" weighs each class inversely to its
        frequency, so the model does not learn the training prevalence (74%
        pneumonia in Kermany et al.'s training split, 62.5% in their test
        split): use it when sensitivity and specificity matter equally and the
        prevalence where the model is used may differ. On the acquisition-shift
        proxy of ``benchmarks/accuracy.py`` it raised the specificity at 0.5 of
        finetune mode from 0.01-0.22 to 0.80-0.99 at equal or better ROC AUC
        (``docs/benchmarks.rst``). None trains on the raw prevalence, which
        suits a deployment with the same prevalence as the training data.
    augment : bool, "geometric", "acquisition" or callable, default=True
        Finetune mode, while training only. True (or "geometric"): random
        resized crops close to the full image, small rotations and shifts,
        brightness and contrast jitter; no horizontal flip (the heart is on
        the left). "acquisition": the same crops and moves, then the
        photometric changes of another acquisition pipeline (stronger
        brightness and contrast, gamma curves, blur or sharpening, noise,
        JPEG re-compression; ``sklearn_cxr._augment.acquisition_augmentation``).
        A callable (e.g. a ``torchvision.transforms.v2`` transform) replaces
        the built-in augmentation: it receives the resized ``(C, H, W)``
        float image in [0, 1] and returns one of the same shape (the safe
        file format of :meth:`save` cannot store it). False: none.
    final_estimator : estimator or None, default=None
        Feature mode's classifier; None means ``LogisticRegression(
        C=0.01, max_iter=1000)`` (the strong penalty generalises better under
        acquisition shift, see :ref:`benchmarks`). Nested parameters such as
        ``final_estimator__C`` work with ``set_params`` and grid search even
        when this is None.
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` trains on CUDA when available, else on the CPU.
    num_workers : int or "auto", default=0
        DataLoader workers decoding images; "auto" uses up to 4 on CUDA (where
        decoding would otherwise starve the GPU) and none on the CPU.
    random_state : int, RandomState or None, default=None
        Seeds weights of the head, shuffling, augmentation and the validation
        split. Two CPU fits with the same seed give identical predictions.
        On CUDA, cuDNN's nondeterministic kernels and mixed precision
        (``amp``) make repeated fits differ slightly; see :ref:`reliability`.
    verbose : int, default=0
        When > 0, progress bars (per batch, on stderr) while fitting,
        embedding and predicting, and the per-epoch table (finetune; without
        colour codes where stdout is not a terminal).
    validation_fraction : float, "auto" or None, default="auto"
        Share of the training images held out (by patient when ``groups`` are
        passed to ``fit``) to monitor ROC AUC each epoch, stop early and
        restore the best epoch. None trains on everything for ``max_epochs``.
        "auto" holds out 0.1 when that makes at least 100 validation images
        (1,000 training images or more) and otherwise trains like None: the
        ROC AUC of a few dozen images is too noisy to pick an epoch (on 300
        real images a 30-image split restored the head-only first epoch; see
        ``docs/benchmarks.rst``).
    patience : int, default=3
        Epochs without improvement of the validation ROC AUC before stopping.
    body_lr_factor : float, default=0.1
        Learning rate of the pretrained body relative to ``lr``.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    callbacks : list of skorch callbacks or (name, callback) tuples, default=None
        Extra skorch callbacks (checkpoints, schedules...). Their parameters
        can be set the skorch way, ``callbacks__<name>__<param>``.
    amp : {"auto", True, False}, default="auto"
        Mixed precision; "auto" enables it on CUDA.
    standardize : bool, default=True
        Feature mode: standardise the embeddings before ``final_estimator``.
    memory : str, joblib.Memory or None, default=None
        Feature mode: cache of embeddings (see :class:`PretrainedFeatures`).
    in_chans : {1, 3}, default=3
        3 replicates grayscale images to RGB; 1 sums the stem's pretrained
        RGB filters and feeds one channel.
    equalize : bool, default=False
        Equalise each image's histogram first (reduces acquisition shift).
    accelerator : None, True, dict or accelerate.Accelerator, default=None
        Finetune mode: train data-parallel under Hugging Face Accelerate
        (skorch's ``AccelerateMixin``) on the devices of ``accelerate
        launch``: True for ``Accelerator()``, a dict of its keyword arguments
        (``{"mixed_precision": "bf16"}``, ``{"cpu": True}``) or an
        ``Accelerator``. Needs the ``distributed`` extra; see
        :ref:`distributed`. ``device`` and ``amp`` are then left to
        Accelerate.
    checkpoint_dir : str, os.PathLike or None, default=None
        Finetune mode: a folder where the weights, optimizer state,
        learning-rate schedule and history are saved after every epoch (each
        file written aside and renamed into place, so a killed process
        leaves a complete checkpoint). None saves nothing.
    resume : bool, default=False
        Finetune mode, with ``checkpoint_dir``: continue from the last epoch
        saved there, up to ``max_epochs`` epochs in all (``history_`` then
        holds the epochs before and after the interruption); a folder without
        a checkpoint starts from the first epoch. Pass the data and parameters
        of the interrupted fit: a checkpoint saved by another fit (other
        data, labels or parameters, e.g. another cross-validation fold) is
        refused. The resumed run is not bit-identical to an
        uninterrupted one: the data order restarts from ``random_state`` and
        early stopping's patience count restarts at the resumed epoch.
    compile : bool, default=False
        Finetune mode: compile the network with ``torch.compile`` (skorch's
        ``compile=True``). Worth it for long runs on CUDA; the first epoch
        pays the compilation (a C++ compiler is needed on the CPU).
    label_smoothing : float, default=0.0
        Finetune mode: label smoothing of the cross-entropy loss
        (``torch.nn.CrossEntropyLoss(label_smoothing=...)``), in [0, 1).
    ema : float or None, default=None
        Finetune mode: keep an exponential moving average of the weights
        (:class:`torch.optim.swa_utils.AveragedModel`, BatchNorm statistics
        included) with a time constant of ``ema`` epochs, so that it means
        the same on 300 or 5,000 images. Validation, early stopping and the
        fitted model use the averaged weights. None trains without it. A fit
        resumed from ``checkpoint_dir`` restarts the average.
    tta : bool or sequence of float, default=False
        Test-time augmentation, both modes: ``predict_proba`` averages the
        probabilities of centre crops keeping these fractions of each side
        (True: ``(1.0, 0.9)``), each resized to ``image_size``; it costs one
        inference per view. No flips: chest X-rays are not mirror-symmetric.
        Training and the internal validation split do not use it.
    adaptation : {"auto", None, "coral", "standardize", "adabn", "deepcoral"}, \
            default="auto"
        Label-free adaptation to a target site whose unlabelled images are
        passed to ``fit`` with a negative ``sample_domain`` (see
        :ref:`adaptation`). Feature mode: ``"coral"`` (skada's
        ``CORALAdapter``, needs the ``adapt`` extra) or ``"standardize"``
        (per-site standardisation of the embeddings); finetune mode:
        ``"adabn"`` (BatchNorm statistics re-estimated on the target) or
        ``"deepcoral"`` (Deep CORAL loss while training, then AdaBN).
        ``"auto"`` is ``"standardize"`` in feature mode and ``"adabn"`` in
        finetune mode, the best measured on the acquisition-shift proxy;
        None ignores the target images. Without target images nothing
        changes.
    coral_weight : float, default=1.0
        Weight of the Deep CORAL loss (``adaptation="deepcoral"``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, as given in ``y``.
    n_classes_ : int
    device_ : str
        Device the model was fitted on.
    net_ : skorch.NeuralNetClassifier
        Finetune mode: the fitted skorch net (``net_.history``).
    module_ : torch.nn.Module
        Finetune mode: the network (``body`` then ``head``).
    features_ : PretrainedFeatures
        Feature mode: the fitted embedding transformer.
    final_estimator_ : estimator
        Feature mode: the fitted final estimator.
    preprocessing_ : Preprocessing
        Both modes: the whole inference preprocessing (size, channels, mean,
        std, interpolation, equalisation), as used by :mod:`sklearn_cxr.export`.
    adaptation_ : dict
        Only after a fit with target images and an adaptation: the method,
        the target and source domains and the fitted adaptation state.

    See Also
    --------
    PretrainedFeatures : the frozen backbone as a transformer.

    Notes
    -----
    Interrupting a finetune ``fit`` (Ctrl-C, ``KeyboardInterrupt``) after at
    least one epoch keeps a usable model: the weights and history of the last
    completed epoch (a half-done epoch is dropped), or the best epoch when
    early stopping restores it. Interrupted before the first epoch ends,
    ``fit`` raises ``KeyboardInterrupt`` and the model stays as it was. A
    batch that runs out of memory raises :class:`torch.OutOfMemoryError`
    saying to lower ``batch_size`` or ``image_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr import PretrainedCNNClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 255, (8, 32, 32), dtype=np.uint8)
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 4)
    >>> clf = PretrainedCNNClassifier(backbone="resnet18", weights=None,
    ...     image_size=32, max_epochs=1, random_state=0)
    >>> clf.fit(X, y).predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **PretrainedFeatures._parameter_constraints,
        "mode": [StrOptions(set(_MODES))],
        # each width is checked in fit (_check_param_details)
        "hidden_units": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "freeze_epochs": [Interval(Integral, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "augment": [
            "boolean",
            StrOptions(set(AUGMENT_OPTIONS)),
            callable,
            Hidden(None),
        ],
        "final_estimator": [HasMethods(["fit"]), None],
        "validation_fraction": [
            Interval(Real, 0, 0.5, closed="neither"),
            StrOptions({"auto"}),
            None,
        ],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "body_lr_factor": [Interval(Real, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "callbacks": [list, None],
        "amp": [StrOptions({"auto"}), "boolean"],
        "standardize": ["boolean"],
        # an accelerate.Accelerator, recognised without importing accelerate
        "accelerator": [Options(bool, {True}), dict, HasMethods(["prepare"]), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "resume": ["boolean"],
        "compile": ["boolean"],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "ema": [Interval(Real, 0, None, closed="neither"), None],
        # the crop fractions are checked in fit (_check_param_details)
        "tta": ["boolean", "array-like", Hidden(None)],
        # which methods suit which mode is checked in fit
        "adaptation": [
            StrOptions(
                {"auto"} | {m for ms in _adapt.ADAPTATIONS.values() for m in ms}
            ),
            None,
        ],
        "coral_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        backbone="resnet18",
        weights="DEFAULT",
        mode="finetune",
        image_size=224,
        hidden_units=(),
        dropout=0.0,
        max_epochs=10,
        batch_size=32,
        lr=1e-3,
        freeze_epochs=1,
        class_weight="balanced",
        augment=True,
        final_estimator=None,
        device="auto",
        num_workers=0,
        random_state=None,
        verbose=0,
        validation_fraction="auto",
        patience=3,
        body_lr_factor=0.1,
        weight_decay=1e-4,
        callbacks=None,
        amp="auto",
        standardize=True,
        memory=None,
        in_chans=3,
        equalize=False,
        accelerator=None,
        checkpoint_dir=None,
        resume=False,
        compile=False,
        label_smoothing=0.0,
        ema=None,
        tta=False,
        adaptation="auto",
        coral_weight=1.0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.mode = mode
        self.image_size = image_size
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.freeze_epochs = freeze_epochs
        self.class_weight = class_weight
        self.augment = augment
        self.final_estimator = final_estimator
        self.device = device
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.body_lr_factor = body_lr_factor
        self.weight_decay = weight_decay
        self.callbacks = callbacks
        self.amp = amp
        self.standardize = standardize
        self.memory = memory
        self.in_chans = in_chans
        self.equalize = equalize
        self.accelerator = accelerator
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.compile = compile
        self.label_smoothing = label_smoothing
        self.ema = ema
        self.tta = tta
        self.adaptation = adaptation
        self.coral_weight = coral_weight

    # ------------------------------------------------------------------ params
    def get_params(self, deep=True):
        """Get parameters, with those of the named callbacks when ``deep``.

        As in skorch, ``deep=True`` adds ``callbacks__<name>`` (the callback)
        and ``callbacks__<name>__<param>`` for each of ``callbacks``; an
        unnamed callback is named after its class. These are exactly the
        names :meth:`set_params` accepts.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of ``final_estimator`` and of the
            callbacks.

        Returns
        -------
        params : dict
        """
        params = super().get_params(deep=deep)
        if deep:
            for name, callback in self._named_callbacks(strict=False):
                params[f"callbacks__{name}"] = callback
                if hasattr(callback, "get_params"):
                    for key, value in callback.get_params().items():
                        params[f"callbacks__{name}__{key}"] = value
        return params

    def set_params(self, **params):
        """Set parameters, including nested ones of the default estimator.

        ``final_estimator__C=...`` works while ``final_estimator`` is None:
        the default ``LogisticRegression(C=0.01, max_iter=1000)`` is made explicit
        first. ``callbacks__<name>=callback`` replaces a named callback (None
        removes it) and ``callbacks__<name>__<param>`` sets one of its
        parameters, as in skorch.

        Parameters
        ----------
        **params : dict
            Parameter names as returned by ``get_params(deep=True)``.

        Returns
        -------
        self : PretrainedCNNClassifier
        """
        nested_final = [k for k in params if k.startswith("final_estimator__")]
        if nested_final and params.get("final_estimator", self.final_estimator) is None:
            params = dict(params)
            params.setdefault("final_estimator", default_final_estimator())
            if params["final_estimator"] is None:
                params["final_estimator"] = default_final_estimator()
        callback_params = {
            k: params.pop(k) for k in list(params) if k.startswith("callbacks__")
        }
        super().set_params(**params)
        # whole callbacks first, then the parameters of the callbacks now set
        replaced = {k: v for k, v in callback_params.items() if k.count("__") == 1}
        for key, value in replaced.items():
            self._replace_callback(key, value)
        for key, value in callback_params.items():
            if key in replaced:
                continue
            _, name, param = key.split("__", 2)
            callback = dict(self._named_callbacks()).get(name)
            if callback is None:
                raise ValueError(
                    f"No callback named {name!r} for {key!r}; named callbacks: "
                    f"{[n for n, _ in self._named_callbacks()]}."
                )
            if not hasattr(callback, "set_params"):
                raise ValueError(
                    f"Cannot set {key!r}: the callback {name!r} "
                    f"({type(callback).__name__}) has no set_params; replace it "
                    f"with callbacks__{name}=<callback> instead."
                )
            callback.set_params(**{param: value})
        return self

    def _replace_callback(self, key, value):
        name = key.split("__", 1)[1]
        named = self._named_callbacks()
        if name not in dict(named):
            raise ValueError(
                f"No callback named {name!r} for {key!r}; named callbacks: "
                f"{[n for n, _ in named]}. Add a callback with the callbacks "
                "parameter, e.g. callbacks=[(name, callback)]."
            )
        callbacks = []
        for item, (item_name, _) in zip(self.callbacks, named):
            if item_name != name:
                callbacks.append(item)
            elif value is not None:
                callbacks.append((name, value) if isinstance(item, tuple) else value)
        self.callbacks = callbacks

    def _named_callbacks(self, strict=True):
        """``(name, callback)`` for each of ``callbacks``; unnamed ones are
        named after their class. With ``strict=False``, malformed entries are
        skipped instead of refused (``get_params`` must not fail)."""
        if not isinstance(self.callbacks, (list, tuple)):
            if strict and self.callbacks is not None:
                raise ValueError(
                    "callbacks must be None or a list of skorch callbacks or "
                    f"(name, callback) tuples, got {self.callbacks!r}."
                )
            return []
        named = []
        for i, item in enumerate(self.callbacks):
            if isinstance(item, tuple) and len(item) == 2:
                name, callback = item
            else:
                name, callback = type(item).__name__, item
            # fit clones each callback: it needs get_params, as skorch's have
            if (
                isinstance(name, str)
                and hasattr(callback, "get_params")
                and not isinstance(callback, type)
            ):
                named.append((name, callback))
            elif strict:
                raise ValueError(
                    f"callbacks[{i}] must be a skorch callback or a (name, "
                    f"callback) tuple, got {item!r}."
                )
        return named

    def _check_param_details(self):
        """Checks that ``_parameter_constraints`` cannot express: the values
        inside ``hidden_units``, ``tta`` and ``callbacks``, booleans given as
        numbers, the file system, and parameters that depend on each other."""
        if not all(
            isinstance(u, Integral) and not isinstance(u, bool) and u > 0
            for u in self.hidden_units
        ):
            raise ValueError(
                "hidden_units must be a tuple of positive integers, got "
                f"{self.hidden_units!r}."
            )
        check_tta(self.tta)
        if isinstance(self.ema, bool):
            raise ValueError(
                "ema must be None or a positive number of epochs (the time "
                f"constant of the weight average, e.g. 0.5), got {self.ema!r}."
            )
        self._named_callbacks()
        if self.checkpoint_dir is not None and os.path.isfile(self.checkpoint_dir):
            raise ValueError(
                f"checkpoint_dir={os.fspath(self.checkpoint_dir)!r} is a file; pass "
                "a folder (it is created if missing)."
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(
                "resume=True needs checkpoint_dir: the folder in which the "
                "interrupted fit saved its epochs."
            )

    # --------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, groups=None, sample_weight=None, sample_domain=None):
        """Fit the classifier.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
            ``(n, H, W)`` or ``(n, H, W, C)`` images with ``C`` in {1, 3},
            uint8 (0-255) or float (0-1), or a sequence of image files (str or
            os.PathLike), PIL images or arrays of any sizes.
        y : array-like of shape (n_samples,)
            Labels of any type, at least two classes.
        groups : array-like of shape (n_samples,), default=None
            Patient ids; the internal validation split keeps each patient on
            one side.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-image weights of the loss (finetune) or of the final estimator.
        sample_domain : array-like of int or int, default=None
            skada's convention: the site of each image, >= 0 for a labelled
            source, < 0 for the unlabelled target site, whose labels are
            ignored (pass the masked label: -1, or ``"-1"``/None for string
            labels). The model adapts to that target (``adaptation``) and
            ``classes_`` holds the source labels only. None: every image is
            a labelled source.

        Returns
        -------
        self : PretrainedCNNClassifier
        """
        self._check_param_details()
        images = check_images(X)
        split = None
        if sample_domain is not None:
            all_images = images
            split, (images, y, groups, sample_weight) = _adapt.split_fit_inputs(
                images, y, sample_domain, groups, sample_weight
            )
        method = _adapt.resolve_adaptation(
            self.adaptation, self.mode, split is not None and split.has_target
        )
        adapt = None
        if method is not None:
            _adapt.check_deep_params(method, self.accelerator, self.coral_weight)
            _adapt.check_target_size(split)
            adapt = (method, split, all_images.take(split.target_idx))
        y = self._check_targets(y, len(images))
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(images):
                raise ValueError(
                    f"groups has {len(groups)} entries but X has {len(images)} "
                    "images; pass one patient id per image."
                )
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, len(images))
        classes, y_encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y has a single class ({classes.tolist()[0]!r}); a classifier needs "
                "at least 2 classes."
            )
        seed = check_random_seed(self.random_state)
        device = resolve_device(self.device)
        # Build into a new estimator state and commit only on success, so that
        # a refused or interrupted-before-training fit leaves the model as it was.
        if self.mode == "features":
            fitted = self._fit_features(
                images, y_encoded, classes, seed, sample_weight, adapt=adapt
            )
        else:
            fitted = self._fit_finetune(
                images, y_encoded, classes, seed, device, groups, sample_weight,
                adapt=adapt,
            )
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        self.__dict__.update(fitted)
        self.classes_ = classes
        self.n_classes_ = len(classes)
        return self

    def _check_targets(self, y, n_images):
        if y is None:
            raise ValueError("y is required: pass one label per image.")
        y_given = y
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y must be 1-d (one label per image), got {y.shape}.")
        if len(y) != n_images:
            raise ValueError(
                f"X has {n_images} images but y has {len(y)} labels; they must "
                "have the same length."
            )
        labels = y
        if y.dtype.kind in "US" and not hasattr(y_given, "dtype"):
            # np.asarray silently turns ["a", 1] into strings: look at the input.
            labels = np.asarray(y_given, dtype=object).ravel()
        if labels.dtype == object:
            kinds = {
                "str" if isinstance(v, str) else type(v).__name__ for v in labels
            }
            numeric = {"int", "float", "bool"} | {
                t for t in kinds if t.startswith(("int", "float", "uint"))
            }
            if len(kinds) > 1 and not kinds <= numeric:
                raise TypeError(
                    f"y mixes label types ({', '.join(sorted(kinds))}); use one type "
                    "for all labels, e.g. all strings."
                )
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite labels.")
        if y.dtype.kind not in "fc":
            # float labels such as 0.5 are class names here, not regression
            # targets, so only non-float labels go through sklearn's check
            check_classification_targets(y)
        check_not_continuous(y)
        return y

    def _class_weight_vector(self, classes, y_encoded):
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced":
            return compute_class_weight(
                "balanced", classes=np.arange(len(classes)), y=y_encoded
            )
        unknown = [k for k in self.class_weight if k not in set(classes.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight names labels {unknown} that are not in y "
                f"(classes: {classes.tolist()})."
            )
        weights = [self.class_weight.get(c, 1.0) for c in classes.tolist()]
        try:
            weights = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"class_weight={self.class_weight!r} holds weights that are not "
                "numbers; give a number >= 0 per class."
            ) from exc
        return check_class_weights(weights, classes, self.class_weight)

    def _fit_features(
        self, images, y_encoded, classes, seed, sample_weight, adapt=None
    ):
        features = PretrainedFeatures(
            backbone=self.backbone,
            weights=self.weights,
            image_size=self.image_size,
            batch_size=self.batch_size,
            device=self.device,
            num_workers=self.num_workers,
            random_state=seed,
            verbose=self.verbose,
            memory=self.memory,
            in_chans=self.in_chans,
            equalize=self.equalize,
        ).fit()
        embeddings = features.transform(images)
        scaler = StandardScaler().fit(embeddings) if self.standardize else None
        if scaler is not None:
            embeddings = scaler.transform(embeddings)
        if adapt is not None:
            embeddings, adaptation = _adapt.fit_feature_adaptation(
                features, scaler, adapt, embeddings
            )
        estimator = clone(
            self.final_estimator
            if self.final_estimator is not None
            else default_final_estimator()
        )
        weight_param = _sample_weight_param(estimator)
        if sample_weight is not None and weight_param is None:
            raise ValueError(
                f"sample_weight was given but the final estimator "
                f"{type(estimator).__name__} does not accept sample_weight in fit; "
                "use a final estimator that does, or drop sample_weight."
            )
        if self.class_weight is not None:
            weights = self._class_weight_vector(classes, y_encoded)
            if "class_weight" in estimator.get_params(deep=False):
                estimator.set_params(class_weight=dict(enumerate(weights.tolist())))
            elif weight_param is not None:
                extra = compute_sample_weight(dict(enumerate(weights)), y_encoded)
                if sample_weight is not None:
                    extra = extra * sample_weight
                sample_weight = extra
            else:
                warnings.warn(
                    f"class_weight={self.class_weight!r} cannot be applied: the "
                    f"final estimator {type(estimator).__name__} takes neither "
                    "class_weight nor sample_weight. It is fitted unweighted; set "
                    "class_weight=None to silence this warning.",
                    UserWarning,
                    stacklevel=3,
                )
        if "random_state" in estimator.get_params(deep=False) and estimator.get_params(
            deep=False
        )["random_state"] is None:
            estimator.set_params(random_state=seed % (2**31))
        if sample_weight is not None:
            estimator.fit(embeddings, y_encoded, **{weight_param: sample_weight})
        else:
            estimator.fit(embeddings, y_encoded)
        return {
            **({} if adapt is None else {"adaptation_": adaptation}),
            "features_": features,
            "scaler_": scaler,
            "final_estimator_": estimator,
            "device_": features.device_,
            "seed_": seed,
        }

    def _split_validation(self, y_encoded, groups, seed):
        frac = self.validation_fraction
        if frac is None:
            return None
        if isinstance(frac, str):  # "auto"
            frac = _AUTO_VALIDATION_FRACTION
            if len(y_encoded) * frac < _AUTO_MIN_VALIDATION:
                logger.info(
                    "validation_fraction='auto': %d images would leave fewer "
                    "than %d for validation; training on all of them for "
                    "max_epochs without early stopping.",
                    len(y_encoded),
                    _AUTO_MIN_VALIDATION,
                )
                return None
        n_splits = max(2, int(round(1.0 / frac)))
        if np.bincount(y_encoded).min() < n_splits:
            logger.info(
                "Too few images per class for a %d-fold validation split: "
                "training without early stopping.",
                n_splits,
            )
            return None
        dummy = np.zeros(len(y_encoded))
        if groups is not None and len(np.unique(groups)) >= n_splits:
            splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
            train, valid = next(splitter.split(dummy, y_encoded, groups))
        else:
            splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
            train, valid = next(splitter.split(dummy, y_encoded))
        if len(np.unique(y_encoded[valid])) < 2:
            return None
        return train, valid

    def _fit_finetune(
        self, images, y_encoded, classes, seed, device, groups, sample_weight,
        adapt=None,
    ):
        seed_everything(seed)
        spec = load_backbone(self.backbone, self.weights, in_chans=self.in_chans)
        n_features = probe_features(spec.body, self.image_size, self.in_chans)
        head = build_head(
            n_features, len(classes), tuple(self.hidden_units), float(self.dropout)
        )
        module = CXRNetwork(spec.body, head)
        common = {
            "mean": spec.mean,
            "std": spec.std,
            "channels": self.in_chans,
            "interpolation": spec.interpolation,
            "equalize": self.equalize,
        }
        train_tf = build_transform(
            self.image_size, train=True, augment=self.augment, **common
        )
        eval_tf = build_transform(self.image_size, train=False, **common)

        split = self._split_validation(y_encoded, groups, seed)
        if split is None:
            train_idx, valid_ds = np.arange(len(images)), None
        else:
            train_idx, valid_idx = split
            valid_ds = ImageDataset(
                images.take(valid_idx), y_encoded[valid_idx], transform=eval_tf
            )
        train_ds = ImageDataset(
            images.take(train_idx),
            y_encoded[train_idx],
            transform=train_tf,
            sample_weight=None if sample_weight is None else sample_weight[train_idx],
        )
        steps_per_epoch = math.ceil(len(train_ds) / self.batch_size)
        callbacks = [
            ("finite_loss", _StopOnNonFiniteLoss()),
            ("freeze_body", _FreezeBody(self.freeze_epochs)),
            (
                "lr_schedule",
                LRScheduler(
                    policy=torch.optim.lr_scheduler.LambdaLR,
                    lr_lambda=_FineTuneSchedule(
                        steps_per_epoch, self.freeze_epochs, self.max_epochs
                    ),
                    step_every="batch",
                ),
            ),
        ]
        if valid_ds is not None:
            callbacks += [
                (
                    "valid_auc",
                    EpochScoring(
                        _valid_roc_auc, lower_is_better=False, name="valid_auc"
                    ),
                ),
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_auc",
                        lower_is_better=False,
                        patience=self.patience,
                        load_best=True,
                    ),
                ),
            ]
        if self.ema is not None:
            # after early stopping: it must snapshot the averaged weights
            callbacks.append(
                ("weight_averaging", WeightAveraging(self.ema, steps_per_epoch))
            )
        if self.verbose:
            # per-batch bars on stderr, beside skorch's per-epoch table
            callbacks.append(("progress_bar", ProgressBar()))
        callbacks += [(name, clone(cb)) for name, cb in self._named_callbacks()]
        if self.checkpoint_dir is not None:
            checkpoint = _EpochCheckpoint(
                os.fspath(self.checkpoint_dir),
                fingerprint=_fit_fingerprint(
                    self, images, y_encoded, classes, seed, groups, sample_weight
                ),
            )
            callbacks.append(("epoch_checkpoint", checkpoint))
            if self.resume:
                # after lr_schedule: it restores the scheduler that one builds
                at = [name for name, _ in callbacks].index("lr_schedule") + 1
                callbacks.insert(at, ("resume", _ResumeFromCheckpoint(checkpoint)))
        class_weight = self._class_weight_vector(classes, y_encoded)
        pin = device.startswith("cuda")
        amp = device.startswith("cuda") if self.amp == "auto" else bool(self.amp)
        net_class, net_kwargs = _CXRNet, {"device": device, "amp": amp}
        if self.accelerator is not None:
            from ._accelerate import accelerated_net

            net_class, net_kwargs, device = accelerated_net(self.accelerator)
        if adapt is not None and adapt[0] == "deepcoral":
            net_class = _DeepCoralNet
            net_kwargs["coral_weight"] = float(self.coral_weight)
        net = net_class(
            module,
            criterion=torch.nn.CrossEntropyLoss,
            criterion__reduction="none",
            criterion__label_smoothing=float(self.label_smoothing),
            criterion__weight=None
            if class_weight is None
            else torch.as_tensor(class_weight, dtype=torch.float32),
            optimizer=torch.optim.AdamW,
            optimizer__weight_decay=self.weight_decay,
            optimizer__param_groups=[
                ("body.*", {"lr": self.lr * self.body_lr_factor})
            ],
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            iterator_train__shuffle=True,
            iterator_train__num_workers=resolve_num_workers(self.num_workers, device),
            iterator_train__pin_memory=pin,
            iterator_valid__num_workers=resolve_num_workers(self.num_workers, device),
            iterator_valid__pin_memory=pin,
            callbacks=callbacks,
            classes=list(range(len(classes))),
            verbose=self.verbose,
            compile=bool(self.compile),
            **net_kwargs,
        )
        if device.startswith("cuda"):
            module.to(memory_format=torch.channels_last)
        with explain_out_of_memory(self.batch_size, self.image_size):
            with _adapt_finetune.target_batches(
                self, net, adapt, train_tf, device, seed
            ):
                net.fit(train_ds, y=None)
        if getattr(net, "interrupted_", False) and any(
            isinstance(cb, EarlyStopping) and cb.misses_ >= cb.patience
            for _, cb in net.callbacks_
        ):
            # skorch's EarlyStopping ends training by raising KeyboardInterrupt
            # after a completed epoch, and restores the best epoch itself
            net.interrupted_ = False
        if getattr(net, "interrupted_", False):
            if not len(net.history):
                raise KeyboardInterrupt  # no epoch completed: keep the old model
            logger.warning(
                "fit interrupted: keeping the model of epoch %d of %d.",
                len(net.history),
                self.max_epochs,
            )
        # The fitted model keeps weights, not the data it was trained on.
        net.train_split = None
        for _, callback in net.callbacks_:
            if hasattr(callback, "best_model_weights_"):
                callback.best_model_weights_ = None
        net.module_.eval()
        adaptation = _adapt_finetune.fit_batchnorm_adaptation(
            self, net, adapt, eval_tf, device, seed
        )
        return {
            **({} if adaptation is None else {"adaptation_": adaptation}),
            "net_": net,
            "device_": device,
            "seed_": seed,
            "mean_": spec.mean,
            "std_": spec.std,
            "interpolation_": spec.interpolation,
        }

    # ----------------------------------------------------------------- predict
    def predict_proba(self, X, sample_domain=None):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
            Images of any size.
        sample_domain : array-like of int or int, default=None
            Site of each image, as in ``fit``. None: images of a model adapted
            to a target site are treated as that target; a source site's id
            (>= 0) treats them as that source. Ignored by a model fitted
            without adaptation.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self, "classes_")
        images = check_images(X)
        domains = _adapt.predict_domains(self, sample_domain, len(images))
        if domains is not None and self.mode_fitted_ == "finetune":
            return _adapt_finetune.predict_per_domain(self, images, domains)
        if self.mode_fitted_ == "features":
            views = tta_views(getattr(self, "tta", False)) or [None]
            full = np.zeros((len(images), self.n_classes_), dtype=np.float64)
            for view in views:
                if view is None or view.scale >= 1:
                    embeddings = self.features_.transform(images)
                else:  # views are not cached: embed them directly
                    embeddings = self.features_._embed(_ViewCollection(images, view))
                if self.scaler_ is not None:
                    embeddings = self.scaler_.transform(embeddings)
                if domains is not None:
                    embeddings = self.adaptation_["adapter"].transform(
                        embeddings, domains
                    )
                proba = self.final_estimator_.predict_proba(embeddings)
                # the final estimator saw encoded labels 0..n-1; align columns
                full[:, self.final_estimator_.classes_.astype(int)] += proba
            return check_finite_proba(full / len(views))
        views = tta_views(getattr(self, "tta", False)) or [None]
        proba = 0.0
        self.net_.module_.eval()
        for view in views:
            transform = self._eval_transform()
            if view is not None:
                transform = _Chain(view, transform)
            dataset = ImageDataset(images, transform=transform)
            with explain_out_of_memory(self.batch_size, self.image_size):
                if self.verbose:
                    view_proba = predict_proba_with_progress(self.net_, dataset)
                else:
                    view_proba = self.net_.predict_proba(dataset)
            proba = proba + view_proba.astype(np.float64)
        return check_finite_proba(proba / len(views))

    def predict(self, X, sample_domain=None):
        """Predicted labels, of the same type as ``y`` in fit.

        Parameters
        ----------
        X : ndarray or sequence of paths / PIL images / arrays
        sample_domain : array-like of int or int, default=None
            Site of each image (see :meth:`predict_proba`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X, sample_domain=sample_domain)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def mode_fitted_(self):
        """The mode the model was fitted in."""
        check_is_fitted(self, "classes_")
        return "features" if hasattr(self, "final_estimator_") else "finetune"

    @property
    def module_(self):
        """The fitted network (finetune mode)."""
        check_is_fitted(self, "net_")
        return self.net_.module_

    @property
    def history_(self):
        """skorch's per-epoch history (finetune mode)."""
        check_is_fitted(self, "net_")
        return self.net_.history

    def save(self, path):
        """Save the fitted model to one file in the safe format (no pickle).

        Parameters are stored as JSON, tensors as safetensors and the fitted
        final estimator and scaler with skops; see :ref:`persistence`.

        Parameters
        ----------
        path : str or os.PathLike
            File to write (a zip archive, e.g. ``model.cxr``).

        Returns
        -------
        path : str
        """
        from ._persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path, *, trusted=None):
        """Load a model written by :meth:`save`, without unpickling.

        Parameters
        ----------
        path : str or os.PathLike
            File written by :meth:`save`.
        trusted : list of str, default=None
            Extra types to accept in the skops parts, e.g.
            ``["sklearn.tree._tree.Tree"]``; unknown types are refused.

        Returns
        -------
        model : PretrainedCNNClassifier
        """
        from ._persistence import load_model

        return load_model(path, expected_class=cls, trusted=trusted)

    def _eval_transform(self):
        return build_transform(
            self.image_size,
            mean=self.mean_,
            std=self.std_,
            channels=self.in_chans,
            interpolation=self.interpolation_,
            train=False,
            equalize=self.equalize,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.device == "cuda"
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.classifier_tags.poor_score = True
        return tags

    def __getstate__(self):
        return _cpu_state(self, ())

    def __setstate__(self, state):
        _restore_state(self, state, ())
        net = state.get("net_")
        if net is not None:
            self.device_ = str(net.device)
