"""Bad input: every case gets a clear error that names the bad item.

Each estimator (``PretrainedCNNClassifier`` in both modes and
``PretrainedFeatures``) is fed the same battery of bad inputs; the error must
be a ``ValueError``, ``TypeError``, ``OSError`` (or a package exception
subclassing one) or ``NotFittedError``, and its message must name the bad item.
Accepted oddities (mixed sizes, palette/CMYK/16-bit files, 1x1 images, float
labels) are checked to work.
"""

import os
import re

import numpy as np
import pytest
from _helpers import TinyNet, tiny_params, write_image
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

from sklearn_cxr import (
    ImageReadError,
    PretrainedCNNClassifier,
    PretrainedFeatures,
    read_image,
)
from sklearn_cxr._images import check_images

KINDS = ["finetune", "features", "transformer"]


def make_estimator(kind, **overrides):
    if kind == "transformer":
        return PretrainedFeatures(**tiny_params(**overrides))
    return PretrainedCNNClassifier(mode=kind, max_epochs=1, **tiny_params(**overrides))


def run(estimator, X, y=None):
    """Fit (and for the transformer also transform) on ``X``."""
    if isinstance(estimator, PretrainedFeatures):
        return estimator.fit(X).transform(X)
    if y is None:
        y = np.resize(["NORMAL", "PNEUMONIA"], len(X))
    return estimator.fit(X, y)


@pytest.fixture(scope="module")
def blobs8(make_blobs):
    X, y, _ = make_blobs(n=8)
    return X, y


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """A folder with good files and each kind of bad file."""
    root = tmp_path_factory.mktemp("images")
    paths = {f"good{i}": write_image(root / f"good{i}.png", seed=i) for i in range(4)}
    jpeg = write_image(root / "good.jpg")
    data = open(jpeg, "rb").read()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("this is not an image\n")
    (root / "folder.png").mkdir()
    paths.update(
        truncated=str(root / "truncated.jpg"),
        empty=str(root / "empty.png"),
        text=str(root / "text.png"),
        folder=str(root / "folder.png"),
        missing=str(root / "missing.png"),
        jpeg=jpeg,
    )
    return paths


# --------------------------------------------------------------- X as arrays
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("empty", [np.zeros((0, 32, 32), np.uint8), []], ids=repr)
def test_empty_X(kind, empty):
    with pytest.raises(ValueError, match=r"X is empty: at least one image"):
        run(make_estimator(kind), empty, [])


@pytest.mark.parametrize("kind", ["finetune", "features"])
def test_X_y_length_mismatch(kind, blobs8):
    X, y = blobs8
    with pytest.raises(ValueError, match=r"X has 8 images but y has 7 labels"):
        make_estimator(kind).fit(X, y[:7])


@pytest.mark.parametrize("kind", ["finetune", "features"])
def test_single_class(kind, blobs8):
    X, _ = blobs8
    with pytest.raises(ValueError, match=r"single class \('NORMAL'\).*at least 2"):
        make_estimator(kind).fit(X, ["NORMAL"] * 8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_list", [False, True])
def test_non_finite_pixels(kind, bad, as_list, blobs8):
    X = blobs8[0].astype(np.float32) / 255
    X[3, 5, 7] = bad
    if as_list:
        X = list(X)
    where = r"X\[3\]" if as_list else r"X"
    with pytest.raises(ValueError, match=where + r" contains NaN or infinite"):
        run(make_estimator(kind), X)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape, message",
    [
        ((8, 1024), r"\(8, 1024\) \(2 dimensions\); expected a stack of images"),
        ((8,), r"\(8,\) \(1 dimensions\)"),
        ((2, 4, 32, 32, 3), r"5 dimensions"),
    ],
)
def test_wrong_number_of_dimensions(kind, shape, message):
    with pytest.raises(ValueError, match=message):
        run(make_estimator(kind), np.zeros(shape, np.uint8))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels", [2, 4])
def test_channel_count(kind, channels):
    X = np.zeros((8, 32, 32, channels), np.uint8)
    with pytest.raises(ValueError, match=rf"X has {channels} channels.*only 1 .*or 3"):
        run(make_estimator(kind), X)
    with pytest.raises(ValueError, match=rf"X\[0\] has {channels} channels"):
        run(make_estimator(kind), list(X))


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_sizes_and_kinds_are_resized(kind, image_dir):
    rng = np.random.RandomState(0)
    X = [
        rng.randint(0, 255, (32, 32), np.uint8),
        rng.rand(50, 40, 3).astype(np.float32),
        Image.fromarray(rng.randint(0, 255, (20, 70), np.uint8)),
        Image.open(image_dir["good0"]).convert("P"),
        Image.fromarray(rng.randint(0, 255, (45, 45, 3), np.uint8)).convert("RGBA"),
        rng.randint(0, 255, (33, 31, 1), np.uint8),
    ]
    estimator = make_estimator(kind)
    out = run(estimator, X)
    if kind == "transformer":
        assert out.shape == (6, estimator.n_features_out_)
        assert np.isfinite(out).all()
    else:
        assert set(estimator.predict(X)) <= {"NORMAL", "PNEUMONIA"}


@pytest.mark.parametrize("kind", KINDS)
def test_arrays_mixed_with_paths(kind, image_dir):
    X = [np.zeros((32, 32), np.uint8), image_dir["good0"]]
    with pytest.raises(TypeError, match=r"mixes file paths and in-memory images"):
        run(make_estimator(kind), X)
    with pytest.raises(TypeError, match=r"X\[1\] is a PngImageFile"):
        run(make_estimator(kind), [image_dir["good0"], Image.open(image_dir["good1"])])


@pytest.mark.parametrize("kind", KINDS)
def test_item_of_unknown_type(kind):
    with pytest.raises(TypeError, match=r"X\[1\] is a NoneType; each image must be"):
        run(make_estimator(kind), [np.zeros((32, 32), np.uint8), None])


# ---------------------------------------------------------------- bad files
@pytest.mark.parametrize("kind", KINDS)
def test_missing_path(kind, image_dir):
    X = [image_dir["good0"], image_dir["missing"]]
    with pytest.raises(FileNotFoundError, match=r"X\[1\]: image file not found: .*"):
        run(make_estimator(kind), X)
    with pytest.raises(OSError, match=re.escape(repr(image_dir["missing"]))):
        run(make_estimator(kind), X)


@pytest.mark.parametrize("kind", KINDS)
def test_directory_instead_of_file(kind, image_dir):
    X = [image_dir["good0"], image_dir["folder"]]
    with pytest.raises(ImageReadError, match=r"X\[1\]: expected an image file, got a"):
        run(make_estimator(kind), X)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "bad, message",
    [
        ("empty", r"Image file is empty \(0 bytes\): '.*empty\.png'"),
        ("truncated", r"Cannot decode image file '.*truncated\.jpg'.*truncated"),
        ("text", r"File '.*text\.png' is not a JPEG, PNG, TIFF or BMP image"),
    ],
)
def test_unreadable_file(kind, bad, message, image_dir):
    """0-byte, truncated and non-image files fail while the images are decoded,
    inside the DataLoader, with the reader's message naming the file."""
    X = [image_dir[f"good{i}"] for i in range(3)] + [image_dir[bad]]
    with pytest.raises(ImageReadError, match=message):
        run(make_estimator(kind), X)
    with pytest.raises(ImageReadError, match=message):
        read_image(image_dir[bad])


def test_loader_worker_error_names_the_file(image_dir):
    """With worker processes, torch re-raises the worker's error in the main
    process; it keeps its type and the file name."""
    features = make_estimator("transformer", num_workers=1).fit()
    with pytest.raises(ImageReadError, match=r"truncated\.jpg"):
        features.transform([image_dir["good0"], image_dir["truncated"]])


class _Truncate(Callback):
    """Truncates a file when training begins: after ``fit`` validated ``X``."""

    def __init__(self, path=None):
        self.path = path

    def on_train_begin(self, net, **kwargs):
        data = open(self.path, "rb").read()
        with open(self.path, "wb") as handle:
            handle.write(data[: len(data) // 2])


def test_file_truncated_after_validation_names_the_file(tmp_path):
    paths = [write_image(tmp_path / f"{i}.jpg", seed=i) for i in range(8)]
    clf = make_estimator("finetune", callbacks=[_Truncate(paths[5])])
    y = ["NORMAL", "PNEUMONIA"] * 4
    with pytest.raises(ImageReadError, match=re.escape(repr(paths[5]))):
        clf.fit(paths, y)
    assert not hasattr(clf, "classes_")


@pytest.mark.parametrize(
    "mode, suffix, expected",
    [("P", ".png", "RGB"), ("CMYK", ".jpg", "RGB"), ("I;16", ".png", "L")],
)
def test_palette_cmyk_16bit_files_are_converted(tmp_path, mode, suffix, expected):
    rng = np.random.RandomState(0)
    if mode == "I;16":
        pixels = rng.randint(1000, 4000, (32, 32)).astype(np.uint16)
        path = str(tmp_path / f"img{suffix}")
        Image.fromarray(pixels).save(path)
        assert Image.open(path).mode.startswith("I")
    else:
        path = write_image(tmp_path / f"img{suffix}", mode=mode)
        assert Image.open(path).mode == mode
    image = read_image(path)
    assert image.mode == expected
    array = np.asarray(image)
    if mode == "I;16":  # min-max scaled to the full 8-bit range
        assert array.min() == 0 and array.max() == 255
    paths = [path] * 2 + [write_image(tmp_path / f"g{i}.png", seed=i) for i in range(2)]
    out = make_estimator("transformer").fit(paths).transform(paths)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("kind", ["finetune", "features"])
def test_one_pixel_image_is_resized(kind, tmp_path):
    """A 1x1 image is resized to image_size like any other (documented)."""
    one = str(tmp_path / "one.png")
    Image.new("L", (1, 1), 200).save(one)
    X = [one] + [write_image(tmp_path / f"{i}.png", seed=i) for i in range(7)]
    clf = run(make_estimator(kind), X)
    assert clf.predict([one])[0] in {"NORMAL", "PNEUMONIA"}
    assert np.isfinite(clf.predict_proba([one])).all()
    arrays = [np.full((1, 1), 7, np.uint8), np.full((1, 1, 3), 0.5, np.float32)]
    assert clf.predict_proba(arrays).shape == (2, 2)


@pytest.mark.parametrize("zone", ["warning", "error"])
def test_decompression_bomb_is_refused_naming_the_file(zone, tmp_path, monkeypatch):
    """PIL warns between MAX_IMAGE_PIXELS and twice that, and only errors
    above; both zones are refused with our error naming the file."""
    side = 40 if zone == "warning" else 50  # 1600 or 2500 pixels: see the limit
    path = write_image(tmp_path / "bomb.png", size=(side, side))
    good = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1100)  # 32x32 files pass
    message = r"'.*bomb\.png' is too large to decode safely.*decompression bomb"
    with pytest.raises(ImageReadError, match=message):
        read_image(path)
    features = make_estimator("transformer").fit()
    with pytest.raises(ImageReadError, match=message):
        features.transform(good + [path])
    assert features.transform(good).shape == (3, features.n_features_out_)


# ------------------------------------------------------ backbones and weights
@pytest.mark.parametrize("kind", KINDS)
def test_unknown_backbone_suggests_the_closest(kind, blobs8):
    estimator = make_estimator(kind, backbone="resnet181")
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet181'\. ") as info:
        run(estimator, blobs8[0])
    message = str(info.value)
    assert re.search(r"Did you mean 'resnet18'", message)
    # a few close names and where to find the rest, not a dump of every name
    assert "alexnet" not in message
    assert "list_backbones('all')" in message


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_weights_name_suggests_the_closest(kind, blobs8):
    estimator = make_estimator(kind, backbone="resnet18", weights="IMAGENET1K_V11")
    with pytest.raises(
        ValueError,
        match=r"Unknown weights 'IMAGENET1K_V11' for backbone 'resnet18'\. Valid "
        r"names: IMAGENET1K_V1, DEFAULT.*Did you mean 'IMAGENET1K_V1'\?",
    ):
        run(estimator, blobs8[0])


def test_unknown_timm_backbone_suggests_the_closest():
    pytest.importorskip("timm", reason="timm is an optional dependency")
    estimator = make_estimator("transformer", backbone="timm:resnet181")
    with pytest.raises(ValueError, match=r"Unknown timm backbone 'resnet181'.*'resne"):
        estimator.fit()


def test_weights_path_that_does_not_exist(tmp_path):
    missing = str(tmp_path / "nope.pth")
    estimator = make_estimator("transformer", backbone="resnet18", weights=missing)
    with pytest.raises(FileNotFoundError, match=r"weights file not found: .*nope"):
        estimator.fit()


# ------------------------------------------------------------ fitted models
@pytest.fixture(scope="module", params=["finetune", "features"])
def fitted(request, blobs8):
    X, y = blobs8
    return make_estimator(request.param).fit(X, y), X


def test_predict_before_fit_is_not_fitted_error(blobs8):
    for kind in KINDS:
        estimator = make_estimator(kind)
        method = getattr(estimator, "transform", None) or estimator.predict
        with pytest.raises(NotFittedError):
            method(blobs8[0])


def test_predict_other_sizes_than_in_fit(fitted, tmp_path):
    clf, X = fitted
    rng = np.random.RandomState(1)
    bigger = rng.randint(0, 255, (3, 48, 40), np.uint8)
    rgb = rng.randint(0, 255, (2, 17, 64, 3), np.uint8)
    files = [
        write_image(tmp_path / f"{i}.png", size=(90, 60), seed=i) for i in range(2)
    ]
    for other in (bigger, rgb, files):
        proba = clf.predict_proba(other)
        assert proba.shape == (len(other), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", ["finetune", "features"])
@pytest.mark.parametrize(
    "labels",
    [
        np.array([0.0, 1.0] * 4),
        [0.0, 1.0] * 4,
        np.array(["NORMAL", "PNEUMONIA"] * 4),
        ["normal", "pneumonia"] * 4,
        np.array([-1, 7] * 4),
        [0.25, 1.5] * 4,
    ],
    ids=[
        "float-array",
        "float-list",
        "str-array",
        "str-list",
        "int-array",
        "non-integral-floats",
    ],
)
def test_labels_are_returned_as_given(kind, labels, blobs8):
    X, _ = blobs8
    clf = make_estimator(kind).fit(X, labels)
    expected = np.unique(np.asarray(labels))
    np.testing.assert_array_equal(clf.classes_, expected)
    assert clf.classes_.dtype.kind == expected.dtype.kind
    predicted = clf.predict(X)
    assert predicted.dtype.kind == expected.dtype.kind
    assert set(predicted.tolist()) <= set(expected.tolist())


@pytest.mark.parametrize("kind", ["finetune", "features"])
@pytest.mark.parametrize(
    "labels",
    [
        ["NORMAL", 1] * 4,
        np.array(["NORMAL", 1] * 4, dtype=object),
        ["NORMAL", None] * 4,
        [1.0, "PNEUMONIA"] * 4,
    ],
    ids=["str-int-list", "str-int-object-array", "str-none", "float-str"],
)
def test_mixed_label_types_are_refused(kind, labels, blobs8):
    with pytest.raises(TypeError, match=r"y mixes label types \(.*str.*\); use one"):
        make_estimator(kind).fit(blobs8[0], labels)


# -------------------------------------------- a refused fit changes nothing
def _snapshot(estimator):
    state = {k: v for k, v in vars(estimator).items() if k.endswith("_")}
    modules = {}
    if hasattr(estimator, "net_"):
        modules = {k: v.clone() for k, v in estimator.module_.state_dict().items()}
    return state, modules


@pytest.mark.parametrize("kind", ["finetune", "features"])
def test_refused_fit_leaves_fitted_model_unchanged(kind, blobs8, image_dir):
    X, y = blobs8
    paths = [image_dir[f"good{i}"] for i in range(4)] * 2
    clf = make_estimator(kind).fit(X, y)
    proba = clf.predict_proba(X)
    state, modules = _snapshot(clf)
    nan_X = X.astype(np.float32) / 255
    nan_X[0, 0, 0] = np.nan
    bad_fits = [
        (nan_X, y),
        (X, ["NORMAL", 1] * 4),
        (X, ["NORMAL"] * 8),
        (X, y[:5]),
        (paths[:-1] + [image_dir["missing"]], y),
        # read errors surface while training or embedding, mid-fit
        (paths[:-1] + [image_dir["truncated"]], y),
        (paths[:-1] + [image_dir["text"]], y),
    ]
    for bad_X, bad_y in bad_fits:
        with pytest.raises((ValueError, TypeError, OSError)):
            clf.fit(bad_X, bad_y)
    with pytest.raises(ValueError, match="Unknown backbone"):
        clf.set_params(backbone="resnet181").fit(X, y)
    clf.set_params(backbone=TinyNet())
    new_state, new_modules = _snapshot(clf)
    assert new_state.keys() == state.keys()
    for key, value in state.items():
        assert new_state[key] is value, key
    for key, tensor in modules.items():
        assert (new_modules[key] == tensor).all(), key
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_refused_fit_of_the_transformer_changes_nothing(blobs8, image_dir):
    X, _ = blobs8
    features = make_estimator("transformer").fit(X)
    embeddings = features.transform(X)
    state = dict(vars(features))
    for bad in ([], np.zeros((8, 32, 32, 4), np.uint8), [X[0], image_dir["good0"]]):
        with pytest.raises((ValueError, TypeError)):
            features.fit(bad)
    features.set_params(random_state=None)  # a new seed would be drawn
    for backbone, weights in [("resnet181", None), ("resnet18", "IMAGENET1K_V11")]:
        features.set_params(backbone=backbone, weights=weights)
        with pytest.raises(ValueError, match="Unknown"):
            features.fit(X)
    features.set_params(**{k: state[k] for k in ("backbone", "weights")})
    features.set_params(random_state=0)
    assert {k: v for k, v in vars(features).items()} == state
    np.testing.assert_array_equal(features.transform(X), embeddings)


# ---------------------------------------------- property tests on the arrays
_VALID_DTYPES = st.sampled_from(
    [np.uint8, np.float32, np.float64, np.int16, np.uint16, np.int64, np.bool_]
)


def _valid_elements(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return st.floats(0.0, 1.0, width=dtype.itemsize * 8)
    if dtype.kind == "b":
        return st.booleans()
    return st.integers(0, 255)


@st.composite
def valid_stacks(draw):
    n = draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    channels = draw(st.sampled_from([None, 1, 3]))
    shape = (n, height, width) + (() if channels is None else (channels,))
    dtype = draw(_VALID_DTYPES)
    return draw(hnp.arrays(dtype, shape, elements=_valid_elements(dtype)))


_FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_FAST
@given(X=valid_stacks(), as_list=st.booleans())
def test_valid_arrays_are_accepted(X, as_list):
    images = check_images(list(X) if as_list else X)
    assert len(images) == len(X)
    channels = 1 if X.ndim == 3 else X.shape[-1]
    for item in images:
        assert tuple(item.shape) == (channels,) + X.shape[1:3]
        assert item.dtype.is_floating_point or str(item.dtype) == "torch.uint8"


@_FAST
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=6, min_side=1, max_side=4).filter(
        lambda s: len(s) not in (3, 4)
    ),
)
def test_wrong_ndim_is_refused(shape):
    with pytest.raises(ValueError, match=rf"X has shape .*\({len(shape)} dimensions\)"):
        check_images(np.zeros(shape, np.uint8))


@_FAST
@given(
    channels=st.integers(2, 16).filter(lambda c: c != 3),
    as_list=st.booleans(),
)
def test_wrong_channel_count_is_refused(channels, as_list):
    X = np.zeros((2, 5, 5, channels), np.uint8)
    name = r"X\[0\]" if as_list else "X"
    with pytest.raises(ValueError, match=rf"{name} has {channels} channels"):
        check_images(list(X) if as_list else X)


@_FAST
@given(
    dtype=st.sampled_from(["complex64", "complex128", "datetime64[s]", "m8[ms]"]),
    as_list=st.booleans(),
)
def test_non_numeric_dtypes_are_refused(dtype, as_list):
    X = np.zeros((2, 5, 5), dtype)
    with pytest.raises(TypeError, match=rf"has dtype {re.escape(str(X.dtype))}"):
        check_images(list(X) if as_list else X)


@_FAST
@given(
    value=st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda v: not 0 <= v <= 1
        ),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_float_pixels_outside_unit_range_are_refused(value, dtype):
    X = np.full((1, 4, 4), 0.5, dtype)
    with np.errstate(over="ignore"):
        X[0, 1, 2] = value
    assume(not 0 <= X[0, 1, 2] <= 1)  # a tiny negative may round to -0.0
    message = "NaN or infinite" if not np.isfinite(X).all() else r"must lie in \[0, 1\]"
    with pytest.raises(ValueError, match=message):
        check_images(X)


@_FAST
@given(value=st.one_of(st.integers(-(2**31), -1), st.integers(256, 2**31)))
def test_integer_pixels_outside_8_bit_are_refused(value):
    X = np.zeros((1, 4, 4), np.int64)
    X[0, 0, 0] = value
    with pytest.raises(ValueError, match=r"integer images must hold 8-bit values"):
        check_images(X)


def test_single_image_needs_a_list():
    with pytest.raises(TypeError, match=r"got a single str.*Wrap it in a list"):
        check_images(os.path.join("some", "image.png"))


# ------------------------------------------ training that must not "succeed"
def test_diverging_fit_stops_with_a_clear_error(blobs8):
    """lr far too high: the loss becomes NaN; fit says so and keeps the model."""
    X, y = blobs8
    clf = make_estimator("finetune", freeze_epochs=0).fit(X, y)
    proba = clf.predict_proba(X)
    clf.set_params(lr=1e20, max_epochs=3)
    with pytest.raises(
        ValueError,
        match=r"Training diverged: the training loss became nan at epoch \d, "
        r"batch \d.*Lower lr \(now 1e\+20",
    ):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


@pytest.mark.parametrize("kind", ["finetune", "features"])
@pytest.mark.parametrize(
    "class_weight, message",
    [
        ({"NORMAL": np.nan}, r"\['NORMAL'\] a weight that is negative, NaN"),
        ({"NORMAL": -1.0}, r"\['NORMAL'\] a weight that is negative, NaN"),
        ({"PNEUMONIA": np.inf}, r"\['PNEUMONIA'\] a weight that is negative"),
        ({"NORMAL": 0, "PNEUMONIA": 0}, "every class a weight of 0"),
        ({"NORMAL": "high"}, "not numbers"),
    ],
)
def test_bad_class_weight_is_refused(kind, class_weight, message, blobs8):
    X, y = blobs8
    with pytest.raises(ValueError, match=message):
        make_estimator(kind, class_weight=class_weight).fit(X, y)


@pytest.mark.parametrize("kind", ["finetune", "features"])
def test_nan_probabilities_are_never_returned(kind, blobs8):
    import torch

    X, y = blobs8
    clf = make_estimator(kind).fit(X, y)
    if kind == "finetune":
        with torch.no_grad():
            for parameter in clf.module_.head.parameters():
                parameter.fill_(float("nan"))
    else:
        clf.final_estimator_.coef_[:] = np.nan
    for method in (clf.predict_proba, clf.predict):
        with pytest.raises(ValueError, match=r"NaN or infinite probabilities for "
                           r"X\[0\], X\[1\], .* and 3 more.*lower lr"):
            method(X)


@pytest.mark.parametrize("kind", ["finetune", "features"])
@pytest.mark.parametrize(
    "weights, message",
    [
        ([1.0] * 7 + [-1.0], "Negative values"),
        ([1.0] * 7 + [np.nan], "NaN"),
        ([1.0] * 7 + [np.inf], "infinity"),
        ([0.0] * 8, "sum"),
    ],
    ids=["negative", "nan", "inf", "all-zero"],
)
def test_bad_sample_weight_is_refused(kind, weights, message, blobs8):
    X, y = blobs8
    with pytest.raises(ValueError, match=f"Invalid sample_weight: .*{message}"):
        make_estimator(kind).fit(X, y, sample_weight=np.array(weights))


@pytest.mark.parametrize("kind", ["finetune", "features"])
def test_continuous_target_is_refused(kind, blobs8):
    X, _ = blobs8
    y = np.random.RandomState(0).rand(len(X))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        make_estimator(kind).fit(X, y)
