"""Search spaces: functions ``trial -> dict of estimator parameters``.

Each space names its Optuna parameters after the estimator parameters they
set, so that ``study.best_params`` reads as a configuration. Spaces combine
by merging dicts::

    def space(trial):
        return {**finetune_space(trial), **image_size_space(trial)}
"""

from __future__ import annotations

from functools import partial

__all__ = [
    "finetune_space",
    "features_space",
    "image_size_space",
    "backbone_space",
    "default_search_space",
]

DEFAULT_HIDDEN_UNITS = ((), (256,), (512,))
DEFAULT_BACKBONES = ("resnet18", "resnet50", "densenet121", "efficientnet_b0")


def _encode_units(units):
    return "-".join(str(int(u)) for u in units) or "none"


def finetune_space(
    trial,
    *,
    lr=(1e-5, 1e-2),
    max_freeze_epochs=2,
    batch_sizes=(16, 32, 64),
    max_dropout=0.5,
    hidden_units=DEFAULT_HIDDEN_UNITS,
):
    """Training and head parameters of finetune mode.

    Parameters
    ----------
    trial : optuna.trial.Trial
    lr : tuple of 2 floats, default=(1e-5, 1e-2)
        Bounds of the log-uniform learning rate.
    max_freeze_epochs : int, default=2
        ``freeze_epochs`` is drawn from ``0..max_freeze_epochs``.
    batch_sizes : tuple of int, default=(16, 32, 64)
    max_dropout : float, default=0.5
        ``dropout`` is uniform on ``[0, max_dropout]``.
    hidden_units : tuple of tuples of int, default=((), (256,), (512,))
        Head shapes to choose from (stored in the study as ``"none"``,
        ``"256"``, ``"512-128"``...).

    Returns
    -------
    params : dict
        ``lr``, ``freeze_epochs``, ``batch_size``, ``dropout``,
        ``hidden_units``.

    Examples
    --------
    >>> import optuna
    >>> from sklearn_cxr.tuning import finetune_space
    >>> trial = optuna.trial.FixedTrial({"lr": 1e-3, "freeze_epochs": 1,
    ...     "batch_size": 32, "dropout": 0.1, "hidden_units": "256"})
    >>> finetune_space(trial)["hidden_units"]
    (256,)
    """
    choices = {_encode_units(units): tuple(units) for units in hidden_units}
    return {
        "lr": trial.suggest_float("lr", lr[0], lr[1], log=True),
        "freeze_epochs": trial.suggest_int("freeze_epochs", 0, max_freeze_epochs),
        "batch_size": trial.suggest_categorical("batch_size", list(batch_sizes)),
        "dropout": trial.suggest_float("dropout", 0.0, max_dropout),
        "hidden_units": choices[
            trial.suggest_categorical("hidden_units", list(choices))
        ],
    }


def features_space(trial, *, C=(1e-4, 1e2)):
    """Inverse regularisation ``final_estimator__C`` of feature mode.

    Parameters
    ----------
    trial : optuna.trial.Trial
    C : tuple of 2 floats, default=(1e-4, 1e2)
        Bounds of the log-uniform ``C``.

    Returns
    -------
    params : dict
        ``{"final_estimator__C": ...}``
    """
    C = trial.suggest_float("final_estimator__C", C[0], C[1], log=True)
    return {"final_estimator__C": C}


def image_size_space(trial, *, sizes=(224, 256, 320)):
    """``image_size`` from a list (larger images cost quadratically more).

    Returns
    -------
    params : dict
        ``{"image_size": ...}``
    """
    return {"image_size": trial.suggest_categorical("image_size", list(sizes))}


def backbone_space(trial, *, backbones=DEFAULT_BACKBONES):
    """``backbone`` from a list of names (see :func:`sklearn_cxr.list_backbones`).

    With ``weights="DEFAULT"`` each backbone needs its ImageNet weights in the
    torch hub cache; ``"timm:<name>"`` entries need the ``timm`` extra.

    Returns
    -------
    params : dict
        ``{"backbone": ...}``
    """
    return {"backbone": trial.suggest_categorical("backbone", list(backbones))}


def default_search_space(estimator):
    """The search space :func:`tune` uses when none is given.

    Finetune mode tunes :func:`finetune_space` (``freeze_epochs`` below the
    estimator's ``max_epochs``); feature mode tunes :func:`features_space`.
    The backbone and the image size stay those of ``estimator``.

    Parameters
    ----------
    estimator : PretrainedCNNClassifier

    Returns
    -------
    search_space : callable
        ``trial -> dict of params``.
    """
    params = estimator.get_params()
    if "mode" not in params:
        raise TypeError(
            "default_search_space knows the parameters of PretrainedCNNClassifier; "
            f"for a {type(estimator).__name__}, pass search_space=a function "
            "trial -> dict of parameters."
        )
    if params["mode"] == "features":
        final = params.get("final_estimator")
        if final is not None and "C" not in final.get_params():
            raise ValueError(
                f"The default feature-mode space tunes final_estimator__C, but "
                f"{type(final).__name__} has no parameter C; pass search_space=a "
                "function trial -> dict of parameters."
            )
        return features_space
    max_freeze = min(2, max(int(params.get("max_epochs", 1)) - 1, 0))
    return partial(finetune_space, max_freeze_epochs=max_freeze)
