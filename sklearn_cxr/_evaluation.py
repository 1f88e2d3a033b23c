"""Clinical metrics: sensitivity, specificity, ROC AUC with bootstrap CIs.

Numbers only: the figures are drawn by :mod:`sklearn_cxr._figures` and
:func:`~sklearn_cxr.evaluate_classifier` (in :mod:`sklearn_cxr._report`)
puts both together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    recall_score,
    roc_auc_score,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length

from ._labels import NO_DISEASE_NAMES, resolve_positive_label

__all__ = ["ClinicalReport", "MetricEstimate", "clinical_report", "binary_scores"]

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
        The label of the disease. None applies the package's rule (see
        :ref:`positive-label`): ``"PNEUMONIA"`` (any case), else the label
        paired with a no-disease label such as ``"NORMAL"`` or ``"healthy"``,
        else ``1`` (or ``True``); other labels must be named.
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
    sklearn_cxr.evaluate_classifier : the same from a fitted classifier and
        images.

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
    if positive_label is None or len(labels) == 2:
        positive_label = resolve_positive_label(labels, positive_label)
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


def binary_scores(classes, proba, y_true, positive_label=None):
    """Binary view of a classifier's output: disease against the rest.

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        The classifier's ``classes_``.
    proba : ndarray of shape (n_samples, n_classes)
        Its ``predict_proba``.
    y_true : array-like of shape (n_samples,)
        True labels.
    positive_label : object, default=None
        The disease; see :func:`~sklearn_cxr._labels.resolve_positive_label`.
        With more than two classes, one of them ``"NORMAL"`` (any case, or
        another of :data:`~sklearn_cxr._labels.NO_DISEASE_NAMES`), every
        other class is the disease, called ``positive_label`` (default
        ``"PNEUMONIA"``) and scored by ``1 - P(normal)``.

    Returns
    -------
    y_binary : ndarray of shape (n_samples,)
        ``y_true`` with two labels, the negative one and ``positive_label``.
    score : ndarray of shape (n_samples,)
        Score of the disease.
    positive_label : object
        The disease label.
    """
    classes = np.asarray(classes)
    class_list = classes.tolist()
    if len(classes) == 2:
        positive_label = resolve_positive_label(classes, positive_label)
        score = np.asarray(proba)[:, class_list.index(positive_label)]
        return np.asarray(y_true), score, positive_label
    # Several classes (e.g. NORMAL / BACTERIA / VIRUS): disease is anything
    # but the normal class.
    normal = [c for c in class_list if str(c).lower() in NO_DISEASE_NAMES]
    if len(normal) != 1:
        raise ValueError(
            f"The model has {len(classes)} classes {class_list} and "
            f"{'none is' if not normal else 'several are'} 'NORMAL' (or "
            f"another no-disease name: {', '.join(NO_DISEASE_NAMES)}); the "
            "clinical report is binary. Evaluate a binary model."
        )
    negative = normal[0]
    positive = "PNEUMONIA" if positive_label is None else positive_label
    score = 1.0 - np.asarray(proba)[:, class_list.index(negative)]
    y_binary = np.where(np.asarray(y_true) == negative, negative, positive)
    return y_binary, score, positive
