"""tune(), its search spaces and pruning, and OptunaSearchCV with the classifier."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from sklearn_cxr import PretrainedCNNClassifier

optuna = pytest.importorskip("optuna", reason="the tuning extra (optuna) is missing")

from _helpers import TinyNet  # noqa: E402

from sklearn_cxr.tuning import (  # noqa: E402
    OptunaPruningCallback,
    default_search_space,
    features_space,
    finetune_space,
    tune,
)
from sklearn_cxr.tuning._tune import _check_cv  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def features_clf():
    return PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, mode="features", image_size=32,
        random_state=0,
    )


def finetune_clf(**params):
    defaults = dict(
        backbone=TinyNet(), weights=None, image_size=32, max_epochs=2,
        batch_size=8, validation_fraction=0.2, augment=False, random_state=0,
    )
    return PretrainedCNNClassifier(**{**defaults, **params})


def lr_space(trial):
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True)}


def test_import_sklearn_cxr_does_not_import_optuna():
    code = (
        "import sys, sklearn_cxr, sklearn_cxr.tuning; "
        "assert 'optuna' not in sys.modules, 'optuna imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_optuna_says_how_to_install(monkeypatch, blobs):
    X, y, _ = blobs
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r"pip install 'sklearn-cxr\[tuning\]'"):
        tune(features_clf(), X, y, n_trials=1)


def test_tune_features_refits_best_on_all_data(blobs):
    X, y, groups = blobs
    study, best = tune(
        features_clf(), X, y, groups=groups, cv=2, n_trials=3, random_state=0
    )
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 3
    for trial in complete:
        assert len(trial.user_attrs["cv_scores"]) == 2
        assert trial.value == pytest.approx(np.mean(trial.user_attrs["cv_scores"]))
    assert best.final_estimator_.C == pytest.approx(
        study.best_params["final_estimator__C"]
    )
    assert best.features_.n_features_out_ == 8
    proba = best.predict_proba(X)[:, list(best.classes_).index("PNEUMONIA")]
    assert roc_auc_score(y == "PNEUMONIA", proba) > 0.9


def test_int_cv_with_groups_splits_by_patient(blobs):
    X, y, groups = blobs
    clf = features_clf()
    assert isinstance(_check_cv(3, X, y, groups, clf), StratifiedGroupKFold)
    assert isinstance(_check_cv(3, X, y, None, clf), StratifiedKFold)
    fitted_groups = []

    class Recording(PretrainedCNNClassifier):
        def fit(self, X, y, groups=None, sample_weight=None):
            fitted_groups.append(np.asarray(groups))
            return super().fit(X, y, groups=groups)

    rec = Recording(**clf.get_params())
    tune(rec, X, y, groups=groups, cv=2, n_trials=1, refit=False)
    assert len(fitted_groups) == 2
    for train_groups in fitted_groups:
        held_out = set(groups) - set(train_groups)
        assert held_out, "each fold holds out whole patients"
        assert len(train_groups) == np.isin(groups, train_groups).sum()


def test_finetune_reports_each_epoch_of_each_fold(tmp_path, blobs):
    X, y, groups = blobs
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study, best = tune(
        finetune_clf(), X, y, groups=groups, cv=2, n_trials=1,
        search_space=lr_space, storage=storage, study_name="ft",
        pruner=optuna.pruners.NopPruner(), random_state=0,
    )
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    # fold k reports steps k * max_epochs + epoch
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3]
    assert all(0 <= v <= 1 for v in trial.intermediate_values.values())
    assert best.lr == pytest.approx(trial.params["lr"])
    assert "optuna_pruning" not in dict(best.net_.callbacks_)

    # A second call on the same storage runs its own n_trials; this pruner
    # stops the trial at its first report.
    study, best = tune(
        finetune_clf(), X, y, groups=groups, cv=2, n_trials=1,
        search_space=lr_space, storage=storage, study_name="ft",
        pruner=AlwaysPrune(), random_state=1,
    )
    assert [t.state for t in study.trials] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    ]
    assert list(study.trials[1].intermediate_values) == [0]
    assert best is not None  # refitted from the completed trial


def test_features_mode_reports_after_each_fold_and_prunes(blobs):
    X, y, groups = blobs
    study, best = tune(
        features_clf(), X, y, groups=groups, cv=2, n_trials=1,
        pruner=AlwaysPrune(), refit=False,
    )
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]
    assert trial.intermediate_values[0] == pytest.approx(
        trial.user_attrs["cv_scores"][0]
    )
    assert best is None


def test_all_trials_pruned_refit_error(blobs):
    X, y, groups = blobs
    with pytest.raises(RuntimeError, match="No trial .* completed.*PRUNED"):
        tune(
            finetune_clf(max_epochs=1), X, y, groups=groups, cv=2, n_trials=1,
            search_space=lr_space, pruner=AlwaysPrune(),
        )


def test_pruning_callback_survives_clone_with_same_trial():
    from sklearn.base import clone

    trial = optuna.create_study().ask()
    callback = OptunaPruningCallback(trial, monitor="valid_auc", step_offset=4)
    copy = clone(callback)
    assert copy is not callback
    assert copy.trial is trial and copy.step_offset == 4


def test_default_search_spaces():
    fixed = optuna.trial.FixedTrial(
        {"lr": 1e-3, "freeze_epochs": 1, "batch_size": 16, "dropout": 0.2,
         "hidden_units": "none", "final_estimator__C": 0.5}
    )
    assert default_search_space(features_clf()) is features_space
    assert default_search_space(features_clf())(fixed) == {"final_estimator__C": 0.5}
    params = default_search_space(finetune_clf())(fixed)
    assert params == {"lr": 1e-3, "freeze_epochs": 1, "batch_size": 16,
                      "dropout": 0.2, "hidden_units": ()}
    # freeze_epochs stays below max_epochs
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = default_search_space(finetune_clf(max_epochs=2))
    for _ in range(10):
        assert space(study.ask())["freeze_epochs"] <= 1
    assert finetune_space(optuna.trial.FixedTrial(
        {"lr": 1e-3, "freeze_epochs": 0, "batch_size": 16, "dropout": 0.0,
         "hidden_units": "512-128"}), hidden_units=((512, 128),)
    )["hidden_units"] == (512, 128)


def test_bad_search_space_and_estimator_errors(blobs):
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    X, y, _ = blobs
    with pytest.raises(TypeError, match="returned a list"):
        tune(features_clf(), X, y, cv=2, n_trials=1, search_space=lambda t: [1])
    with pytest.raises(ValueError, match="DecisionTreeClassifier has no parameter C"):
        default_search_space(
            features_clf().set_params(final_estimator=DecisionTreeClassifier())
        )
    with pytest.raises(TypeError, match="pass search_space"):
        default_search_space(LinearSVC())


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_optuna_search_cv_with_the_classifier(blobs):
    integration = pytest.importorskip(
        "optuna_integration", reason="optuna-integration is missing"
    )
    X, y, groups = blobs
    search = integration.OptunaSearchCV(
        features_clf(),
        {"final_estimator__C": optuna.distributions.FloatDistribution(
            1e-2, 1e2, log=True)},
        cv=StratifiedGroupKFold(2),
        n_trials=2,
        scoring="roc_auc",
        random_state=0,
    )
    search.fit(X, y, groups=groups)
    assert len(search.trials_) == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in search.trials_)
    assert search.best_estimator_.final_estimator_.C == pytest.approx(
        search.best_params_["final_estimator__C"]
    )
    assert set(search.predict(X)) <= {"NORMAL", "PNEUMONIA"}
    assert search.best_score_ > 0.8


def test_pruning_callback_reports_with_offset_or_warns_without_monitor(caplog):
    from types import SimpleNamespace

    from skorch.history import History

    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    net = SimpleNamespace(history=History())
    callback = OptunaPruningCallback(trial, step_offset=10).initialize()
    net.history.new_epoch()
    net.history.record("train_loss", 0.7)
    with caplog.at_level("WARNING", logger="sklearn_cxr.tuning._pruning"):
        callback.on_epoch_end(net)
    assert "no 'valid_auc' in the training history" in caplog.text
    net.history.new_epoch()
    net.history.record("valid_auc", 0.8)
    callback.on_epoch_end(net)
    study.tell(trial, 0.8)
    assert study.trials[0].intermediate_values == {11: 0.8}


@pytest.mark.slow
def test_trials_of_killed_workers_are_failed_and_retried(tmp_path, blobs):
    """A worker killed mid-trial leaves a RUNNING trial whose heartbeats stop:
    the next worker marks it FAIL and runs its parameters again."""
    import time

    X, y, _ = blobs
    url = f"sqlite:///{tmp_path / 'study.db'}"
    space = lambda trial: {  # noqa: E731
        "final_estimator__C": trial.suggest_float("final_estimator__C", 0.1, 10)
    }
    killed_storage = optuna.storages.RDBStorage(url, heartbeat_interval=1)
    killed = optuna.create_study(storage=killed_storage, study_name="s",
                                 direction="maximize")
    trial = killed.ask()
    space(trial)
    killed_storage.record_heartbeat(trial._trial_id)  # then the worker dies
    time.sleep(4)  # over the grace period of 2 heartbeats (SQLite: 1 s steps)
    study, _ = tune(features_clf(), X, y, cv=2, n_trials=1, storage=url,
                    study_name="s", search_space=space, refit=False,
                    heartbeat_interval=1)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                    optuna.storages.RetryFailedTrialCallback)
    retried = [t for t in study.trials if retry.retried_trial_number(t) == 0]
    assert len(retried) == 1
    assert retried[0].params == study.trials[0].params
    assert retried[0].state == optuna.trial.TrialState.COMPLETE
    with pytest.raises(ValueError, match="heartbeat_interval must be None or a"):
        tune(features_clf(), X, y, cv=2, n_trials=1, storage=url,
             study_name="s", heartbeat_interval=0)
