"""Feature mode's augmented copies (``augment`` + ``augment_copies``)."""

import numpy as np
import pytest
import torch
from _helpers import tiny_params
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr._augment import (
    AugmentedCopies,
    photometric_augmentation,
    resolve_augment_copies,
)
from sklearn_cxr._images import check_images


class Recording(ClassifierMixin, BaseEstimator):
    """A logistic regression that keeps what it was fitted on."""

    def fit(self, X, y, sample_weight=None):
        self.X_, self.y_ = np.asarray(X), np.asarray(y)
        self.sample_weight_ = sample_weight
        self.model_ = LogisticRegression(max_iter=500).fit(X, y, sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)


def _features(**overrides):
    params = tiny_params(mode="features", final_estimator=Recording())
    params.update(overrides)
    return PretrainedCNNClassifier(**params)


@pytest.mark.parametrize(
    "copies, augment, expected",
    [
        (2, "acquisition", 2),
        (3, True, 3),
        (3, False, 0),
        (3, None, 0),
        (0, "acquisition", 0),
    ],
)
def test_copies_only_while_augmenting(copies, augment, expected):
    assert resolve_augment_copies(copies, augment) == expected


def test_copies_are_seeded_per_image_and_differ_between_copies(make_blobs):
    X, _, _ = make_blobs(6, 32)
    images = check_images(X)
    transform = photometric_augmentation("acquisition")
    copies = AugmentedCopies(images, transform, copies=2, seed=0)
    assert len(copies) == 12
    first = [copies[i] for i in range(12)]
    # the same items again, in another order: the same pixels
    for i in (11, 3, 7, 0):
        assert torch.equal(copies[i], first[i])
    assert all(c.dtype == torch.uint8 and c.shape == (1, 32, 32) for c in first)
    # each copy of an image differs from the image and from its other copy
    changed = [not torch.equal(first[i], images[i % 6]) for i in range(12)]
    assert sum(changed) >= 8
    assert sum(not torch.equal(first[i], first[i + 6]) for i in range(6)) >= 4
    # another seed draws other copies
    other = AugmentedCopies(images, transform, copies=2, seed=1)
    assert any(not torch.equal(other[i], first[i]) for i in range(12))


def test_photometric_part_of_each_augment_value():
    assert photometric_augmentation(False) is None
    assert photometric_augmentation(None) is None
    assert "ColorJitter" in repr(photometric_augmentation(True))
    assert "RandomJPEG" in repr(photometric_augmentation("acquisition"))
    assert "RandomMarkers" in repr(photometric_augmentation("framing"))

    def blank(image):
        return image * 0

    assert photometric_augmentation(blank) is blank


def test_final_estimator_trains_on_originals_and_copies(make_blobs):
    X, y, _ = make_blobs(20, 32)
    plain = _features(augment="acquisition").fit(X, y)  # no copies by default
    augmented = _features(augment="acquisition", augment_copies=2).fit(X, y)
    three = _features(augment=True, augment_copies=3).fit(X, y)
    assert plain.final_estimator_.X_.shape[0] == 20
    assert augmented.final_estimator_.X_.shape[0] == 60
    assert three.final_estimator_.X_.shape[0] == 80
    # the labels follow their images
    y_encoded = np.searchsorted(augmented.classes_, y)
    np.testing.assert_array_equal(augmented.final_estimator_.y_, np.tile(y_encoded, 3))
    # the originals come first, embedded as at predict time (standardised)
    X_orig = augmented.final_estimator_.X_[:20]
    expected = augmented.scaler_.transform(augmented.features_.transform(X))
    np.testing.assert_allclose(X_orig, expected, rtol=1e-5, atol=1e-5)
    # copies are not the originals
    assert not np.allclose(augmented.final_estimator_.X_[20:40], X_orig)
    # a seeded fit is repeatable; prediction draws nothing
    again = _features(augment="acquisition", augment_copies=2).fit(X, y)
    np.testing.assert_allclose(
        again.predict_proba(X), augmented.predict_proba(X), rtol=1e-6
    )
    first = augmented.predict_proba(X)
    np.testing.assert_array_equal(augmented.predict_proba(X), first)


def test_sample_weights_and_class_weights_follow_the_copies(make_blobs):
    X, y, _ = make_blobs(20, 32)
    weights = np.linspace(0.5, 1.5, 20)
    clf = _features(augment="acquisition", augment_copies=2, class_weight=None).fit(
        X, y, sample_weight=weights
    )
    np.testing.assert_allclose(clf.final_estimator_.sample_weight_, np.tile(weights, 3))


def test_copies_with_adaptation_keep_their_site(make_blobs):
    X, y, _ = make_blobs(20, 32)
    Xt, _, _ = make_blobs(10, 32, seed=1)
    X_all = np.concatenate([X, Xt])
    y_all = np.concatenate([y, ["-1"] * 10])
    domains = np.r_[np.ones(20, int), -2 * np.ones(10, int)]
    clf = _features(
        augment="acquisition", augment_copies=2, adaptation="standardize"
    ).fit(
        X_all, y_all, sample_domain=domains
    )
    assert clf.final_estimator_.X_.shape[0] == 60
    assert clf.classes_.tolist() == ["NORMAL", "PNEUMONIA"]
    assert clf.predict_proba(Xt).shape == (10, 2)


@pytest.mark.parametrize("bad", [-1, 101, 10**30, True, "many"])
def test_model_file_with_bad_copies_is_refused(make_blobs, tmp_path, bad):
    from _helpers import rewrite_config, tiny_resnet_classifier

    from sklearn_cxr.exceptions import ModelFileError

    X, y, _ = make_blobs(20, 32)
    path = tiny_resnet_classifier("features").fit(X, y).save(tmp_path / "m.cxr")

    def edit(config):
        config["params"]["augment_copies"] = bad

    edited = rewrite_config(path, tmp_path / "bad.cxr", edit)
    with pytest.raises(ModelFileError, match="augment_copies"):
        PretrainedCNNClassifier.load(edited)
