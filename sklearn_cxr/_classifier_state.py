"""The fitted state of :class:`PretrainedCNNClassifier`, to and from a file.

:func:`~sklearn_cxr._persistence.save_model` writes what
:func:`classifier_state` gives and hands the file's content back to
:func:`restore_classifier`; the archive format is that module's business,
what a fitted classifier consists of is this one's.
"""

from __future__ import annotations

import json
import os

from ._adapt import adaptation_from_file, adaptation_to_file
from ._backbones import CXRNetwork, build_architecture, build_head
from ._features import PretrainedFeatures
from ._model_schema import check_classifier_fitted, check_head_shapes
from ._net import make_net
from ._persistence import (
    HISTORY,
    apply_memory_format,
    cpu_tensors,
    decode_classes,
    encode_classes,
    encode_params,
    load_tensors,
    memory_format,
)
from ._preprocessing import Preprocessing
from ._utils import fitted_device
from .exceptions import ModelFileError

__all__ = ["check_saved_classifier", "classifier_state", "restore_classifier"]

_MODULE = "module."


def classifier_state(clf):
    """The fitted state of ``clf`` as ``save_model`` takes it."""
    mode = clf.mode_fitted_
    fitted = {
        "mode": mode,
        "classes_": encode_classes(clf.classes_),
        "n_classes_": int(clf.n_classes_),
        "device_": str(clf.device_),
        "seed_": int(clf.seed_),
    }
    tensors, skops, extra = {}, {}, {}
    if mode == "features":
        features = clf.features_._get_state()
        fitted["features_"] = {
            "params": encode_params(clf.features_, skops),
            "fitted": features["fitted"],
        }
        tensors.update(features["tensors"])
        skops["final_estimator.skops"] = clf.final_estimator_
        if clf.scaler_ is not None:
            skops["scaler.skops"] = clf.scaler_
    else:
        module = clf.net_.module_
        fitted.update(clf.preprocessing_.file_fields())
        fitted["memory_format"] = memory_format(module)
        fitted["head_in_features"] = int(module.in_features)
        tensors.update({_MODULE + k: v for k, v in cpu_tensors(module).items()})
        extra[HISTORY] = json.dumps(clf.net_.history.to_list()).encode()
    if getattr(clf, "adaptation_", None) is not None:
        fitted["adaptation"], adapt_tensors = adaptation_to_file(clf.adaptation_)
        tensors.update(adapt_tensors)
    return {"fitted": fitted, "tensors": tensors, "skops": skops, "extra": extra}


def check_saved_classifier(fitted, path):
    """Check the ``fitted`` part of a classifier's file (nested parts too)."""
    check_classifier_fitted(fitted, path, PretrainedFeatures)


def restore_classifier(clf, fitted, tensors, parts):
    """Restore into ``clf`` (built from the file's parameters) its fitted state."""
    path = parts.path
    clf.classes_ = decode_classes(fitted["classes_"])
    clf.n_classes_ = fitted["n_classes_"]
    clf.seed_ = fitted["seed_"]
    clf.device_ = fitted_device(fitted["device_"])
    if fitted["mode"] == "features":
        spec = fitted["features_"]
        features = PretrainedFeatures(**parts.decode_params(spec["params"]))
        clf.features_ = features._set_state(spec["fitted"], tensors, parts)
        clf.preprocessing_ = clf.features_.preprocessing_
        clf.detail_size = clf.features_.detail_size
        clf.final_estimator_ = parts.load("final_estimator.skops")
        clf.scaler_ = parts.load("scaler.skops") if parts.has("scaler.skops") else None
    else:
        _restore_network(clf, fitted, tensors, parts)
    if "adaptation" in fitted:
        try:
            clf.adaptation_ = adaptation_from_file(fitted["adaptation"], tensors)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"The adaptation stored in {os.fspath(path)!r} is incomplete "
                f"({type(exc).__name__}: {exc}); the file is damaged."
            ) from exc
    return clf


def _restore_network(clf, fitted, tensors, parts):
    """Finetune mode: body + head, then the same skorch net as ``fit`` builds."""
    from skorch.history import History

    width = int(fitted["head_in_features"])
    widths = [width, *clf.hidden_units, clf.n_classes_]
    check_head_shapes(tensors, _MODULE + "head.", [int(w) for w in widths], parts.path)
    body = build_architecture(clf.backbone, clf.in_chans)
    head = build_head(
        width, clf.n_classes_, tuple(clf.hidden_units), float(clf.dropout)
    )
    module = CXRNetwork(body, head)
    load_tensors(module, tensors, _MODULE, f"network {clf.backbone!r}")
    apply_memory_format(module, fitted)
    clf.preprocessing_ = Preprocessing.from_file_fields(
        fitted, image_size=clf.image_size, in_chans=clf.in_chans, equalize=clf.equalize
    )
    if "detail_size_" not in fitted:
        # a file from before detail_size: its model had no such step
        clf.detail_size = None
    net = make_net(
        module,
        n_classes=clf.n_classes_,
        device=clf.device_,
        amp=clf.amp,
        batch_size=clf.batch_size,
        num_workers=clf.num_workers,
        lr=clf.lr,
        max_epochs=clf.max_epochs,
    ).initialize()
    if parts.has(HISTORY):
        net.history = History(json.loads(parts.read(HISTORY)))
    net.module_.eval()
    clf.net_ = net
