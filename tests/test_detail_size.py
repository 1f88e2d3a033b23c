"""``detail_size``: the image is reduced to that side before the network resize.

Frozen features default to 128 px of detail ("auto"); fine-tuning to none.
"""

import os

import joblib
import numpy as np
import pytest
import torch
from _helpers import rewrite_config, tiny_resnet_classifier

from sklearn_cxr import Preprocessing, PretrainedCNNClassifier, PretrainedFeatures
from sklearn_cxr._preprocessing import AUTO_DETAIL_SIZE, resolve_detail_size


def _checkerboard(size=64):
    """1-pixel checkerboard: nothing but the finest detail."""
    board = (np.indices((size, size)).sum(axis=0) % 2) * 255
    return board.astype(np.uint8)


def _images(n=8, size=48, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 255, (n, size, size), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    X[y == "PNEUMONIA", 10:30, 10:25] = 250
    return X, y


def _classifier(mode, **params):
    return tiny_resnet_classifier(mode, **{"image_size": 48, "batch_size": 8, **params})


@pytest.mark.parametrize(
    "detail_size, image_size, mode, expected",
    [
        ("auto", 224, "features", AUTO_DETAIL_SIZE),
        ("auto", 224, "finetune", None),
        ("auto", 128, "features", None),  # not below image_size: no step
        ("auto", 160, "features", None),  # below 224: no step (it hurt there)
        ("auto", 288, "features", AUTO_DETAIL_SIZE),
        (64, 224, "finetune", 64),
        (224, 224, "features", None),
        (None, 224, "features", None),
    ],
)
def test_resolve_detail_size(detail_size, image_size, mode, expected):
    assert resolve_detail_size(detail_size, image_size, mode) == expected


def test_detail_size_removes_fine_detail_only():
    board = torch.from_numpy(_checkerboard())[None]
    common = dict(
        image_size=64,
        in_chans=1,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bilinear",
        equalize=False,
    )
    sharp = Preprocessing(**common).transform()(board)
    smooth = Preprocessing(**common, detail_size=16).transform()(board)
    assert sharp.shape == smooth.shape == (1, 64, 64)
    # the checkerboard survives without the step and averages to grey with it
    assert sharp.std() > 0.9
    assert smooth.std() < 0.05
    # coarse structure survives: a bright half stays bright
    half = torch.zeros(1, 64, 64, dtype=torch.uint8)
    half[:, :, 32:] = 255
    out = Preprocessing(**common, detail_size=16).transform()(half)
    assert out[0, :, :24].max() < -0.9 and out[0, :, 40:].min() > 0.9


def test_features_default_is_auto_and_changes_embeddings():
    X, _ = _images(size=224)
    params = dict(backbone="resnet18", weights=None, image_size=224, random_state=0)
    auto = PretrainedFeatures(**params).fit()
    assert auto.detail_size == "auto"
    assert auto.preprocessing_.detail_size == AUTO_DETAIL_SIZE
    off = PretrainedFeatures(**params, detail_size=None).fit()
    assert off.preprocessing_.detail_size is None
    assert not np.allclose(auto.transform(X), off.transform(X))
    # an explicit size equal to the default gives the same embeddings
    explicit = PretrainedFeatures(**params, detail_size=AUTO_DETAIL_SIZE).fit()
    np.testing.assert_allclose(explicit.transform(X), auto.transform(X), atol=1e-6)


def test_embedding_cache_keeps_detail_sizes_apart(tmp_path):
    X, _ = _images(size=64)
    params = dict(
        backbone="resnet18",
        weights=None,
        image_size=64,
        random_state=0,
        memory=str(tmp_path),
    )
    fine = PretrainedFeatures(**params, detail_size=None).fit().transform(X)
    coarse = PretrainedFeatures(**params, detail_size=16).fit().transform(X)
    assert not np.allclose(fine, coarse)
    # and the cache gives each its own embeddings back
    again = PretrainedFeatures(**params, detail_size=16).fit().transform(X)
    np.testing.assert_allclose(again, coarse, atol=1e-6)


@pytest.mark.parametrize("bad", [4, 1.5, "big", True, [64]])
@pytest.mark.parametrize("estimator", ["features", "finetune", "transformer"])
def test_bad_detail_size_is_refused_by_name(bad, estimator):
    X, y = _images()
    if estimator == "transformer":
        model = PretrainedFeatures(backbone="resnet18", weights=None, detail_size=bad)
        fit = model.fit
        args = (X,)
    else:
        model = _classifier(estimator, detail_size=bad)
        fit = model.fit
        args = (X, y)
    with pytest.raises(ValueError, match="detail_size"):
        fit(*args)
    assert not hasattr(model, "preprocessing_")


@pytest.mark.parametrize("mode", ["features", "finetune"])
def test_save_load_and_pickle_keep_the_detail_size(mode, tmp_path):
    X, y = _images()
    clf = _classifier(mode, detail_size=24).fit(X, y)
    assert clf.preprocessing_.detail_size == 24
    expected = clf.predict_proba(X)
    loaded = PretrainedCNNClassifier.load(clf.save(tmp_path / "m.cxr"))
    assert loaded.detail_size == 24 and loaded.preprocessing_.detail_size == 24
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    joblib.dump(clf, tmp_path / "m.joblib")
    unpickled = joblib.load(tmp_path / "m.joblib")
    assert unpickled.preprocessing_.detail_size == 24
    np.testing.assert_allclose(unpickled.predict_proba(X), expected, atol=1e-6)


def test_file_without_detail_size_loads_as_none(tmp_path):
    # a file written before detail_size existed had no such step
    X, y = _images()
    clf = _classifier("finetune", detail_size=None).fit(X, y)
    source = clf.save(tmp_path / "new.cxr")

    def drop_detail_size(config):
        del config["params"]["detail_size"]
        del config["fitted"]["detail_size_"]

    old = rewrite_config(source, tmp_path / "old.cxr", drop_detail_size)
    loaded = PretrainedCNNClassifier.load(old)
    assert loaded.detail_size is None and loaded.preprocessing_.detail_size is None
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_file_with_a_bad_detail_size_is_refused(tmp_path):
    from sklearn_cxr import ModelFileError

    X, y = _images()
    source = _classifier("finetune", detail_size=24).fit(X, y).save(tmp_path / "a.cxr")
    bad = rewrite_config(
        source,
        tmp_path / "bad.cxr",
        lambda config: config["fitted"].update(detail_size_=-3),
    )
    with pytest.raises(ModelFileError, match="detail_size_"):
        PretrainedCNNClassifier.load(bad)


def test_release1_files_have_no_detail_step():
    data = os.path.join(os.path.dirname(__file__), "data", "release1")
    for name in ("finetune.cxr", "features.cxr"):
        model = PretrainedCNNClassifier.load(os.path.join(data, name))
        assert model.detail_size is None
        assert model.preprocessing_.detail_size is None


@pytest.mark.parametrize("mode", ["features", "finetune"])
def test_export_applies_the_detail_step(mode, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from sklearn_cxr.export import prepare, to_onnx

    X, y = _images()
    clf = _classifier(mode, detail_size=16).fit(X, y)
    pixels = prepare(X, clf)
    full = clf.preprocessing_.pixel_transform()
    first = full(torch.from_numpy(X[0][None]))[0]
    assert torch.equal(torch.from_numpy(pixels[0]), first)
    session = ort.InferenceSession(
        str(to_onnx(clf, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"]
    )
    got = session.run(["probabilities"], {"images": pixels})[0]
    assert np.abs(got - clf.predict_proba(X)).max() <= 1e-4
