"""The public preprocessing value and the ONNX / TorchScript export."""

import json
import time
import warnings

import numpy as np
import pytest
import torch
from _helpers import TinyNet
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from sklearn_cxr import Preprocessing, PretrainedCNNClassifier, PretrainedFeatures
from sklearn_cxr.export import prepare, to_onnx, to_torchscript

TOL = 1e-4


_FITTED = {}


def _fitted(mode, n=12, **params):
    """A tiny model fitted on _images(n), shared by the tests of this module."""
    key = (mode, n, tuple(sorted(params.items())))
    if key not in _FITTED:
        _FITTED[key] = _tiny(mode, **params).fit(*_images(n))
    return _FITTED[key]


def _tiny(mode, **params):
    defaults = dict(
        backbone=TinyNet(),
        weights=None,
        image_size=32,
        max_epochs=1,
        batch_size=8,
        random_state=0,
        mode=mode,
    )
    defaults.update(params)
    return PretrainedCNNClassifier(**defaults)


def _images(n=12, seed=0):
    rng = np.random.RandomState(seed)
    # sizes differ from image_size, so the resize is exercised
    X = rng.randint(0, 255, (n, 45, 37), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    X[y == "PNEUMONIA", 10:30, 10:25] = 250
    return X, y


def _onnx_proba(path, pixels):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"images": pixels})[0]


def _torchscript_proba(path, pixels):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", FutureWarning)
        return torch.jit.load(str(path))(torch.from_numpy(pixels)).numpy()


# ---------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("mode", ["features", "finetune"])
@pytest.mark.parametrize("in_chans, equalize", [(3, False), (1, True)])
def test_preprocessing_reproduces_eval_transform(mode, in_chans, equalize):
    X, y = _images()
    clf = _fitted(mode, in_chans=in_chans, equalize=equalize)
    pre = clf.preprocessing_
    assert isinstance(pre, Preprocessing)
    assert (pre.image_size, pre.in_chans, pre.equalize) == (32, in_chans, equalize)
    assert pre.interpolation == "bilinear"
    assert len(pre.channel_mean) == in_chans
    inner = clf.features_ if mode == "features" else clf
    rgb = np.stack([X[0], X[1], X[2]], axis=-1)  # a colour image too
    for image in (torch.from_numpy(X[0][None]), torch.from_numpy(rgb).permute(2, 0, 1)):
        assert torch.equal(pre.transform()(image), inner._eval_transform()(image))
    json.dumps(pre.to_dict())  # plain types
    with pytest.raises(AttributeError):
        pre.image_size = 64  # frozen


def test_preprocessing_of_features_and_unfitted():
    X, _ = _images(4)
    with pytest.raises(AttributeError):
        PretrainedFeatures().preprocessing_  # noqa: B018 - not fitted
    feats = PretrainedFeatures(backbone="resnet18", weights=None, image_size=32)
    pre = feats.fit(X).preprocessing_
    assert pre.mean == tuple(feats.mean_) and pre.std == tuple(feats.std_)
    assert torch.equal(
        pre.transform()(torch.from_numpy(X[0][None])),
        feats._eval_transform()(torch.from_numpy(X[0][None])),
    )


@pytest.mark.parametrize("in_chans", [1, 3])
def test_prepare_is_the_models_pixel_pipeline(in_chans):
    X, y = _images()
    clf = _fitted("features", in_chans=in_chans, equalize=True)
    pixels = prepare(X, clf)
    assert pixels.shape == (len(X), 32, 32) and pixels.dtype == np.uint8
    full = clf.preprocessing_.pixel_transform()
    for i in range(len(X)):
        expected = full(torch.from_numpy(X[i][None]))
        assert torch.equal(torch.from_numpy(pixels[i]), expected[0])
    # an RGB copy of a gray image: the same as the model's own pixels (which
    # differ from the gray ones when in_chans=1: rgb_to_grayscale truncates)
    rgb = np.repeat(X[..., None], 3, axis=-1)
    by_model = full(torch.from_numpy(rgb[0]).permute(2, 0, 1))[0]
    assert torch.equal(torch.from_numpy(prepare(rgb[:1], clf)[0]), by_model)
    if in_chans == 3:
        assert np.array_equal(prepare(rgb, clf), pixels)
    # float images in [0, 1] are rounded to uint8
    assert np.array_equal(prepare(X / 255.0, clf), pixels)


def test_prepare_warns_on_colour(caplog):
    X, y = _images()
    clf = _fitted("features")
    colour = np.stack([X[0], X[1], X[2]], axis=-1)[None]
    with caplog.at_level("WARNING", logger="sklearn_cxr.export"):
        pixels = prepare(colour, clf)
    assert pixels.shape == (1, 32, 32)
    assert "colour" in caplog.text


def test_prepare_rejects_bad_input(tmp_path):
    X, y = _images()
    clf = _fitted("features")
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"plain text")
    with pytest.raises(ValueError, match="not_an_image.png"):
        prepare([str(bad)], clf)


# ---------------------------------------------------------------- export
@pytest.mark.parametrize(
    "mode, params",
    [
        ("finetune", {}),
        ("features", {}),
        ("features", {"in_chans": 1, "equalize": True}),
        ("finetune", {"in_chans": 1}),
        ("features", {"standardize": False}),
    ],
)
def test_export_matches_predict_proba(tmp_path, mode, params):
    pytest.importorskip("onnx")
    X, y = _images()
    clf = _fitted(mode, **params)
    expected = clf.predict_proba(X)
    pixels = prepare(X, clf)
    onnx_path = to_onnx(clf, tmp_path / "m.onnx")
    ts_path = to_torchscript(clf, tmp_path / "m.pt")
    for got in (_onnx_proba(onnx_path, pixels), _torchscript_proba(ts_path, pixels)):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= TOL
    # other batch sizes than the traced one
    assert np.abs(_onnx_proba(onnx_path, pixels[:1]) - expected[:1]).max() <= TOL
    assert np.abs(_torchscript_proba(ts_path, pixels[:5]) - expected[:5]).max() <= TOL


def test_export_multiclass_and_label_order(tmp_path):
    onnx = pytest.importorskip("onnx")
    X, _ = _images(18)
    # labels whose sorted order differs from their first appearance
    y = np.array(["viral", "normal", "bacterial"] * 6)
    X[y == "viral", :8] = 0
    X[y == "bacterial", -8:] = 255
    clf = _tiny("features").fit(X, y)
    path = to_onnx(clf, tmp_path / "m.onnx")
    proba = _onnx_proba(path, prepare(X, clf))
    assert np.abs(proba - clf.predict_proba(X)).max() <= TOL
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(props["classes"]) == clf.classes_.tolist()
    assert json.loads(props["preprocessing"])["image_size"] == 32
    onnx.checker.check_model(onnx.load(path), full_check=True)
    extra = {"classes.json": ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", FutureWarning)
        torch.jit.load(to_torchscript(clf, tmp_path / "m.pt"), _extra_files=extra)
    assert json.loads(extra["classes.json"]) == clf.classes_.tolist()


def test_export_refuses_other_final_estimators(tmp_path):
    X, y = _images()
    clf = _tiny("features", final_estimator=DecisionTreeClassifier()).fit(X, y)
    with pytest.raises(ValueError, match="DecisionTreeClassifier.*LogisticRegression"):
        to_torchscript(clf, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_export_refuses_wrong_objects(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_torchscript(_tiny("features"), tmp_path / "m.pt")
    with pytest.raises(TypeError, match="PretrainedCNNClassifier.*LogisticRegression"):
        to_torchscript(LogisticRegression(), tmp_path / "m.pt")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["features", "finetune"])
def test_export_resnet18_matches_predict_proba(tmp_path, mode):
    """A real architecture (batch norm, residual blocks, max pooling)."""
    pytest.importorskip("onnx")
    X, y = _images()
    clf = _fitted(mode, backbone="resnet18")
    expected = clf.predict_proba(X)
    pixels = prepare(X, clf)
    got = _onnx_proba(to_onnx(clf, tmp_path / "m.onnx"), pixels)
    assert np.abs(got - expected).max() <= TOL
    got = _torchscript_proba(to_torchscript(clf, tmp_path / "m.pt"), pixels)
    assert np.abs(got - expected).max() <= TOL


def test_export_leaves_the_model_alone(tmp_path):
    X, y = _images()
    clf = _fitted("finetune")
    before = clf.predict_proba(X)
    to_torchscript(clf, tmp_path / "m.pt")
    assert clf.module_.training is False
    assert np.array_equal(clf.predict_proba(X), before)


# ------------------------------------------------- real images, ImageNet weights
@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["features", "finetune"])
def test_export_real_images_lite0(tmp_path, shared_data_dir, imagenet_weights, mode):
    """Real radiographs, EfficientNet-Lite0: exported == predict_proba; timed."""
    pytest.importorskip("onnxruntime")
    paths = sorted((shared_data_dir / "train" / "NORMAL").glob("*.jpeg"))[:12]
    paths += sorted((shared_data_dir / "train" / "PNEUMONIA").glob("*.jpeg"))[:12]
    paths = [str(p) for p in paths]
    y = np.array(["NORMAL"] * 12 + ["PNEUMONIA"] * 12)
    size = 224 if mode == "features" else 128
    clf = PretrainedCNNClassifier(
        backbone="timm:tf_efficientnet_lite0",
        weights=str(imagenet_weights),
        image_size=size,
        mode=mode,
        max_epochs=1,
        batch_size=12,
        random_state=0,
    ).fit(paths, y)
    timings = {}
    start = time.perf_counter()
    expected = clf.predict_proba(paths)
    timings["predict_proba"] = time.perf_counter() - start
    start = time.perf_counter()
    pixels = prepare(paths, clf)
    timings["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    onnx_path = to_onnx(clf, tmp_path / "m.onnx")
    timings["to_onnx"] = time.perf_counter() - start
    start = time.perf_counter()
    ts_path = to_torchscript(clf, tmp_path / "m.pt")
    timings["to_torchscript"] = time.perf_counter() - start
    _onnx_proba(onnx_path, pixels[:2])  # session creation and warm-up
    start = time.perf_counter()
    by_onnx = _onnx_proba(onnx_path, pixels)
    timings["onnxruntime"] = time.perf_counter() - start
    start = time.perf_counter()
    by_torchscript = _torchscript_proba(ts_path, pixels)
    timings["torchscript"] = time.perf_counter() - start
    print(
        f"\n{mode} {size}px, {len(paths)} images: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
        + f"; max |diff| onnx {np.abs(by_onnx - expected).max():.2e}, "
        f"torchscript {np.abs(by_torchscript - expected).max():.2e}"
    )
    assert np.abs(by_onnx - expected).max() <= TOL
    assert np.abs(by_torchscript - expected).max() <= TOL
    # the model's answers are not all the same, so the check has teeth
    assert np.ptp(expected[:, 1]) > 1e-3
