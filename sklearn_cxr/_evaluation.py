"""Clinical evaluation: sensitivity, specificity, ROC AUC with bootstrap CIs."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    recall_score,
    roc_auc_score,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, check_is_fitted

__all__ = ["ClinicalReport", "clinical_report", "evaluate_classifier"]

logger = logging.getLogger(__name__)

METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc")


@dataclass(frozen=True)
class MetricEstimate:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    ci_low: float
    ci_high: float

    def as_dict(self):
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True, eq=False)
class ClinicalReport:
    """Result of :func:`clinical_report`.

    Attributes
    ----------
    metrics : dict of str to MetricEstimate
        ``accuracy``, ``sensitivity`` (recall of the positive class),
        ``specificity`` (recall of the negative class) and ``roc_auc``, each
        with ``value``, ``ci_low`` and ``ci_high``. A metric that is undefined
        (ROC AUC with one class present) is NaN.
    confusion_matrix : ndarray of shape (2, 2)
        Rows are true, columns predicted, in the order ``labels``
        (negative, positive): ``[[TN, FP], [FN, TP]]``.
    labels : tuple
        ``(negative_label, positive_label)``.
    threshold : float
        Score at or above which an image is called positive.
    confidence : float
        Level of the intervals.
    n_samples, n_groups : int
        Images, and patients (equal to ``n_samples`` without groups).
    n_bootstrap : int
        Resamples drawn.
    resampled_by : {"patient", "image"}
        Unit of the bootstrap.
    extra : dict
        Anything else, such as the ``figures`` written by
        :func:`evaluate_classifier`.
    """

    metrics: dict
    confusion_matrix: np.ndarray
    labels: tuple
    threshold: float
    confidence: float
    n_samples: int
    n_groups: int
    n_bootstrap: int
    resampled_by: str
    extra: dict = field(default_factory=dict)

    def __getattr__(self, name):
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def to_dict(self):
        """Plain Python types, ready for :func:`json.dump`."""
        return {
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "confusion_matrix": np.asarray(self.confusion_matrix).tolist(),
            "labels": [_plain(label) for label in self.labels],
            "threshold": self.threshold,
            "confidence": self.confidence,
            "n_samples": self.n_samples,
            "n_groups": self.n_groups,
            "n_bootstrap": self.n_bootstrap,
            "resampled_by": self.resampled_by,
            **{k: _plain(v) for k, v in self.extra.items()},
        }

    def __str__(self):
        level = f"{self.confidence:.0%} CI"
        lines = [f"{'metric':<12} {'value':>7}   {level}"]
        for name, est in self.metrics.items():
            lines.append(
                f"{name:<12} {est.value:7.3f}   [{est.ci_low:.3f}, {est.ci_high:.3f}]"
            )
        negative, positive = (str(label) for label in self.labels)
        (tn, fp), (fn, tp) = np.asarray(self.confusion_matrix).tolist()
        width = max(len(negative), len(positive), 9)
        lines += [
            "",
            f"confusion matrix (rows: true, columns: predicted; threshold "
            f"{self.threshold:g})",
            f"{'':<{width}} {negative:>{width}} {positive:>{width}}",
            f"{negative:<{width}} {tn:>{width}} {fp:>{width}}",
            f"{positive:<{width}} {fn:>{width}} {tp:>{width}}",
            "",
            f"{self.n_samples} images, {self.n_groups} "
            f"{'patients' if self.resampled_by == 'patient' else 'resampling units'}"
            f", {self.n_bootstrap} bootstrap resamples by {self.resampled_by}",
        ]
        return "\n".join(lines)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _default_positive(labels):
    """The positive label when none is given.

    "PNEUMONIA"; else the other label of a pair with "normal" (any case);
    else 1 (or True) of a 0/1 pair.
    """
    values = np.asarray(labels).tolist()
    if "PNEUMONIA" in values:
        return "PNEUMONIA"
    normal = [v for v in values if str(v).lower() == "normal"]
    if len(values) == 2 and len(normal) == 1:
        return next(v for v in values if v is not normal[0])
    if 1 in values and all(v in (0, 1) for v in values):
        return values[values.index(1)]
    raise ValueError(
        f"Cannot tell which label is positive among {values}; pass "
        "positive_label=<the label of the disease>."
    )


def _point_metrics(y_pos, y_pred, score, weight=None):
    """Accuracy, sensitivity, specificity and ROC AUC of binary arrays."""
    values = {
        "accuracy": accuracy_score(y_pos, y_pred, sample_weight=weight),
        "sensitivity": np.nan,
        "specificity": np.nan,
        "roc_auc": np.nan,
    }
    w = np.ones(len(y_pos)) if weight is None else weight
    has_pos = w[y_pos].sum() > 0
    has_neg = w[~y_pos].sum() > 0
    if has_pos:
        values["sensitivity"] = recall_score(
            y_pos, y_pred, pos_label=True, sample_weight=weight, zero_division=np.nan
        )
    if has_neg:
        values["specificity"] = recall_score(
            y_pos, y_pred, pos_label=False, sample_weight=weight, zero_division=np.nan
        )
    if has_pos and has_neg:
        values["roc_auc"] = roc_auc_score(y_pos, score, sample_weight=weight)
    return {k: float(v) for k, v in values.items()}


_CHUNK = 100


def _weighted_metrics(y_pos, y_pred, score, weights):
    """The four metrics for each row of ``weights`` (resamples), vectorised.

    Equal to the scikit-learn metrics with ``sample_weight`` (the tests check
    it); NaN where a resample lacks a class.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        w_pos = weights[:, y_pos].sum(axis=1)
        w_neg = weights[:, ~y_pos].sum(axis=1)
        correct = (y_pred == y_pos).astype(np.float64)
        accuracy = weights @ correct / weights.sum(axis=1)
        sensitivity = weights @ (y_pred & y_pos).astype(np.float64) / w_pos
        specificity = weights @ (~y_pred & ~y_pos).astype(np.float64) / w_neg
        # Weighted Mann-Whitney statistic, ties counted half, over the
        # distinct score values in increasing order.
        order = np.argsort(score, kind="mergesort")
        sorted_score = score[order]
        starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
        pos_sorted = y_pos[order]
        w_sorted = weights[:, order]
        pos_at = np.add.reduceat(w_sorted * pos_sorted, starts, axis=1)
        neg_at = np.add.reduceat(w_sorted * ~pos_sorted, starts, axis=1)
        neg_below = np.cumsum(neg_at, axis=1) - neg_at
        auc = (pos_at * (neg_below + 0.5 * neg_at)).sum(axis=1) / (w_pos * w_neg)
    return {
        "accuracy": accuracy,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "roc_auc": auc,
    }


def clinical_report(
    y_true,
    y_score,
    *,
    positive_label=None,
    groups=None,
    threshold=0.5,
    n_bootstrap=1000,
    confidence=0.95,
    random_state=None,
):
    """Accuracy, sensitivity, specificity and ROC AUC with bootstrap intervals.

    The intervals are percentile bootstrap intervals. Where ``groups`` (patient
    ids) are given, whole patients are resampled, as their images are not
    independent; otherwise images are.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, two distinct values.
    y_score : array-like of shape (n_samples,)
        Score of the positive class, such as ``predict_proba(X)[:, k]`` where
        ``classes_[k] == positive_label``.
    positive_label : object, default=None
        The label of the disease. None picks ``"PNEUMONIA"``, else the label
        paired with ``"NORMAL"`` (any case), else ``1`` (or ``True``).
    groups : array-like of shape (n_samples,), default=None
        Patient id of each image; the bootstrap then resamples patients.
    threshold : float, default=0.5
        An image is called positive when its score is at least ``threshold``.
    n_bootstrap : int, default=1000
        Bootstrap resamples; 0 gives NaN intervals.
    confidence : float, default=0.95
        Level of the intervals.
    random_state : int, RandomState or None, default=None
        Seeds the resampling.

    Returns
    -------
    report : ClinicalReport
        ``str(report)`` is a printable table; ``report.to_dict()`` is JSON-ready;
        ``report.sensitivity.value`` etc.

    See Also
    --------
    evaluate_classifier : the same from a fitted classifier and images.

    Examples
    --------
    >>> from sklearn_cxr import clinical_report
    >>> y = ["NORMAL", "NORMAL", "PNEUMONIA", "PNEUMONIA"]
    >>> report = clinical_report(y, [0.1, 0.6, 0.8, 0.9], n_bootstrap=0)
    >>> report.specificity.value, report.sensitivity.value
    (0.5, 1.0)
    >>> report.confusion_matrix.tolist()
    [[1, 1], [0, 2]]
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim == 2 and y_score.shape[1] == 1:
        y_score = y_score.ravel()
    if y_true.ndim != 1 or y_score.ndim != 1:
        raise ValueError(
            f"y_true and y_score must be 1-d, got shapes {y_true.shape} and "
            f"{y_score.shape}; pass the score of the positive class only, e.g. "
            "predict_proba(X)[:, 1]."
        )
    check_consistent_length(y_true, y_score)
    if not np.all(np.isfinite(y_score)):
        raise ValueError("y_score contains NaN or infinite values.")
    labels = np.unique(y_true)
    if len(labels) > 2:
        raise ValueError(
            f"y_true has {len(labels)} classes {labels.tolist()}; the clinical "
            "report is binary. Map the labels to disease / no disease first."
        )
    if positive_label is None:
        positive_label = _default_positive(labels)
    elif positive_label not in set(labels.tolist()) and len(labels) == 2:
        raise ValueError(
            f"positive_label={positive_label!r} is not one of the labels "
            f"{labels.tolist()}."
        )
    others = [label for label in labels.tolist() if label != positive_label]
    negative_label = others[0] if others else f"not {positive_label}"
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}.")
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an integer >= 0, got {n_bootstrap!r}.")

    y_pos = y_true == positive_label
    y_pred = y_score >= threshold
    point = _point_metrics(y_pos, y_pred, y_score)
    cm = confusion_matrix(y_pos, y_pred, labels=[False, True])

    if groups is None:
        unit = np.arange(len(y_true))
        resampled_by = "image"
    else:
        groups = np.asarray(groups)
        check_consistent_length(y_true, groups)
        _, unit = np.unique(groups, return_inverse=True)
        resampled_by = "patient"
    n_units = int(unit.max()) + 1 if len(unit) else 0

    rng = check_random_state(random_state)
    draws = {name: [] for name in METRICS}
    for start in range(0, int(n_bootstrap), _CHUNK):
        size = min(_CHUNK, int(n_bootstrap) - start)
        # A resample of patients is a weight per image: how often its
        # patient was drawn.
        picks = rng.randint(n_units, size=(size, n_units))
        counts = np.zeros((size, n_units))
        np.add.at(counts, (np.arange(size)[:, None], picks), 1.0)
        for name, values in _weighted_metrics(
            y_pos, y_pred, y_score, counts[:, unit]
        ).items():
            draws[name].append(values)
    draws = {
        name: np.concatenate(values) if values else np.empty(0)
        for name, values in draws.items()
    }
    alpha = (1.0 - confidence) / 2
    metrics = {}
    for name in METRICS:
        finite = draws[name][np.isfinite(draws[name])]
        if len(finite) and np.isfinite(point[name]):
            low, high = np.quantile(finite, [alpha, 1 - alpha])
        else:
            low = high = np.nan
        metrics[name] = MetricEstimate(point[name], float(low), float(high))
    return ClinicalReport(
        metrics=metrics,
        confusion_matrix=cm,
        labels=(negative_label, positive_label),
        threshold=float(threshold),
        confidence=float(confidence),
        n_samples=len(y_true),
        n_groups=n_units,
        n_bootstrap=int(n_bootstrap),
        resampled_by=resampled_by,
    )


def _positive_scores(estimator, proba, positive_label, y_true):
    """Binary view of a classifier's output: (y_true_binary, score, labels)."""
    classes = estimator.classes_
    class_list = classes.tolist()
    if len(classes) == 2:
        if positive_label is None:
            positive_label = _default_positive(classes)
        if positive_label not in class_list:
            raise ValueError(
                f"positive_label={positive_label!r} is not one of the classes "
                f"{class_list} of the model."
            )
        return y_true, proba[:, class_list.index(positive_label)], positive_label
    # Several classes (e.g. NORMAL / BACTERIA / VIRUS): disease is anything
    # but the normal class.
    normal = [c for c in class_list if str(c).lower() == "normal"]
    if not normal:
        raise ValueError(
            f"The model has {len(classes)} classes {class_list} and none is "
            "'NORMAL'; the clinical report is binary. Evaluate a binary model."
        )
    negative = normal[0]
    positive = "PNEUMONIA" if positive_label is None else positive_label
    score = 1.0 - proba[:, class_list.index(negative)]
    y_binary = np.where(np.asarray(y_true) == negative, negative, positive)
    return y_binary, score, positive


def evaluate_classifier(
    estimator,
    X,
    y,
    *,
    groups=None,
    positive_label=None,
    threshold=0.5,
    n_bootstrap=1000,
    confidence=0.95,
    random_state=None,
    report_dir=None,
    n_gradcam=8,
):
    """Clinical report of a fitted classifier on images, optionally with plots.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
        Typically a :class:`PretrainedCNNClassifier`. A model with more than
        two classes, one of them ``"NORMAL"`` (any case), is evaluated as
        disease (any other class, called ``positive_label``, by default
        ``"PNEUMONIA"``) versus normal, scored by ``1 - P(normal)``.
    X : images
        Anything the estimator accepts (paths, arrays...).
    y : array-like of shape (n_samples,)
        True labels.
    groups : array-like of shape (n_samples,), default=None
        Patient ids; the bootstrap resamples patients.
    positive_label : object, default=None
        See :func:`clinical_report`.
    threshold, n_bootstrap, confidence, random_state
        See :func:`clinical_report`.
    report_dir : str or os.PathLike, default=None
        Folder to write ``roc_curve.png``, ``confusion_matrix.png``,
        ``gradcam_errors.png`` (Grad-CAM of the most confident errors, for a
        :class:`PretrainedCNNClassifier`) and ``report.json``. Needs
        matplotlib.
    n_gradcam : int, default=8
        Errors shown in the Grad-CAM grid.

    Returns
    -------
    report : ClinicalReport

    See Also
    --------
    clinical_report : the same from labels and scores.
    """
    check_is_fitted(estimator)
    proba = np.asarray(estimator.predict_proba(X))
    y = np.asarray(y)
    y_binary, score, positive = _positive_scores(estimator, proba, positive_label, y)
    report = clinical_report(
        y_binary,
        score,
        positive_label=positive,
        groups=groups,
        threshold=threshold,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
    )
    if report_dir is not None:
        files = _write_report(
            report_dir, report, estimator, X, y_binary, score, positive, n_gradcam
        )
        report.extra["figures"] = files
        with open(os.path.join(report_dir, "report.json"), "w") as handle:
            json.dump(report.to_dict(), handle, indent=2)
    return report


def _write_report(directory, report, estimator, X, y_binary, score, positive, k):
    """Write the PNG figures; return their file names."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "Writing the report's figures needs matplotlib: pip install "
            "matplotlib (or 'sklearn-cxr[docs]'), or leave report_dir=None."
        ) from exc
    from sklearn.metrics import ConfusionMatrixDisplay

    from .inspection import plot_roc_with_ci

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
    if len(errors) and k > 0 and hasattr(estimator, "mode_fitted_"):
        from .inspection import gradcam, plot_gradcam

        # the most confident errors: furthest from the threshold
        errors = errors[np.argsort(-np.abs(score[errors] - report.threshold))][:k]
        from ._images import check_images

        images = check_images(X).take(errors)
        classes = [_plain(c) for c in estimator.classes_]
        # explain the disease where it is a class, else each predicted class
        explained = positive if positive in classes else None
        try:
            heatmaps = gradcam(estimator, images, target=explained)
            if explained is None:
                explained = [_plain(c) for c in estimator.predict(images)]
        except (TypeError, ValueError) as exc:
            logger.warning("No Grad-CAM grid: %s", exc)
        else:
            names = _image_names(X, errors)
            titles = [
                f"{name}\ntrue {y_binary[i]}, p({positive}) = {score[i]:.2f}"
                for name, i in zip(names, errors)
            ]
            fig = plot_gradcam(
                images, heatmaps, titles=titles, explained=explained, figure=Figure()
            )
            files["gradcam_errors"] = _save(fig, directory, "gradcam_errors.png")
    return files


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


def _save(fig, directory, name):
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(os.path.join(directory, name), dpi=100)
    return name
