"""PretrainedCNNClassifier and PretrainedFeatures: behaviour users rely on."""

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures

TINY = dict(backbone="resnet18", weights=None, image_size=32, batch_size=16)


def finetune(**kw):
    params = dict(TINY, max_epochs=2, random_state=0)
    params.update(kw)
    return PretrainedCNNClassifier(**params)


def features(**kw):
    params = dict(TINY, mode="features", random_state=0)
    params.update(kw)
    return PretrainedCNNClassifier(**params)


def test_init_only_stores_parameters():
    clf = PretrainedCNNClassifier(backbone="not-a-model", lr=-1)
    assert clf.get_params()["backbone"] == "not-a-model"
    assert clf.get_params()["lr"] == -1
    assert not [k for k in vars(clf) if k.endswith("_")]


def test_default_parameters_match_the_spec():
    params = PretrainedCNNClassifier().get_params()
    expected = dict(
        backbone="resnet18", weights="DEFAULT", mode="finetune", image_size=224,
        hidden_units=(), dropout=0.0, max_epochs=10, batch_size=32, lr=1e-3,
        freeze_epochs=1, class_weight="balanced", augment="acquisition",
        augment_copies=0,
        final_estimator=None,
        device="auto", num_workers=0, random_state=None, verbose=0,
    )
    for key, value in expected.items():
        assert params[key] == value, key


@pytest.mark.parametrize("make", [finetune, features], ids=["finetune", "features"])
def test_labels_in_labels_out(make, blobs):
    X, y, groups = blobs
    clf = make().fit(X, y, groups=groups)
    assert list(clf.classes_) == ["NORMAL", "PNEUMONIA"]
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= {"NORMAL", "PNEUMONIA"}
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert clf.device_ == "cpu"


@pytest.mark.parametrize("make", [finetune, features], ids=["finetune", "features"])
def test_learns_an_easy_problem(make, make_blobs):
    X, y, groups = make_blobs(n=60, size=32, seed=1)
    train, test = next(StratifiedGroupKFold(3).split(X, y, groups))
    clf = make(max_epochs=4) if make is finetune else make()
    clf.fit(X[train], y[train])
    assert clf.score(X[test], y[test]) >= 0.8


def test_three_classes_and_numeric_labels(make_blobs):
    X, _, _ = make_blobs(n=30)
    y = np.array([0.5, 1.5, 2.5] * 10)
    clf = features().fit(X, y)
    assert clf.predict(X).dtype == np.float64
    assert set(clf.predict(X)) <= {0.5, 1.5, 2.5}
    assert clf.predict_proba(X).shape == (30, 3)
    clf = finetune(max_epochs=1).fit(X, y.astype(int) * 2)
    assert set(clf.predict(X)) <= {0, 2, 4}


@pytest.mark.parametrize("make", [finetune, features], ids=["finetune", "features"])
def test_same_seed_same_predictions(make, blobs):
    X, y, _ = blobs
    a = make().fit(X, y).predict_proba(X)
    b = make().fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_different_seed_differs_in_finetune(blobs):
    X, y, _ = blobs
    a = finetune(random_state=0).fit(X, y).predict_proba(X)
    b = finetune(random_state=1).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, b)


def test_input_kinds(tmp_path, blobs):
    X, y, _ = blobs
    clf = features().fit(X, y)
    expected = clf.predict_proba(X)
    paths = []
    for i, image in enumerate(X):
        path = tmp_path / f"img {i}.png"
        Image.fromarray(image).save(path)
        paths.append(path if i % 2 else str(path))
    np.testing.assert_allclose(clf.predict_proba(paths), expected, atol=1e-5)
    pil = [Image.fromarray(image) for image in X]
    np.testing.assert_allclose(clf.predict_proba(pil), expected, atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(X[..., None]), expected, atol=1e-5)
    rgb = np.repeat(X[..., None], 3, axis=-1)
    np.testing.assert_allclose(clf.predict_proba(rgb), expected, atol=1e-5)
    np.testing.assert_allclose(clf.predict_proba(X / 255.0), expected, atol=1e-4)
    # any size is resized; a list may mix sizes
    mixed = [np.zeros((50, 40), np.uint8), np.full((20, 30, 3), 200, np.uint8)]
    assert clf.predict(mixed).shape == (2,)
    # fit from paths too
    assert features().fit(paths, y).predict(paths).shape == (len(X),)


def test_final_estimator_nested_params_with_default():
    clf = features()
    clf.set_params(final_estimator__C=0.01)
    assert clf.final_estimator.C == 0.01
    assert clf.get_params()["final_estimator__C"] == 0.01
    assert clone(clf).final_estimator.C == 0.01


def test_grid_search_over_final_estimator_c(blobs):
    X, y, groups = blobs
    search = GridSearchCV(
        features(), {"final_estimator__C": [0.001, 1.0]}, cv=StratifiedGroupKFold(2)
    )
    search.fit(X, y, groups=groups)
    assert search.best_estimator_.final_estimator_.C in (0.001, 1.0)
    assert len(search.cv_results_["params"]) == 2


def test_custom_final_estimator(blobs):
    X, y, _ = blobs
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    clf = features(final_estimator=forest).fit(X, y)
    assert isinstance(clf.final_estimator_, RandomForestClassifier)
    assert clf.final_estimator_.class_weight == {0: 1.0, 1: 1.0}  # balanced blobs
    assert clf.predict_proba(X).shape == (len(X), 2)


def test_class_weight_balanced_both_modes(blobs):
    X, y, _ = blobs
    X, y = X[:-8], y[:-8]
    y = y.copy()
    y[:12] = "PNEUMONIA"
    clf = features(class_weight="balanced").fit(X, y)
    weights = clf.final_estimator_.class_weight
    assert weights[0] > weights[1]  # NORMAL is the minority
    clf = finetune(class_weight="balanced", max_epochs=1).fit(X, y)
    criterion_weight = clf.net_.criterion_.weight
    assert criterion_weight[0] > criterion_weight[1]
    # None trains on the raw prevalence
    clf = finetune(class_weight=None, max_epochs=1).fit(X, y)
    assert clf.net_.criterion_.weight is None
    assert features(class_weight=None).fit(X, y).final_estimator_.class_weight is None


def test_sample_weight_changes_the_fit(blobs):
    X, y, _ = blobs
    weights = np.where(y == "NORMAL", 1.0, 1e-3)
    plain = features().fit(X, y).predict_proba(X)
    weighted = features().fit(X, y, sample_weight=weights).predict_proba(X)
    assert weighted[:, 0].mean() > plain[:, 0].mean()
    clf = finetune(max_epochs=1, validation_fraction=None)
    assert clf.fit(X, y, sample_weight=weights).predict(X).shape == (len(X),)
    with pytest.raises(ValueError, match="sample_weight"):
        features().fit(X, y, sample_weight=np.ones(3))


def test_head_then_body_schedule(blobs):
    X, y, _ = blobs
    clf = finetune(max_epochs=1, freeze_epochs=1, validation_fraction=None)
    reference = PretrainedCNNClassifier(**dict(TINY, max_epochs=1, random_state=0))
    torch.manual_seed(0)
    clf.fit(X, y)
    # frozen for its only epoch: the stem keeps its initial weights
    from sklearn_cxr._backbones import load_backbone
    from sklearn_cxr._utils import seed_everything

    seed_everything(0)
    initial = load_backbone("resnet18", None).body.conv1.weight
    torch.testing.assert_close(clf.module_.body.conv1.weight, initial)
    moved = reference.set_params(freeze_epochs=0, validation_fraction=None).fit(X, y)
    assert not torch.allclose(moved.module_.body.conv1.weight, initial)
    groups = {g["lr"] for g in moved.net_.optimizer_.param_groups}
    assert len(groups) == 2  # body at a lower learning rate than the head


def test_hidden_units_and_dropout_in_head(blobs):
    X, y, _ = blobs
    clf = finetune(hidden_units=(16,), dropout=0.3, max_epochs=1).fit(X, y)
    layers = [type(m).__name__ for m in clf.module_.head]
    assert layers == ["Linear", "ReLU", "Dropout", "Linear"]
    assert clf.module_.head[-1].out_features == 2


def test_validation_split_by_patient_and_early_stopping(make_blobs):
    X, y, groups = make_blobs(n=60)
    clf = finetune(max_epochs=3, validation_fraction=0.2)
    split = clf._split_validation(np.unique(y, return_inverse=True)[1], groups, 0)
    train, valid = split
    assert not set(groups[train]) & set(groups[valid])
    clf.fit(X, y, groups=groups)
    assert "valid_auc" in clf.history_[-1]
    assert len(clf.history_) <= 3


def test_skorch_callbacks_reachable_the_skorch_way(blobs):
    from skorch.callbacks import EpochScoring

    X, y, _ = blobs
    scoring = EpochScoring("accuracy", on_train=True, name="train_acc")
    clf = finetune(max_epochs=1, callbacks=[("train_acc", scoring)])
    clf.set_params(callbacks__train_acc__lower_is_better=False)
    assert clf.callbacks[0][1].lower_is_better is False
    clf.fit(X, y)
    assert "train_acc" in clf.history_[-1]
    with pytest.raises(ValueError, match="No callback named 'nope'"):
        clf.set_params(callbacks__nope__x=1)


def test_not_fitted_errors(blobs):
    X, _, _ = blobs
    for est in (finetune(), features()):
        with pytest.raises(NotFittedError):
            est.predict(X)
    with pytest.raises(NotFittedError):
        PretrainedFeatures(**{k: v for k, v in TINY.items()}).transform(X)


def test_cuda_request_without_cuda_is_clear(blobs):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    X, y, _ = blobs
    with pytest.raises(ValueError, match="CUDA is not available"):
        finetune(device="cuda").fit(X, y)


def test_mixed_precision_path_runs_on_cpu(blobs):
    X, y, _ = blobs
    clf = finetune(amp=True, max_epochs=1).fit(X, y)
    assert clf.net_.amp is True
    assert np.isfinite(clf.history_[-1]["train_loss"])


@pytest.mark.parametrize("make", [finetune, features], ids=["finetune", "features"])
def test_joblib_round_trip(make, blobs, tmp_path):
    X, y, _ = blobs
    clf = make().fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_features_in_user_pipeline(blobs):
    X, y, groups = blobs
    pipe = make_pipeline(
        PretrainedFeatures(**TINY, random_state=0), StandardScaler(), SVC()
    )
    scores = cross_val_score(pipe, X, y, groups=groups, cv=StratifiedGroupKFold(2))
    assert scores.shape == (2,) and np.all(scores >= 0)
    out = PretrainedFeatures(**TINY, random_state=0).fit(X).transform(X)
    assert out.dtype == np.float32 and out.shape == (len(X), 512)


def test_cross_val_score_with_paths_both_modes(tmp_path, blobs):
    X, y, groups = blobs
    paths = []
    for i, image in enumerate(X):
        path = tmp_path / f"{i}.jpeg"
        Image.fromarray(image).save(path, quality=95)
        paths.append(str(path))
    for est in (features(), finetune(max_epochs=1)):
        scores = cross_val_score(
            est, paths, y, groups=groups, cv=StratifiedGroupKFold(2),
            error_score="raise",
        )
        assert scores.shape == (2,)


def test_bad_parameters_are_named(blobs):
    X, y, _ = blobs
    for params, match in [
        ({"mode": "frozen"}, r"'mode' parameter of \w+ must be a str among"),
        ({"image_size": 3}, r"'image_size' parameter .* range \[8, inf\)"),
        ({"max_epochs": 0}, r"'max_epochs' parameter .* Got 0 instead"),
        ({"hidden_units": (0,)}, r"hidden_units must be a tuple of positive"),
        ({"hidden_units": 64}, r"'hidden_units' parameter .* array-like"),
        ({"validation_fraction": 0.9}, r"'validation_fraction' parameter"),
        ({"class_weight": "auto"}, r"'class_weight' parameter .*'balanced'"),
        ({"dropout": 1.0}, r"'dropout' parameter .* range \[0.0, 1.0\)"),
        ({"random_state": -1}, r"'random_state' parameter .* Got -1 instead"),
        ({"final_estimator": object()}, r"'final_estimator' .* implementing 'fit'"),
        ({"callbacks": [3]}, r"callbacks\[0\] must be a skorch callback"),
    ]:
        with pytest.raises(ValueError, match=match):
            finetune(**params).fit(X, y)


def test_class_weight_reaches_pipeline_and_unweighted_final_estimators(blobs):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    X, y, _ = blobs
    X, y = X[:-8], y.copy()[:-8]
    y[:12] = "PNEUMONIA"
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    clf = features(final_estimator=pipe).fit(X, y)  # default "balanced"
    assert clf.predict(X).shape == (len(X),)
    with pytest.warns(UserWarning, match="cannot be applied"):
        features(final_estimator=KNeighborsClassifier(3)).fit(X, y)
    with pytest.raises(ValueError, match="does not accept sample_weight"):
        features(final_estimator=KNeighborsClassifier(3), class_weight=None).fit(
            X, y, sample_weight=np.ones(len(X))
        )


def test_compile_option_goes_through_torch_compile(blobs, monkeypatch):
    compiled = []

    def fake_compile(module, **kwargs):
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    X, y, _ = blobs
    clf = finetune(compile=True, max_epochs=1).fit(X, y)
    assert "CXRNetwork" in compiled
    assert clf.predict(X).shape == (len(X),)
    compiled.clear()
    finetune(max_epochs=1).fit(X, y)
    assert compiled == []


def test_num_workers_auto(blobs):
    from sklearn_cxr._utils import resolve_num_workers

    assert resolve_num_workers("auto", "cpu") == 0
    assert 1 <= resolve_num_workers("auto", "cuda") <= 4
    assert resolve_num_workers(2, "cuda") == 2
    X, y, _ = blobs
    clf = features(num_workers="auto").fit(X, y)
    assert clf.predict(X).shape == (len(X),)
    with pytest.raises(ValueError, match="'num_workers' parameter of"):
        features(num_workers="many").fit(X, y)
