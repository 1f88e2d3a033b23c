"""The figures of an evaluation: ROC curve, confusion matrix, Grad-CAM grids.

The drawing layer: it uses matplotlib (imported when a figure is drawn) and
:mod:`sklearn_cxr.inspection`; the metrics themselves live in
:mod:`sklearn_cxr._evaluation`, which draws nothing.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ._images import check_images
from ._labels import NO_DISEASE_NAMES, plain_label, resolve_positive_label

__all__ = ["write_report_figures", "save_gradcam_examples"]

logger = logging.getLogger(__name__)


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "Writing the report's figures needs matplotlib: pip install "
            "matplotlib (or 'sklearn-cxr[docs]'), or leave report_dir=None."
        ) from exc
    return Figure


def _save(fig, directory, name):
    """Write ``fig`` as ``directory/name``; return ``name``."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(os.path.join(directory, name), dpi=100)
    return name


def _image_names(X, indices):
    """File names of path inputs, else ``#index``."""
    names = []
    for i in indices:
        item = X[i] if hasattr(X, "__getitem__") else None
        if isinstance(item, (str, os.PathLike)):
            names.append(os.path.basename(os.fspath(item)))
        else:
            names.append(f"#{i}")
    return names


def write_report_figures(
    directory, report, estimator, X, y_binary, score, *, n_gradcam=8
):
    """Write the PNG figures of a clinical report; return their file names.

    Parameters
    ----------
    directory : str or os.PathLike
        Folder to write to (created if missing).
    report : ClinicalReport
        The metrics; ``report.labels`` is ``(negative, positive)``.
    estimator : fitted classifier
        Grad-CAM of its most confident errors is drawn when it is a
        :class:`~sklearn_cxr.PretrainedCNNClassifier`.
    X : images
        The images evaluated, aligned with ``y_binary`` and ``score``.
    y_binary : ndarray of shape (n_samples,)
        True labels, the two of ``report.labels``.
    score : ndarray of shape (n_samples,)
        Score of the positive label.
    n_gradcam : int, default=8
        Errors shown in the Grad-CAM grid.

    Returns
    -------
    files : dict of str to str
        ``roc_curve`` (when both classes are present), ``confusion_matrix``
        and ``gradcam_errors`` (when there are errors to show) mapped to the
        file names written.
    """
    Figure = _figure_class()
    from sklearn.metrics import ConfusionMatrixDisplay

    from .inspection import plot_roc_with_ci

    directory = os.fspath(directory)
    positive = report.labels[1]
    os.makedirs(directory, exist_ok=True)
    files = {}
    y_pos = y_binary == positive
    if 0 < y_pos.sum() < len(y_pos):
        fig = Figure(figsize=(5, 5))
        auc = report.roc_auc
        plot_roc_with_ci(
            y_binary,
            score,
            pos_label=positive,
            roc_auc=auc.value,
            ci_low=auc.ci_low,
            ci_high=auc.ci_high,
            confidence=report.confidence,
            ax=fig.subplots(),
        )
        files["roc_curve"] = _save(fig, directory, "roc_curve.png")
    else:
        logger.warning("Only one class present: no ROC curve drawn.")
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay(
        report.confusion_matrix, display_labels=[str(v) for v in report.labels]
    ).plot(ax=ax, colorbar=False, values_format="d")
    ax.set_title(f"Confusion matrix (threshold {report.threshold:g})")
    files["confusion_matrix"] = _save(fig, directory, "confusion_matrix.png")

    errors = np.flatnonzero((score >= report.threshold) != y_pos)
    if len(errors) and n_gradcam > 0 and hasattr(estimator, "mode_fitted_"):
        grid = _gradcam_errors(
            directory, report, estimator, X, y_binary, score, errors, n_gradcam
        )
        if grid is not None:
            files["gradcam_errors"] = grid
    return files


def _gradcam_errors(directory, report, estimator, X, y_binary, score, errors, k):
    from .inspection import gradcam, plot_gradcam

    Figure = _figure_class()
    positive = report.labels[1]
    # the most confident errors: furthest from the threshold
    errors = errors[np.argsort(-np.abs(score[errors] - report.threshold))][:k]
    images = check_images(X).take(errors)
    classes = [plain_label(c) for c in estimator.classes_]
    # explain the disease where it is a class, else each predicted class
    explained = positive if positive in classes else None
    try:
        heatmaps = gradcam(estimator, images, target=explained)
        if explained is None:
            explained = [plain_label(c) for c in estimator.predict(images)]
    except (TypeError, ValueError) as exc:
        logger.warning("No Grad-CAM grid: %s", exc)
        return None
    names = _image_names(X, errors)
    titles = [
        f"{name}\ntrue {y_binary[i]}, p({positive}) = {score[i]:.2f}"
        for name, i in zip(names, errors)
    ]
    fig = plot_gradcam(
        images, heatmaps, titles=titles, explained=explained, figure=Figure()
    )
    return _save(fig, directory, "gradcam_errors.png")


def save_gradcam_examples(
    model, X, y, directory, *, random_state=0, per_class=4, name="gradcam.png"
):
    """Grad-CAM of a few images of each class, evidence for the disease.

    Parameters
    ----------
    model : fitted PretrainedCNNClassifier
        The model explained.
    X : images
        Candidates, aligned with ``y``.
    y : ndarray of shape (n_samples,)
        Their true labels.
    directory : str or os.PathLike
        Folder to write to.
    random_state : int, default=0
        Seeds the choice of images.
    per_class : int, default=4
        Images of each class.
    name : str, default="gradcam.png"
        File name.

    Returns
    -------
    name : str
        The file name written in ``directory``.
    """
    from .inspection import gradcam, plot_gradcam

    Figure = _figure_class()
    classes = [plain_label(c) for c in model.classes_]
    explained = resolve_positive_label(classes) if len(classes) == 2 else None
    if explained is None:
        explained = next(
            (c for c in classes if str(c).lower() not in NO_DISEASE_NAMES),
            classes[-1],
        )
    rng = np.random.RandomState(random_state)
    chosen = []
    for label in classes:
        members = np.flatnonzero(np.asarray(y) == label)
        chosen += rng.permutation(members)[:per_class].tolist()
    images = check_images(X).take(chosen)
    heatmaps = gradcam(model, images, target=explained)
    proba = model.predict_proba(images)[:, classes.index(explained)]
    titles = [f"true {y[i]}\np({explained}) = {p:.2f}" for i, p in zip(chosen, proba)]
    fig = plot_gradcam(
        images, heatmaps, titles=titles, explained=explained, figure=Figure()
    )
    fig.savefig(os.path.join(os.fspath(directory), name), dpi=100)
    return name
