"""A skorch callback that reports each epoch's score to an Optuna trial."""

from __future__ import annotations

import logging

from skorch.callbacks import Callback

from .._callbacks import VALID_AUC
from ._optuna import import_optuna

__all__ = ["OptunaPruningCallback"]

logger = logging.getLogger(__name__)


class OptunaPruningCallback(Callback):
    """Report a validation score to an Optuna trial each epoch; stop if pruned.

    The skorch callback of ``optuna-integration``
    (``optuna_integration.SkorchPruningCallback``) with three changes that
    cross-validated tuning needs:

    - ``step_offset`` numbers the epochs of several folds one after the other
      (fold ``k`` reports steps ``k * max_epochs + epoch``); with the epoch
      alone, the second fold's reports would repeat the first fold's steps,
      which Optuna ignores;
    - it survives :func:`sklearn.base.clone` (which
      :class:`~sklearn_cxr.PretrainedCNNClassifier` applies to its
      ``callbacks``) still reporting to the same trial, where a deep copy
      would report to a copy of the study;
    - a history without ``monitor`` (no internal validation split) is
      reported once in the log instead of failing the trial.

    Parameters
    ----------
    trial : optuna.trial.Trial
        The trial to report to.
    monitor : str, default="valid_auc"
        Column of the skorch history to report; :class:`PretrainedCNNClassifier`
        records ``valid_auc`` when ``validation_fraction`` is set.
    step_offset : int, default=0
        Added to the 0-based epoch to make the reported step.

    Examples
    --------
    >>> import optuna
    >>> from sklearn_cxr import PretrainedCNNClassifier
    >>> from sklearn_cxr.tuning import OptunaPruningCallback
    >>> trial = optuna.create_study().ask()
    >>> clf = PretrainedCNNClassifier(
    ...     callbacks=[("pruning", OptunaPruningCallback(trial))])
    """

    def __init__(self, trial, monitor=VALID_AUC, step_offset=0):
        self.trial = trial
        self.monitor = monitor
        self.step_offset = step_offset

    def __sklearn_clone__(self):
        return type(self)(self.trial, self.monitor, self.step_offset)

    def initialize(self):
        self.n_reported_ = 0
        self.warned_ = False
        return self

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        if self.monitor not in row:
            if not self.warned_:
                logger.warning(
                    "Trial %d: no %r in the training history (columns: %s), so "
                    "nothing is reported to Optuna each epoch; give the "
                    "classifier a validation_fraction.",
                    self.trial.number,
                    self.monitor,
                    sorted(row),
                )
                self.warned_ = True
            return
        epoch = len(net.history) - 1
        step = self.step_offset + epoch
        score = float(row[self.monitor])
        self.trial.report(score, step)
        self.n_reported_ += 1
        if self.trial.should_prune():
            optuna = import_optuna()
            raise optuna.TrialPruned(
                f"Trial {self.trial.number} pruned at step {step} "
                f"({self.monitor}={score:.4f})."
            )
