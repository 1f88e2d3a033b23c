"""Safe save / load (JSON + safetensors + skops) and the joblib round trip."""

import functools
import json
import pickle
import zipfile

import joblib
import numpy as np
import pytest
import torch
from _helpers import TinyNet, make_blobs, tiny_resnet_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from sklearn_cxr import ModelFileError, PretrainedCNNClassifier, PretrainedFeatures

_tiny_clf = tiny_resnet_classifier


def _labels(y, kind):
    return y if kind == "str" else np.where(y == "PNEUMONIA", 7, 3).astype(np.int64)


@functools.cache
def _fitted(mode, label_kind="str"):
    """One small fitted model per (mode, label type), shared by the tests."""
    X, y, _ = make_blobs(n=16)
    y = _labels(y, label_kind)
    hidden = (8,) if mode == "finetune" else ()
    return _tiny_clf(mode, hidden_units=hidden).fit(X, y), X


@pytest.mark.parametrize("mode", ["features", "finetune"])
@pytest.mark.parametrize("label_kind", ["str", "int"])
def test_save_load_gives_identical_predictions(tmp_path, mode, label_kind):
    clf, X = _fitted(mode, label_kind)
    path = clf.save(tmp_path / "model.cxr")
    loaded = PretrainedCNNClassifier.load(path)

    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.mode_fitted_ == mode
    assert loaded.get_params()["hidden_units"] == clf.get_params()["hidden_units"]
    assert loaded.device_ == "cpu"
    if mode == "finetune":
        assert len(loaded.history_) == len(clf.history_) == 1
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        config = json.loads(archive.read("config.json"))
    assert "model.safetensors" in names
    assert ("final_estimator.skops" in names) == (mode == "features")
    assert config["params"]["weights"] is None
    assert config["fitted"]["classes_"]["dtype"] == clf.classes_.dtype.str


def test_save_load_features_transformer(tmp_path, blobs):
    X, _, _ = blobs
    feats = PretrainedFeatures(
        backbone="resnet18", weights=None, image_size=32, random_state=0, in_chans=1
    ).fit()
    loaded = PretrainedFeatures.load(feats.save(tmp_path / "f.cxr"))
    np.testing.assert_array_equal(loaded.transform(X[:6]), feats.transform(X[:6]))
    assert loaded.n_features_out_ == 512
    assert loaded.in_chans == 1
    with pytest.raises(ModelFileError, match="holds a PretrainedFeatures"):
        PretrainedCNNClassifier.load(tmp_path / "f.cxr")


def test_save_load_timm_backbone(tmp_path):
    pytest.importorskip("timm")
    X, y, _ = make_blobs(n=8)
    clf = _tiny_clf("features", backbone="timm:mobilenetv3_small_050").fit(X, y)
    loaded = PretrainedCNNClassifier.load(clf.save(tmp_path / "timm.cxr"))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_save_weights_file_loads_without_it(tmp_path):
    """A model fitted from a weights file loads after the file is gone."""
    X, y, _ = make_blobs(n=8)
    import torchvision

    weights = tmp_path / "w.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    clf = _tiny_clf("features", weights=str(weights)).fit(X, y)
    path = clf.save(tmp_path / "m.cxr")
    weights.unlink()
    loaded = PretrainedCNNClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_cuda_fitted_model_loads_on_cpu(tmp_path, caplog):
    if torch.cuda.is_available():
        pytest.skip("simulates a CUDA-fitted file on a machine without CUDA")
    clf, X = _fitted("finetune")
    path = tmp_path / "m.cxr"
    clf.save(path)
    # Rewrite the file as one saved from a CUDA fit (tensors are CPU anyway).
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    config["fitted"]["device_"] = "cuda:0"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    loaded = PretrainedCNNClassifier.load(path)
    assert loaded.device_ == "cpu"
    assert "without CUDA" in caplog.text
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_pickle_renamed_is_refused(tmp_path):
    clf, _ = _fitted("features")
    path = tmp_path / "model.cxr"
    joblib.dump(clf, path)
    with pytest.raises(ModelFileError, match="pickle"):
        PretrainedCNNClassifier.load(path)
    raw = tmp_path / "raw.cxr"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="not a sklearn_cxr model file"):
        PretrainedCNNClassifier.load(raw)


def test_zip_with_pickle_member_is_refused(tmp_path):
    path = _fitted("features")[0].save(tmp_path / "m.cxr")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("payload.pkl", pickle.dumps([1, 2]))
    with pytest.raises(ModelFileError, match="unexpected members.*payload.pkl"):
        PretrainedCNNClassifier.load(path)


def double(x):
    return 2 * x


def test_untrusted_skops_type_is_refused_unless_trusted(tmp_path):
    X, y, _ = make_blobs(n=8)
    final = make_pipeline(FunctionTransformer(double), LogisticRegression())
    clf = _tiny_clf("features", final_estimator=final).fit(X, y)
    with pytest.warns(UserWarning, match="refuses by default"):
        path = clf.save(tmp_path / "m.cxr")
    with pytest.raises(ModelFileError, match=r"not trusted: \['.*double'\]"):
        PretrainedCNNClassifier.load(path)
    name = f"{double.__module__}.double"
    loaded = PretrainedCNNClassifier.load(path, trusted=[name])
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_os_system_in_skops_member_is_refused(tmp_path):
    """A crafted member whose loading would call os.system is refused."""
    import os

    import skops.io as sio

    path = _fitted("features")[0].save(tmp_path / "m.cxr")
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["final_estimator.skops"] = sio.dumps(FunctionTransformer(os.system))
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="system"):
        PretrainedCNNClassifier.load(path)


def test_module_backbone_cannot_be_saved_safely(tmp_path):
    X, y, _ = make_blobs(n=8)
    clf = _tiny_clf("features", backbone=TinyNet()).fit(X, y)
    with pytest.raises(TypeError, match="backbone is an nn.Module"):
        clf.save(tmp_path / "m.cxr")
    assert not (tmp_path / "m.cxr").exists()


def test_callbacks_and_memory_are_not_stored(tmp_path):
    from skorch.callbacks import EpochTimer

    X, y, _ = make_blobs(n=8)
    clf = _tiny_clf(
        "features", callbacks=[("timer", EpochTimer())], memory=tmp_path / "cache"
    ).fit(X, y)
    with pytest.warns(UserWarning, match="callbacks=None"):
        path = clf.save(tmp_path / "m.cxr")
    loaded = PretrainedCNNClassifier.load(path)
    assert loaded.callbacks is None
    assert loaded.memory is None and loaded.features_.memory is None
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_unfitted_model_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _tiny_clf("features").save(tmp_path / "m.cxr")


@pytest.mark.parametrize("mode", ["features", "finetune"])
def test_joblib_round_trip_keeps_weights_not_data(tmp_path, mode):
    rng = np.random.RandomState(1)
    X = rng.randint(0, 256, (48, 64, 64), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * 24)
    clf = _tiny_clf(
        mode, backbone=TinyNet(), image_size=64, validation_fraction=0.25
    ).fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))

    data = path.read_bytes()
    assert len(data) < X.nbytes / 4, (len(data), X.nbytes)
    # The fitted weights are in the file...
    module = clf.features_.backbone_ if mode == "features" else clf.module_
    conv = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.detach().numpy().tobytes()[:64] in data
    # ...and no training image, nor any row of one.
    for image in X:
        assert image[5].tobytes() not in data
