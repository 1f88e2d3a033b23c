"""Cross-validation, searches, threshold tuning and calibration on both modes.

Small on purpose: 32 px images, random resnet18 weights, one epoch, two or
three folds split by patient.
"""

import numpy as np
import pytest
from _helpers import tiny_resnet_classifier
from PIL import Image
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import make_scorer, recall_score
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedGroupKFold,
    TunedThresholdClassifierCV,
    cross_val_score,
    cross_validate,
)

_clf = tiny_resnet_classifier


def _as_paths(X, folder):
    paths = []
    for i, image in enumerate(X):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return np.asarray(paths)


@pytest.fixture
def data(request, tmp_path, make_blobs):
    X, y, groups = make_blobs(n=24)
    if request.param == "paths":
        X = _as_paths(X, tmp_path)
    return X, y, groups


def _patients_never_split(cv, X, y, groups):
    for train, test in cv.split(X, y, groups):
        assert not set(groups[train]) & set(groups[test])


@pytest.mark.parametrize(
    "mode, data, n_jobs",
    [
        ("features", "arrays", 1),
        ("features", "paths", 2),
        ("finetune", "arrays", 2),
        ("finetune", "paths", 1),
    ],
    indirect=["data"],
)
def test_cross_val_score_by_patient(mode, data, n_jobs):
    X, y, groups = data
    cv = StratifiedGroupKFold(2)
    _patients_never_split(cv, X, y, groups)
    scores = cross_val_score(
        _clf(mode), X, y, groups=groups, cv=cv, n_jobs=n_jobs, scoring="accuracy"
    )
    assert scores.shape == (2,)
    assert np.all((scores >= 0) & (scores <= 1))
    if mode == "features":
        # The bright square is linearly separable in random-conv features.
        assert scores.mean() > 0.7, scores


@pytest.mark.parametrize("data", ["paths"], indirect=True)
def test_cross_validate_returns_fitted_estimators(data):
    X, y, groups = data
    result = cross_validate(
        _clf("features"),
        X,
        y,
        groups=groups,
        cv=StratifiedGroupKFold(2),
        scoring=["roc_auc", "accuracy"],
        return_estimator=True,
        n_jobs=2,
    )
    assert set(result) >= {"test_roc_auc", "test_accuracy", "estimator"}
    for estimator in result["estimator"]:
        assert list(estimator.classes_) == ["NORMAL", "PNEUMONIA"]
        assert estimator.predict(X[:3]).dtype == y.dtype


@pytest.mark.parametrize("data", ["arrays"], indirect=True)
def test_grid_search_over_default_final_estimator(data):
    """``final_estimator__C`` works while ``final_estimator`` is None."""
    X, y, groups = data
    clf = _clf("features")
    assert clf.final_estimator is None
    search = GridSearchCV(
        clf,
        {"final_estimator__C": [1e-4, 10.0]},
        cv=StratifiedGroupKFold(2),
        scoring="neg_log_loss",
        n_jobs=2,
    ).fit(X, y, groups=groups)
    assert clf.final_estimator is None  # the search works on clones
    Cs = search.cv_results_["param_final_estimator__C"]
    assert list(Cs) == [1e-4, 10.0]
    assert search.best_estimator_.final_estimator_.C == search.best_params_[
        "final_estimator__C"
    ]
    # A heavy penalty shrinks the probabilities towards 0.5: worse log-loss.
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] != scores[1]


@pytest.mark.parametrize("data", ["paths"], indirect=True)
def test_randomized_search_finetune(data):
    X, y, groups = data
    search = RandomizedSearchCV(
        _clf("finetune"),
        {"lr": [1e-3, 3e-3, 1e-2], "dropout": [0.0, 0.2]},
        n_iter=2,
        cv=StratifiedGroupKFold(2),
        random_state=0,
        n_jobs=1,
    ).fit(X, y, groups=groups)
    assert len(search.cv_results_["params"]) == 2
    assert search.best_estimator_.mode_fitted_ == "finetune"
    assert set(search.predict(X)) <= {"NORMAL", "PNEUMONIA"}


def _specificity_at_sensitivity(y_true, y_pred, target=0.95):
    """Specificity when sensitivity reaches ``target``, else a negative score."""
    sensitivity = recall_score(y_true, y_pred, pos_label="PNEUMONIA")
    specificity = recall_score(y_true, y_pred, pos_label="NORMAL")
    return specificity if sensitivity >= target else sensitivity - 1.0


def test_tuned_threshold_reaches_target_sensitivity(make_blobs):
    X, y, groups = make_blobs(n=24)
    tuned = TunedThresholdClassifierCV(
        _clf("features"),
        scoring=make_scorer(_specificity_at_sensitivity),
        cv=2,
        store_cv_results=True,
        random_state=0,
    ).fit(X, y)
    # The threshold was chosen where the folds' sensitivity is >= 0.95.
    assert tuned.best_score_ >= 0.0
    assert 0.0 < tuned.best_threshold_ < 1.0
    proba = tuned.estimator_.predict_proba(X)[:, 1]
    expected = np.where(proba >= tuned.best_threshold_, "PNEUMONIA", "NORMAL")
    np.testing.assert_array_equal(tuned.predict(X), expected)


def test_tuned_threshold_balanced_accuracy_finetune(make_blobs):
    X, y, _ = make_blobs(n=24)
    # One held-out split and no refit: a single fine-tuning.
    tuned = TunedThresholdClassifierCV(
        _clf("finetune"),
        scoring="balanced_accuracy",
        cv=0.5,
        refit=False,
        random_state=0,
    ).fit(X, y)
    assert tuned.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    assert np.isfinite(tuned.best_threshold_)
    assert set(tuned.predict(X)) <= {"NORMAL", "PNEUMONIA"}


def test_calibrated_classifier(make_blobs):
    X, y, _ = make_blobs(n=24)
    calibrated = CalibratedClassifierCV(_clf("features"), method="sigmoid", cv=2).fit(
        X, y
    )
    proba = calibrated.predict_proba(X)
    assert proba.shape == (24, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert calibrated.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    assert len(calibrated.calibrated_classifiers_) == 2
    # Calibrated probabilities still rank the bright squares first.
    assert np.mean(calibrated.predict(X) == y) > 0.7


@pytest.mark.parametrize("data", ["arrays"], indirect=True)
def test_soft_voting_ensemble_of_seeds_and_sizes(data):
    # The documented way to ensemble seeds or backbones (user guide).
    from sklearn.base import clone
    from sklearn.ensemble import VotingClassifier

    X, y, _ = data
    members = [
        ("seed0", _clf("features")),
        ("seed1_40px", _clf("features", random_state=1, image_size=40)),
    ]
    ensemble = VotingClassifier(members, voting="soft").fit(X, y)
    assert ensemble.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    proba = ensemble.predict_proba(X)
    # Each member alone, fitted on the labels VotingClassifier hands it.
    alone = [clone(m).fit(X, y).predict_proba(X) for _, m in members]
    np.testing.assert_allclose(proba, np.mean(alone, axis=0), atol=1e-6)
    assert set(ensemble.predict(X)) <= {"NORMAL", "PNEUMONIA"}
    assert np.mean(ensemble.predict(X) == y) > 0.7
