"""Finetune mode of :class:`PretrainedCNNClassifier`: build the network,
train it with skorch, settle an interrupted fit, predict.

The pieces it assembles live below it: the net (:mod:`._net`), the callbacks
(:mod:`._callbacks`), the epoch checkpoints (:mod:`._checkpoint`), the
preprocessing (:mod:`._preprocessing`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split

from . import _adapt_finetune
from ._augment import Chain, tta_views
from ._backbones import CXRNetwork, build_head, load_backbone, probe_features
from ._callbacks import finetune_callbacks
from ._checkpoint import add_checkpoint_callbacks, fit_fingerprint
from ._checks import check_finite_proba, class_weight_vector
from ._images import ImageDataset
from ._net import DeepCoralSkorchNet, make_net
from ._preprocessing import Preprocessing, resolve_detail_size
from ._progress import predict_proba_with_progress
from ._utils import explain_out_of_memory, seed_everything

__all__ = [
    "end_training",
    "fit_finetune",
    "predict_proba_finetune",
    "split_validation",
]

logger = logging.getLogger(__name__)

# validation_fraction="auto": the share held out, and the fewest validation
# images whose ROC AUC is worth stopping on (docs/benchmarks.rst, issue 10).
_AUTO_VALIDATION_FRACTION = 0.1
_AUTO_MIN_VALIDATION = 100


def fit_finetune(
    clf, images, y_encoded, classes, seed, device, groups, sample_weight, adapt=None
):
    """Finetune mode's fit: build the network, train it, adapt it.

    Returns the fitted attributes, for the classifier to commit.
    """
    seed_everything(seed)
    spec = load_backbone(clf.backbone, clf.weights, in_chans=clf.in_chans)
    n_features = probe_features(spec.body, clf.image_size, clf.in_chans)
    head = build_head(
        n_features, len(classes), tuple(clf.hidden_units), float(clf.dropout)
    )
    module = CXRNetwork(spec.body, head)
    preprocessing = Preprocessing.from_backbone(
        spec,
        clf.image_size,
        clf.in_chans,
        clf.equalize,
        resolve_detail_size(clf.detail_size, clf.image_size, "finetune"),
    )
    train_tf = preprocessing.train_transform(clf.augment)
    eval_tf = preprocessing.transform()
    train_ds, valid_ds = _datasets(
        clf, images, y_encoded, groups, seed, sample_weight, train_tf, eval_tf
    )
    callbacks = finetune_callbacks(
        steps_per_epoch=math.ceil(len(train_ds) / clf.batch_size),
        freeze_epochs=clf.freeze_epochs,
        max_epochs=clf.max_epochs,
        validate=valid_ds is not None,
        patience=clf.patience,
        ema=clf.ema,
        verbose=clf.verbose,
    )
    callbacks += [(name, clone(cb)) for name, cb in clf._named_callbacks()]
    if clf.checkpoint_dir is not None:
        fingerprint = fit_fingerprint(
            clf, images, y_encoded, classes, seed, groups, sample_weight
        )
        add_checkpoint_callbacks(
            callbacks, clf.checkpoint_dir, fingerprint, clf.resume
        )
    net, device = _training_net(
        clf, module, classes, y_encoded, device, callbacks, valid_ds, adapt
    )
    if device.startswith("cuda"):
        module.to(memory_format=torch.channels_last)
    with explain_out_of_memory(clf.batch_size, clf.image_size):
        with _adapt_finetune.target_batches(
            clf, net, adapt, train_tf, device, seed
        ):
            net.fit(train_ds, y=None)
    end_training(net, clf.max_epochs)
    adaptation = _adapt_finetune.fit_batchnorm_adaptation(
        clf, net, adapt, eval_tf, device, seed
    )
    return {
        **({} if adaptation is None else {"adaptation_": adaptation}),
        "net_": net,
        "device_": device,
        "seed_": seed,
        "preprocessing_": preprocessing,
    }

def _datasets(clf, images, y_encoded, groups, seed, sample_weight, train_tf, eval_tf):
    """The training set and the validation set (None without a split)."""
    split = clf._split_validation(y_encoded, groups, seed)
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
    return train_ds, valid_ds

def _training_net(clf, module, classes, y_encoded, device, callbacks, valid_ds, adapt):
    """The skorch net that trains ``module``, and the device it trains on."""
    class_weight = class_weight_vector(clf.class_weight, classes, y_encoded)
    net_class, net_kwargs, net_device, amp = None, {}, device, clf.amp
    if clf.accelerator is not None:
        from ._accelerate import accelerated_net

        net_class, net_kwargs, device = accelerated_net(clf.accelerator)
        # Accelerate places the tensors (device None) and scales the loss
        net_device, amp = net_kwargs.pop("device"), net_kwargs.pop("amp")
    if adapt is not None and adapt[0] == "deepcoral":
        net_class = DeepCoralSkorchNet
        net_kwargs["coral_weight"] = float(clf.coral_weight)
    net = make_net(
        module,
        n_classes=len(classes),
        device=net_device,
        amp=amp,
        loader_device=device,
        batch_size=clf.batch_size,
        num_workers=clf.num_workers,
        net_class=net_class,
        criterion__label_smoothing=float(clf.label_smoothing),
        criterion__weight=None
        if class_weight is None
        else torch.as_tensor(class_weight, dtype=torch.float32),
        optimizer__weight_decay=clf.weight_decay,
        optimizer__param_groups=[
            ("body.*", {"lr": clf.lr * clf.body_lr_factor})
        ],
        lr=clf.lr,
        max_epochs=clf.max_epochs,
        train_split=None if valid_ds is None else predefined_split(valid_ds),
        callbacks=callbacks,
        verbose=clf.verbose,
        compile=bool(clf.compile),
        **net_kwargs,
    )
    return net, device


def end_training(net, max_epochs):
    """Settle an interrupted fit and drop what the fitted model must not keep."""
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
            max_epochs,
        )
    # The fitted model keeps weights, not the data it was trained on.
    net.train_split = None
    for _, callback in net.callbacks_:
        if hasattr(callback, "best_model_weights_"):
            callback.best_model_weights_ = None
    net.module_.eval()


def predict_proba_finetune(clf, images):
    """Finetune mode's probabilities (test-time views averaged)."""
    views = tta_views(getattr(clf, "tta", False)) or [None]
    proba = 0.0
    clf.net_.module_.eval()
    for view in views:
        transform = clf._eval_transform()
        if view is not None:
            transform = Chain(view, transform)
        dataset = ImageDataset(images, transform=transform)
        with explain_out_of_memory(clf.batch_size, clf.image_size):
            if clf.verbose:
                view_proba = predict_proba_with_progress(clf.net_, dataset)
            else:
                view_proba = clf.net_.predict_proba(dataset)
        proba = proba + view_proba.astype(np.float64)
    return check_finite_proba(proba / len(views))


def split_validation(validation_fraction, y_encoded, groups, seed):
    """Train and validation indices, stratified (by patient with ``groups``),
    or None to train on everything without early stopping."""
    frac = validation_fraction
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
