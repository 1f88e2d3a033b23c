"""Finetune levers of issue 10: augmentation, label smoothing, EMA, TTA."""

import numpy as np
import pytest
import torch
from _helpers import tiny_params, tiny_resnet_classifier
from skorch.callbacks import Callback

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr._augment import (
    MARKER_TEXTS,
    CenterZoom,
    RandomBorder,
    RandomGamma,
    RandomJPEG,
    RandomMarkers,
    acquisition_augmentation,
    check_tta,
    framing_augmentation,
)
from sklearn_cxr._images import build_transform


class Recorder(Callback):
    """Keeps copies of the inputs and of the weights seen during training."""

    def initialize(self):
        self.train_inputs, self.valid_inputs = [], []
        self.after_step, self.before_step = [], []
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        target = self.train_inputs if training else self.valid_inputs
        target.append(batch[0]["x"].clone())
        if training:
            self.before_step.append(_weights(net.module_))

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self.after_step.append(_weights(net.module_))


def _weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _fit(X, y, groups=None, **overrides):
    recorder = Recorder()
    params = tiny_params(max_epochs=2, callbacks=[("recorder", recorder)])
    params.update(overrides)
    clf = PretrainedCNNClassifier(**params).fit(X, y, groups=groups)
    return clf, dict(clf.net_.callbacks_)["recorder"]


# ------------------------------------------------------------- augmentation
def test_acquisition_steps_change_the_image_and_keep_its_range():
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    gamma = RandomGamma(gamma=(2.0, 2.0), p=1.0)(image)
    assert torch.allclose(gamma, image**2, atol=1e-6)
    jpeg = RandomJPEG(quality=(10, 10), p=1.0)(image)
    assert jpeg.shape == image.shape and jpeg.dtype == torch.float32
    assert 0 <= float(jpeg.min()) and float(jpeg.max()) <= 1
    assert float((jpeg - image).abs().mean()) > 0.01  # lossy at quality 10
    assert torch.equal(RandomJPEG(p=0.0)(image), image)
    out = [acquisition_augmentation()(image) for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == image.dtype for o in out)
    assert all(0 <= float(o.min()) and float(o.max()) <= 1 for o in out)
    assert sum(not torch.allclose(o, image) for o in out) >= 6


def test_acquisition_augmentation_is_in_the_training_transform_only():
    common = dict(mean=(0.5,) * 3, std=(0.25,) * 3)
    train = build_transform(32, train=True, augment="acquisition", **common)
    plain = build_transform(32, train=True, augment=True, **common)
    evaluation = build_transform(32, train=False, augment="acquisition", **common)
    assert "RandomJPEG" in repr(train) and "RandomJPEG" not in repr(plain)
    assert "RandomJPEG" not in repr(evaluation)


def test_markers_are_burned_into_the_top_or_bottom_band_of_every_channel():
    torch.manual_seed(0)
    image = torch.full((3, 96, 96), 0.5)
    marked = [RandomMarkers(p=1.0)(image) for _ in range(20)]
    for out in marked:
        changed = (out != image).any(0)
        assert changed.any()  # some text was drawn
        rows = torch.nonzero(changed)[:, 0]
        # only in the outer sixths, where laterality letters are printed
        assert bool(((rows < 96 // 6) | (rows >= 96 - 96 // 6)).all())
        # the same mark in every channel, pure white or black
        assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
        assert set(out[:, changed].unique().tolist()) <= {0.0, 1.0}
    # places and sizes vary from draw to draw
    assert len({tuple(torch.nonzero((o != image).any(0))[0].tolist())
                for o in marked}) > 5
    assert torch.equal(RandomMarkers(p=0.0)(image), image)
    assert "SUPINE" in MARKER_TEXTS


def test_borders_fill_bands_along_the_edges():
    torch.manual_seed(1)
    image = torch.full((1, 100, 80), 0.5)
    for _ in range(20):
        out = RandomBorder(p=1.0, fraction=(0.05, 0.10))(image)
        changed = (out != image)[0]
        assert changed.any()
        # the centre is untouched, every change is a full-length edge band
        assert not changed[10:90, 8:72].any()
        assert set(out[0][changed].unique().tolist()) <= {0.0, 1.0}
        top, left = changed[:, 40], changed[50, :]
        assert top.any() or left.any()
    assert torch.equal(RandomBorder(p=0.0)(image), image)


def test_framing_augmentation_adds_markers_and_borders_to_training_only():
    common = dict(mean=(0.5,) * 3, std=(0.25,) * 3)
    train = build_transform(32, train=True, augment="framing", **common)
    evaluation = build_transform(32, train=False, augment="framing", **common)
    for name in ("RandomJPEG", "RandomMarkers", "RandomBorder"):
        assert name in repr(train) and name not in repr(evaluation)
    torch.manual_seed(0)
    image = torch.rand(1, 64, 64)
    out = [framing_augmentation()(image) for _ in range(10)]
    assert all(o.shape == image.shape for o in out)
    assert all(0 <= float(o.min()) and float(o.max()) <= 1 for o in out)


@pytest.mark.slow
def test_augmentation_changes_training_inputs_not_predictions(blobs):
    X, y, groups = blobs
    plain, rec_plain = _fit(X, y, augment=False, validation_fraction=None)
    clf, rec = _fit(X, y, augment="acquisition", validation_fraction=None)
    evaluation = torch.stack(
        [clf._eval_transform()(torch.from_numpy(x)[None]) for x in X]
    ).flatten(1)

    def matches(batch):  # share of inputs equal to an un-augmented image
        flat = batch.flatten(1)
        return np.mean(
            [bool(torch.isclose(evaluation, r).all(1).any()) for r in flat]
        )

    assert all(matches(b) == 1.0 for b in rec_plain.train_inputs)
    assert np.mean([matches(b) for b in rec.train_inputs]) < 0.2
    # nothing random at predict time
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


def test_callable_augment_replaces_the_builtin_one(blobs):
    X, y, _ = blobs

    def blank(image):
        return torch.zeros_like(image)

    clf, rec = _fit(X, y, augment=blank, validation_fraction=None)
    inputs = torch.cat(rec.train_inputs)
    # a zero image normalised by the weights' statistics: one value a channel
    assert inputs.flatten(2).std(2).max() == 0
    assert clf.predict_proba(X).std(0).max() > 0  # not applied at predict


# -------------------------------------------------------- label smoothing
def test_label_smoothing_reaches_the_loss(blobs):
    X, y, _ = blobs
    logits = torch.tensor([[10.0, -10.0], [-3.0, 3.0]])
    target = torch.tensor([0, 1])
    for smoothing in (0.0, 0.2):
        clf = PretrainedCNNClassifier(
            **tiny_params(max_epochs=1, label_smoothing=smoothing,
                          class_weight=None, validation_fraction=None)
        ).fit(X, y)
        loss = clf.net_.get_loss(logits, target)
        expected = torch.nn.functional.cross_entropy(
            logits, target, label_smoothing=smoothing
        )
        assert torch.isclose(loss, expected, atol=1e-6)
    assert float(expected) > 1.0  # smoothing penalises the confident logit


# ---------------------------------------------------------------- EMA
def test_ema_keeps_the_moving_average_of_the_weights(blobs):
    X, y, _ = blobs
    clf, rec = _fit(X, y, ema=0.5, validation_fraction=None, batch_size=8)
    steps_per_epoch = int(np.ceil(len(X) / 8))
    horizon = 0.5 * steps_per_epoch
    expected = {k: v.float() for k, v in rec.after_step[0].items()}
    for t, state in enumerate(rec.after_step[1:], start=1):
        decay = min(1 - 1 / horizon, (1 + t) / (10 + t))
        for k, v in state.items():
            if v.is_floating_point():
                expected[k] = expected[k] * decay + v * (1 - decay)
    final = clf.module_.state_dict()
    last = rec.after_step[-1]
    differs = False
    for k, v in final.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, expected[k], rtol=1e-5, atol=1e-6)
            differs |= not torch.allclose(v, last[k])
    assert differs, "the averaged weights equal the last weights"


def test_ema_validates_averaged_weights_and_trains_on_raw_ones(blobs):
    X, y, groups = blobs
    clf, rec = _fit(
        X, y, groups, ema=0.5, validation_fraction=0.25, patience=5, batch_size=8
    )
    per_epoch = len(rec.after_step) // 2
    # epoch 2 starts from the raw weights of epoch 1's last step, not the EMA
    raw_end, start_2 = rec.after_step[per_epoch - 1], rec.before_step[per_epoch]
    assert all(torch.equal(raw_end[k], start_2[k]) for k in raw_end)
    assert len(clf.history_) == 2 and "valid_auc" in clf.history_[-1]
    # the fitted model holds averaged weights, not raw ones
    final = clf.module_.state_dict()
    assert any(
        not torch.equal(final[k], rec.after_step[-1][k])
        for k in final
        if final[k].is_floating_point()
    )
    assert dict(clf.net_.callbacks_)["weight_averaging"].averaged_ is None


# ---------------------------------------------------------------- TTA
def _center(X, scale):
    h, w = X.shape[1:3]
    ch, cw = round(h * scale), round(w * scale)
    top, left = (h - ch) // 2, (w - cw) // 2
    return X[:, top : top + ch, left : left + cw]


@pytest.mark.parametrize("mode", ["finetune", "features"])
def test_tta_averages_the_centre_crop_views(blobs, mode):
    X, y, _ = blobs
    clf = PretrainedCNNClassifier(
        **tiny_params(mode=mode, max_epochs=1, validation_fraction=None)
    ).fit(X, y)
    plain = clf.predict_proba(X)
    cropped = clf.predict_proba(_center(X, 0.75))
    assert not np.allclose(plain, cropped)
    clf.set_params(tta=(1.0, 0.75))
    np.testing.assert_allclose(
        clf.predict_proba(X), (plain + cropped) / 2, rtol=1e-5, atol=1e-6
    )
    clf.set_params(tta=False)
    np.testing.assert_allclose(clf.predict_proba(X), plain, rtol=1e-6)


def test_center_zoom_and_default_views():
    image = torch.arange(100.0).reshape(1, 10, 10)
    out = CenterZoom(0.6)(image)
    assert out.shape == (1, 6, 6) and out[0, 0, 0] == 22
    assert CenterZoom(1.0)(image) is image
    assert check_tta(True) == (1.0, 0.9) and check_tta(False) == ()


# -------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "params, match",
    [
        ({"augment": "photometric"}, r"'augment' parameter .*'acquisition'"),
        ({"augment": 3}, r"'augment' parameter .* or a callable\. Got 3"),
        ({"label_smoothing": 1.0}, r"'label_smoothing' .* range \[0.0, 1.0\)"),
        ({"label_smoothing": "0.1"}, "'label_smoothing' parameter"),
        ({"ema": 0}, r"'ema' parameter .* range \(0.0, inf\) or None"),
        ({"ema": True}, "ema must be None or a positive number of epochs"),
        ({"tta": 1.5}, r"'tta' parameter .* 'bool' .* or an array-like"),
        ({"tta": []}, "tta must be"),
        ({"tta": (1.0, 0.2)}, r"fractions in \[0.5, 1\]"),
    ],
)
def test_bad_lever_values_are_refused(blobs, params, match):
    X, y, _ = blobs
    with pytest.raises(ValueError, match=match):
        PretrainedCNNClassifier(**tiny_params(**params)).fit(X, y)


# ------------------------------------------------------------- persistence
@pytest.mark.slow
def test_levers_survive_save_and_load(blobs, tmp_path):
    X, y, _ = blobs
    clf = tiny_resnet_classifier(
        "finetune", augment="acquisition", label_smoothing=0.1, ema=0.5,
        tta=(1.0, 0.9),
    ).fit(X, y)
    loaded = PretrainedCNNClassifier.load(clf.save(tmp_path / "m.cxr"))
    assert loaded.get_params()["tta"] == (1.0, 0.9)
    assert loaded.get_params()["ema"] == 0.5
    np.testing.assert_allclose(
        loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-5, atol=1e-6
    )
    clf.set_params(augment=torch.nn.Identity())
    with pytest.raises(TypeError, match="augment=.*cannot be stored"):
        clf.save(tmp_path / "callable.cxr")


# ------------------------------------------------- small training sets
@pytest.mark.parametrize("n, expected", [(999, None), (1000, 100), (3000, 300)])
def test_auto_validation_needs_100_images(n, expected):
    y = np.tile([0, 1, 1, 1], n // 4 + 1)[:n]
    clf = PretrainedCNNClassifier(validation_fraction="auto")
    split = clf._split_validation(y, None, seed=0)
    if expected is None:
        assert split is None
    else:
        train, valid = split
        assert abs(len(valid) - expected) <= 1 and len(train) + len(valid) == n


def test_default_trains_small_sets_on_everything(blobs, caplog):
    X, y, groups = blobs
    recorder = Recorder()
    clf = PretrainedCNNClassifier(
        **tiny_params(max_epochs=2, callbacks=[("recorder", recorder)])
    )
    assert clf.get_params()["validation_fraction"] == "auto"
    with caplog.at_level("INFO", logger="sklearn_cxr._finetune"):
        clf.fit(X, y, groups=groups)
    rec = dict(clf.net_.callbacks_)["recorder"]
    assert "without early stopping" in caplog.text
    assert len(clf.history_) == 2 and "valid_auc" not in clf.history_[-1]
    assert not rec.valid_inputs
    assert sum(len(b) for b in rec.train_inputs) == 2 * len(X)
    explicit = PretrainedCNNClassifier(
        **tiny_params(max_epochs=1, validation_fraction=0.25)
    ).fit(X, y, groups=groups)
    assert "valid_auc" in explicit.history_[-1]


@pytest.mark.parametrize("bad", ["Auto", 0.5, 0, "none"])
def test_bad_validation_fraction_is_refused(blobs, bad):
    X, y, _ = blobs
    with pytest.raises(
        ValueError,
        match=r"'validation_fraction' parameter .* \(0.0, 0.5\), .*'auto'.* None",
    ):
        PretrainedCNNClassifier(**tiny_params(validation_fraction=bad)).fit(X, y)
