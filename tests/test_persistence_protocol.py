"""What _persistence asks of an estimator: _get_state / _set_state."""

import os
import shutil

import joblib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from sklearn_cxr import Preprocessing, PretrainedFeatures
from sklearn_cxr._persistence import save_model

RELEASE1 = os.path.join(os.path.dirname(__file__), "data", "release1")


def test_only_estimators_of_the_package_are_saved(tmp_path):
    with pytest.raises(TypeError, match="got LogisticRegression"):
        save_model(LogisticRegression(), tmp_path / "m.cxr")
    assert not (tmp_path / "m.cxr").exists()


def test_an_unfitted_estimator_writes_nothing(tmp_path):
    with pytest.raises(NotFittedError):
        PretrainedFeatures().save(tmp_path / "m.cxr")
    assert list(tmp_path.iterdir()) == []


def test_an_old_pickle_gets_one_preprocessing_value(tmp_path):
    path = shutil.copy(os.path.join(RELEASE1, "transformer.joblib"), tmp_path)
    old = joblib.load(path)
    # the three loose fitted values became one Preprocessing ...
    assert isinstance(old.preprocessing_, Preprocessing)
    assert not {"mean_", "std_", "interpolation_"} & set(vars(old))
    # ... still readable under their old names
    assert old.mean_ == old.preprocessing_.mean
    assert old.interpolation_ == old.preprocessing_.interpolation
    # and a pickle of this version keeps it
    joblib.dump(old, tmp_path / "again.joblib")
    again = joblib.load(tmp_path / "again.joblib")
    assert again.preprocessing_ == old.preprocessing_
    X = np.load(os.path.join(RELEASE1, "images.npy"))
    np.testing.assert_array_equal(again.transform(X), old.transform(X))


def test_fitted_preprocessing_is_read_only():
    features = joblib.load(os.path.join(RELEASE1, "transformer.joblib"))
    with pytest.raises(AttributeError):
        features.mean_ = (0.0, 0.0, 0.0)


def test_preprocessing_file_fields_round_trip():
    pre = Preprocessing(
        image_size=32, in_chans=1, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0),
        interpolation="bicubic", equalize=True,
    )
    fields = pre.file_fields()
    assert fields == {
        "mean_": [0.1, 0.2, 0.3], "std_": [1.0, 2.0, 3.0],
        "interpolation_": "bicubic", "detail_size_": None,
    }
    back = Preprocessing.from_file_fields(
        fields, image_size=32, in_chans=1, equalize=True
    )
    assert back == pre
