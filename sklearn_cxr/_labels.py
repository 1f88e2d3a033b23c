"""Which label is the disease: the one rule of the package.

Predictions with a threshold, the clinical report, its figures and the
command line all call the positive ("disease") label through
:func:`resolve_positive_label`, so they cannot disagree.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DISEASE_NAMES",
    "NO_DISEASE_NAMES",
    "plain_label",
    "resolve_positive_label",
]

#: Labels recognised as the disease, in any case.
DISEASE_NAMES = ("pneumonia",)

#: Labels recognised as "no disease", in any case.
NO_DISEASE_NAMES = ("normal", "healthy", "negative", "no finding")


def plain_label(value):
    """A label as a plain Python value (``np.str_("a")`` -> ``"a"``)."""
    return value.item() if isinstance(value, np.generic) else value


def resolve_positive_label(labels, positive_label=None):
    """The label of the disease among ``labels`` (the positive class).

    The rule, in order:

    1. ``positive_label`` when given; it must be one of ``labels``.
    2. The label named ``pneumonia`` (any case).
    3. Of two labels, the one beside a no-disease label
       (:data:`NO_DISEASE_NAMES`: ``normal``, ``healthy``, ``negative``,
       ``no finding``, any case): with ``["healthy", "sick"]``, ``"sick"``.
    4. ``1`` of the numeric labels ``0`` and ``1`` (``True`` of booleans).

    Anything else is refused rather than guessed: the alphabetical order of
    two names says nothing about which is the disease (``["abnormal",
    "clear"]``), and calling the wrong class positive swaps sensitivity and
    specificity without any other sign.

    Parameters
    ----------
    labels : array-like
        The classes of a model, or the labels present in ``y_true``.
    positive_label : object, default=None
        The label of the disease, when the caller knows it.

    Returns
    -------
    positive_label : object
        One of ``labels``, as a plain Python value.

    Raises
    ------
    ValueError
        If ``positive_label`` is not one of ``labels``, or the rule cannot
        tell; the message says how to name the disease (``positive_label=``
        in Python, ``--pos-label`` on the command line).

    Examples
    --------
    >>> from sklearn_cxr._labels import resolve_positive_label
    >>> resolve_positive_label(["NORMAL", "PNEUMONIA"])
    'PNEUMONIA'
    >>> resolve_positive_label(["healthy", "sick"])
    'sick'
    >>> resolve_positive_label(["a", "b"], positive_label="a")
    'a'
    """
    values = [plain_label(v) for v in np.asarray(labels).tolist()]
    if positive_label is not None:
        positive_label = plain_label(positive_label)
        if positive_label not in values:
            raise ValueError(
                f"positive_label={positive_label!r} is not one of the labels "
                f"{values}."
            )
        return positive_label
    disease = [v for v in values if str(v).lower() in DISEASE_NAMES]
    if len(disease) == 1:
        return disease[0]
    if len(values) == 2:
        normal = [v for v in values if str(v).lower() in NO_DISEASE_NAMES]
        if len(normal) == 1:
            return next(v for v in values if v is not normal[0])
    if 1 in values and all(
        isinstance(v, (bool, int, float)) and v in (0, 1) for v in values
    ):
        return values[values.index(1)]
    raise ValueError(
        f"Cannot tell which label is positive (the disease) among {values}: "
        "none is named 'PNEUMONIA', and no pair of a no-disease label "
        f"({', '.join(NO_DISEASE_NAMES)}) and another, or of 0 and 1. Name "
        "it: positive_label=<the disease label> in Python, --pos-label LABEL "
        "on the command line."
    )
