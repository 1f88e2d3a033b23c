"""make_chest_xrays: shapes, labels, groups, determinism and the anatomy."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from sklearn_cxr.datasets import make_chest_xrays


def test_bunch_contents():
    data = make_chest_xrays(60, image_size=32, random_state=0)
    assert data.images.shape == (60, 32, 32)
    assert data.images.dtype == np.uint8
    assert data.target.shape == data.subtype.shape == data.groups.shape == (60,)
    assert list(data.target_names) == ["NORMAL", "PNEUMONIA"]
    assert set(data.subtype) <= {"normal", "bacteria", "virus"}
    np.testing.assert_array_equal(data.target, data.subtype != "normal")
    assert "consolidation" in data.DESCR
    # several images per patient, and one label per patient
    counts = np.bincount(data.groups)
    assert counts.max() > 1 and counts.min() >= 1 and counts.max() <= 4
    for group in np.unique(data.groups):
        assert len(set(data.subtype[data.groups == group])) == 1


def test_subtype_labels_and_return_X_y():
    X, y = make_chest_xrays(
        90, image_size=32, labels="subtype", class_balance=(0.2, 0.4, 0.4),
        random_state=1, return_X_y=True,
    )
    data = make_chest_xrays(
        90, image_size=32, labels="subtype", class_balance=(0.2, 0.4, 0.4),
        random_state=1,
    )
    np.testing.assert_array_equal(X, data.images)
    np.testing.assert_array_equal(y, data.target)
    assert set(y) == {0, 1, 2}
    assert list(data.target_names) == ["normal", "bacterial", "viral"]
    codes = {"normal": 0, "bacteria": 1, "virus": 2}
    np.testing.assert_array_equal(y, [codes[s] for s in data.subtype])


def test_deterministic_and_seed_sensitive():
    a = make_chest_xrays(20, image_size=48, random_state=3)
    b = make_chest_xrays(20, image_size=48, random_state=3)
    c = make_chest_xrays(20, image_size=48, random_state=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.groups, b.groups)
    assert not np.array_equal(a.images, c.images)


def test_chunked_rendering_matches_count():
    # more images than one rendering chunk
    data = make_chest_xrays(300, image_size=16, random_state=0)
    assert data.images.shape == (300, 16, 16)
    assert len(np.unique(data.images.reshape(300, -1), axis=0)) == 300


def test_class_balance_float_and_extremes():
    all_normal = make_chest_xrays(30, image_size=16, class_balance=0.0, random_state=0)
    assert (all_normal.target == 0).all()
    all_sick = make_chest_xrays(30, image_size=16, class_balance=1.0, random_state=0)
    assert (all_sick.target == 1).all()
    assert set(all_sick.subtype) == {"bacteria", "virus"}


def test_anatomy_lungs_darker_than_mediastinum():
    """The lung fields are dark, the mediastinum between them bright."""
    data = make_chest_xrays(
        40, image_size=64, class_balance=0.0, noise=0.0, random_state=0
    )
    mean = data.images.astype(float).mean(axis=0)
    left_lung = mean[20:36, 10:20].mean()
    right_lung = mean[20:36, 44:54].mean()
    mediastinum = mean[16:30, 29:35].mean()
    outside = mean[2:6, 0:3].mean()  # air above the shoulders
    assert mediastinum > left_lung + 40 and mediastinum > right_lung + 40
    assert outside < left_lung


def test_disease_patterns_where_expected():
    """Bacterial opacity is dense and one-sided; viral texture is bilateral.

    With the same seed the anatomy, exposure and noise streams are the same
    whatever the class, so the difference to the normal image is the disease.
    """
    common = dict(image_size=64, noise=0.0, max_images_per_patient=1)
    normal = make_chest_xrays(40, class_balance=0.0, random_state=0, **common)
    viral = make_chest_xrays(40, class_balance=(0, 0, 1), random_state=0, **common)
    bacterial = make_chest_xrays(
        40, class_balance=(0, 1, 0), random_state=0, **common
    )
    assert (viral.subtype == "virus").all() and (bacterial.subtype == "bacteria").all()
    base = normal.images.astype(float)
    right, left = (slice(16, 44), slice(8, 22)), (slice(16, 44), slice(42, 56))
    outside = (slice(0, 4), slice(0, 4))  # air above the shoulders

    diff = viral.images - base
    assert np.abs(diff[:, outside[0], outside[1]]).max() <= 1
    for lung in (right, left):  # texture in both lungs, zero mean
        region = diff[:, lung[0], lung[1]]
        assert np.median(region.std(axis=(1, 2))) > 4
        assert np.abs(np.median(region.mean(axis=(1, 2)))) < 3

    diff = bacterial.images - base
    assert np.abs(diff[:, outside[0], outside[1]]).max() <= 1
    right_dense = (diff[:, right[0], right[1]] > 5).sum(axis=(1, 2))
    left_dense = (diff[:, left[0], left[1]] > 5).sum(axis=(1, 2))
    assert (np.maximum(right_dense, left_dense) >= 20).mean() >= 0.9  # dense
    assert (np.minimum(right_dense, left_dense) == 0).all()  # one lung only


def test_groups_feed_stratified_group_kfold():
    data = make_chest_xrays(80, image_size=16, random_state=0)
    cv = StratifiedGroupKFold(n_splits=3)
    for train, test in cv.split(data.images, data.target, data.groups):
        assert not set(data.groups[train]) & set(data.groups[test])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples must be >= 1"),
        ({"image_size": 8}, "image_size must be an integer >= 16"),
        ({"labels": "multi"}, "labels must be 'binary' or 'subtype'"),
        ({"class_balance": (0.5, 0.5)}, "three non-negative probabilities"),
        ({"class_balance": 1.5}, r"must lie in \[0, 1\]"),
        ({"noise": -1.0}, "noise must be a float >= 0"),
        ({"max_images_per_patient": 0}, "max_images_per_patient"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_chest_xrays(**{"n_samples": 10, **kwargs})
