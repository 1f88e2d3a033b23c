"""Checks of what a fit is given and of what a fitted model answers.

Shared by the estimators; each error says what was wrong and how to fix it.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "check_class_weights",
    "check_targets",
    "class_weight_vector",
    "check_finite_proba",
    "check_not_continuous",
    "check_sample_weight",
    "diverged_message",
]


def check_sample_weight(sample_weight, n_samples):
    """Validate per-image weights: finite, non-negative, with a positive sum.

    A negative weight turns minimising the loss into maximising it, and
    weights summing to zero leave nothing to learn.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,)
    n_samples : int

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,), float64
    """
    try:
        weights = _check_sample_weight(
            sample_weight, np.empty(n_samples), ensure_non_negative=True
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Invalid sample_weight: {exc} Pass one finite weight >= 0 per image, "
            "with a sum above 0."
        ) from exc
    if not weights.sum() > 0:
        raise ValueError(
            "Invalid sample_weight: the weights sum to 0, so no image counts. "
            "Pass one finite weight >= 0 per image, with a sum above 0."
        )
    return weights


def check_class_weights(weights, classes, class_weight):
    """Refuse class weights that are not finite or are negative, or all zero.

    Parameters
    ----------
    weights : ndarray of shape (n_classes,)
        The weights derived from ``class_weight``, in the order of ``classes``.
    classes : ndarray of shape (n_classes,)
    class_weight : dict or str
        The parameter as given, for the message.

    Returns
    -------
    weights : ndarray of shape (n_classes,)
    """
    weights = np.asarray(weights, dtype=np.float64)
    bad = [
        c for c, w in zip(classes.tolist(), weights) if not np.isfinite(w) or w < 0
    ]
    if bad:
        raise ValueError(
            f"class_weight={class_weight!r} gives classes {bad} a weight that is "
            "negative, NaN or infinite; class weights must be finite numbers >= 0."
        )
    if not weights.sum() > 0:
        raise ValueError(
            f"class_weight={class_weight!r} gives every class a weight of 0; at "
            "least one class needs a positive weight."
        )
    return weights


def check_not_continuous(y):
    """Refuse float labels that look like a regression target.

    Float labels are class names here (0.0 / 1.0, or 0.25 / 1.5), so they are
    allowed when they are few and repeated. Non-integral floats with more
    distinct values than half the number of labels, such as
    ``np.random.rand(n)``, are refused the way scikit-learn's classifiers
    refuse them.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    """
    if y.dtype.kind != "f" or type_of_target(y) != "continuous":
        return
    n_distinct = len(np.unique(y))
    if 2 * n_distinct > len(y):
        raise ValueError(
            f"Unknown label type: continuous. y holds {n_distinct} distinct "
            f"non-integral float values in {len(y)} labels, a regression "
            "target rather than classes. A classifier needs class labels: bin "
            "the values, or pass labels such as 0/1 or strings."
        )


def diverged_message(loss, epoch, batch, lr):
    """The error message of a fit whose training loss became NaN or infinite."""
    return (
        f"Training diverged: the training loss became {loss} at epoch {epoch}, "
        f"batch {batch}. The fit was stopped and the model left as it was. Lower "
        f"lr (now {lr:g}; try 10 times smaller) or body_lr_factor, and check "
        "that class_weight, sample_weight and the weights of the backbone are "
        "finite."
    )


def check_finite_proba(proba):
    """Never hand out NaN probabilities: raise naming the images.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
    """
    bad = np.flatnonzero(~np.all(np.isfinite(proba), axis=1))
    if len(bad):
        shown = ", ".join(f"X[{i}]" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(
            f"The model gives NaN or infinite probabilities for {shown}{more}: "
            "its weights are not finite (a diverged training or a damaged "
            "model). Refit it with a lower lr, or load an intact model file."
        )
    return proba


def check_targets(y, n_images):
    """Check the labels of a fit: one per image, one type, a classification."""
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


def class_weight_vector(class_weight, classes, y_encoded):
    """``class_weight`` as one weight per encoded class, or None."""
    if class_weight is None:
        return None
    if class_weight == "balanced":
        return compute_class_weight(
            "balanced", classes=np.arange(len(classes)), y=y_encoded
        )
    unknown = [k for k in class_weight if k not in set(classes.tolist())]
    if unknown:
        raise ValueError(
            f"class_weight names labels {unknown} that are not in y "
            f"(classes: {classes.tolist()})."
        )
    weights = [class_weight.get(c, 1.0) for c in classes.tolist()]
    try:
        weights = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"class_weight={class_weight!r} holds weights that are not "
            "numbers; give a number >= 0 per class."
        ) from exc
    return check_class_weights(weights, classes, class_weight)
