"""tune(): cross-validated Optuna search with pruning and shared storage."""

from __future__ import annotations

import inspect
import logging
import os
import socket
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, check_cv

from .._callbacks import VALID_AUC
from ._optuna import import_optuna
from ._pruning import OptunaPruningCallback
from ._spaces import default_search_space

__all__ = ["tune"]

logger = logging.getLogger(__name__)


def _take(X, indices):
    """Rows ``indices`` of an array, or items of a sequence of paths/images."""
    if isinstance(X, np.ndarray):
        return X[indices]
    return [X[i] for i in indices]


def _fit(estimator, X, y, groups):
    if groups is not None and "groups" in inspect.signature(estimator.fit).parameters:
        return estimator.fit(X, y, groups=groups)
    return estimator.fit(X, y)


def _check_cv(cv, X, y, groups, estimator):
    if isinstance(cv, Integral) and not isinstance(cv, bool):
        if groups is not None:
            return StratifiedGroupKFold(n_splits=int(cv))
        if is_classifier(estimator):
            return StratifiedKFold(n_splits=int(cv))
    return check_cv(cv, y, classifier=is_classifier(estimator))


def _params_from_space(search_space, trial):
    params = search_space(trial)
    if not isinstance(params, dict):
        raise TypeError(
            "search_space must be a function trial -> dict of estimator "
            f"parameters, but it returned a {type(params).__name__}: {params!r}."
        )
    return params


def _prunes_by_epoch(estimator):
    params = estimator.get_params()
    return (
        params.get("mode") == "finetune"
        and "callbacks" in params
        and params.get("validation_fraction") is not None
    )


class _Objective:
    """One trial: set the sampled parameters, cross-validate, report."""

    def __init__(self, estimator, X, y, groups, splits, scorer, search_space):
        self.estimator = estimator
        self.X = X
        self.y = y
        self.groups = groups
        self.splits = splits
        self.scorer = scorer
        self.search_space = search_space

    def __call__(self, trial):
        optuna = import_optuna()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = _params_from_space(self.search_space, trial)
        candidate = clone(self.estimator).set_params(**params)
        by_epoch = _prunes_by_epoch(candidate)
        scores = []
        for fold, (train, test) in enumerate(self.splits):
            model = clone(candidate)
            if by_epoch:
                pruning = OptunaPruningCallback(
                    trial,
                    monitor=VALID_AUC,
                    step_offset=fold * int(model.get_params()["max_epochs"]),
                )
                callbacks = list(model.get_params()["callbacks"] or [])
                model.set_params(callbacks=callbacks + [("optuna_pruning", pruning)])
            groups = None if self.groups is None else self.groups[train]
            _fit(model, _take(self.X, train), self.y[train], groups)
            scores.append(
                float(self.scorer(model, _take(self.X, test), self.y[test]))
            )
            trial.set_user_attr("cv_scores", scores)
            if not by_epoch:
                trial.report(float(np.mean(scores)), fold)
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"Trial {trial.number} pruned after fold {fold} "
                        f"(mean score {np.mean(scores):.4f})."
                    )
        trial.set_user_attr("std_test_score", float(np.std(scores)))
        return float(np.mean(scores))


def _with_heartbeat(optuna, storage, heartbeat_interval):
    """An RDB URL becomes an ``RDBStorage`` whose trials send heartbeats, so
    that the trials of killed workers are failed and retried."""
    if heartbeat_interval is not None and (
        isinstance(heartbeat_interval, bool)
        or not isinstance(heartbeat_interval, Integral)
        or heartbeat_interval < 1
    ):
        raise ValueError(
            "heartbeat_interval must be None or a positive number of seconds, "
            f"got {heartbeat_interval!r}."
        )
    if heartbeat_interval is None or not isinstance(storage, str):
        return storage
    retry_class = getattr(
        optuna.storages,
        "RetryHeartbeatStaleTrialCallback",  # optuna >= 4.9
        optuna.storages.RetryFailedTrialCallback,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = retry_class(max_retry=3)
    signature = inspect.signature(optuna.storages.RDBStorage)
    callback = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in signature.parameters
        else "failed_trial_callback"  # optuna < 4.9
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            storage, heartbeat_interval=int(heartbeat_interval), **{callback: retry}
        )


def tune(
    estimator,
    X,
    y,
    *,
    groups=None,
    cv=5,
    n_trials=20,
    timeout=None,
    scoring="roc_auc",
    search_space=None,
    storage=None,
    study_name=None,
    direction="maximize",
    pruner=None,
    sampler=None,
    random_state=None,
    n_jobs=1,
    refit=True,
    catch=(),
    show_progress_bar=False,
    heartbeat_interval=60,
):
    """Tune hyper-parameters with Optuna by cross-validation, then refit.

    Each trial draws parameters from ``search_space``, cross-validates a
    clone of ``estimator`` with them on the same folds as every other trial
    and returns the mean score. In finetune mode every fold reports the
    internal validation ROC AUC (``valid_auc``) each epoch, so that the
    ``pruner`` stops unpromising trials mid-training; other estimators report
    the running mean score after each fold. The best parameters are then
    refitted on all the data.

    Read more in :ref:`tuning`.

    Parameters
    ----------
    estimator : PretrainedCNNClassifier or scikit-learn estimator
        The template; it is cloned, never fitted.
    X : ndarray or sequence of paths / PIL images / arrays
        Images, as for :meth:`PretrainedCNNClassifier.fit`.
    y : array-like of shape (n_samples,)
        Labels.
    groups : array-like of shape (n_samples,), default=None
        Patient ids. Folds keep each patient on one side
        (``StratifiedGroupKFold`` for an integer ``cv``), and each fit gets its
        training patients for its internal validation split.
    cv : int, cross-validation splitter or iterable, default=5
        An int is the number of folds: ``StratifiedGroupKFold`` with
        ``groups``, else ``StratifiedKFold``; both unshuffled, so that workers
        on other machines use the same folds.
    n_trials : int or None, default=20
        Trials this call runs, as :meth:`optuna.study.Study.optimize` counts
        them: workers sharing ``storage`` each run their own.
    timeout : float or None, default=None
        Stop starting trials after this many seconds.
    scoring : str or callable, default="roc_auc"
        A scikit-learn scorer (greater is better).
    search_space : callable or None, default=None
        ``trial -> dict of estimator parameters``; None means
        :func:`default_search_space` of ``estimator`` (training and head
        parameters; the backbone and image size are kept).
    storage : str, optuna storage or None, default=None
        Where the study lives: None in memory, or an RDB URL
        (``"sqlite:///tuning.db"``, ``"postgresql://user:pw@host/db"``) or an
        Optuna storage (``JournalStorage``) shared by several workers.
    study_name : str or None, default=None
        The study to create, or to join where it exists in ``storage``.
    direction : {"maximize", "minimize"}, default="maximize"
    pruner : optuna.pruners.BasePruner or None, default=None
        None means ``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``.
    sampler : optuna.samplers.BaseSampler or None, default=None
        None means ``TPESampler(seed=random_state)``.
    random_state : int or None, default=None
        Seed of the default sampler. Workers sharing a study should use
        different seeds (or None), or they propose the same parameters.
    n_jobs : int, default=1
        Trials run at the same time in threads of this process.
    refit : bool, default=True
        Fit the best parameters on all of ``X``.
    catch : tuple of exception types, default=()
        Exceptions that fail a trial without stopping the study.
    show_progress_bar : bool, default=False
    heartbeat_interval : int or None, default=60
        With an RDB URL as ``storage``, each running trial records a heartbeat
        this often (seconds). A trial whose worker was killed misses its
        heartbeats; after ``2 * heartbeat_interval`` seconds the next worker
        to start a trial marks it ``FAIL`` (instead of ``RUNNING`` forever) and
        runs its parameters again, up to 3 times
        (:class:`optuna.storages.RetryFailedTrialCallback`). None turns this
        off. A storage object is used as given: create an
        :class:`optuna.storages.RDBStorage` with ``heartbeat_interval`` for the
        same behaviour.

    Returns
    -------
    study : optuna.study.Study
        All the trials, those of other workers on the same storage included;
        each has user attributes ``cv_scores``, ``std_test_score`` and
        ``worker`` (``host:pid``).
    best_estimator : estimator or None
        A clone of ``estimator`` with ``study.best_params`` applied, fitted
        on all the data; None when ``refit=False``.

    See Also
    --------
    default_search_space : the space used when none is given.
    OptunaPruningCallback : the per-epoch report of finetune mode.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr import PretrainedCNNClassifier
    >>> from sklearn_cxr.tuning import tune
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 255, (16, 32, 32), dtype=np.uint8)
    >>> y = np.array(["NORMAL", "PNEUMONIA"] * 8)
    >>> X[y == "PNEUMONIA", 8:24, 8:24] = 255
    >>> clf = PretrainedCNNClassifier(backbone="resnet18", weights=None,
    ...     mode="features", image_size=32, random_state=0)
    >>> study, best = tune(clf, X, y, cv=2, n_trials=2, random_state=0)
    >>> len(study.trials), sorted(study.best_params)
    (2, ['final_estimator__C'])
    """
    optuna = import_optuna()
    y = np.asarray(y)
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise ValueError(
                f"groups has {len(groups)} entries but y has {len(y)}; pass one "
                "patient id per image."
            )
    if search_space is None:
        search_space = default_search_space(estimator)
    elif not callable(search_space):
        raise TypeError(
            "search_space must be a function trial -> dict of parameters, got "
            f"{search_space!r}."
        )
    if direction not in ("maximize", "minimize"):
        raise ValueError(
            f"direction must be 'maximize' or 'minimize', got {direction!r}."
        )
    splitter = _check_cv(cv, X, y, groups, estimator)
    splits = list(splitter.split(np.zeros((len(y), 1)), y, groups))
    scorer = check_scoring(estimator, scoring=scoring)
    if sampler is None:
        sampler = optuna.samplers.TPESampler(seed=random_state)
    if pruner is None:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    storage = _with_heartbeat(optuna, storage, heartbeat_interval)
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        study_name=study_name,
        direction=direction,
        load_if_exists=True,
    )
    objective = _Objective(estimator, X, y, groups, splits, scorer, search_space)
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        n_jobs=n_jobs,
        catch=catch,
        show_progress_bar=show_progress_bar,
    )
    if not refit:
        return study, None
    states = [t.state for t in study.trials]
    if optuna.trial.TrialState.COMPLETE not in states:
        counts = {s.name: states.count(s) for s in set(states)}
        raise RuntimeError(
            f"No trial of study {study.study_name!r} completed ({counts}); "
            "nothing to refit. Run more trials, or a gentler pruner."
        )
    best_trial = study.best_trial
    params = _params_from_space(
        search_space, optuna.trial.FixedTrial(best_trial.params, best_trial.number)
    )
    logger.info(
        "Refitting trial %d (score %.4f) on all %d images: %s",
        best_trial.number,
        best_trial.value,
        len(y),
        params,
    )
    best = clone(estimator).set_params(**params)
    _fit(best, X, y, groups)
    return study, best
