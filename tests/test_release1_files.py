"""Files written by the first release (0.1.0, commit 7c854b5) still load.

``tests/data/release1/make_fixtures.py`` wrote them with that release: two
safe-format files (``save()``) and three joblib pickles, with the outputs the
release itself predicted on ``images.npy``.
"""

import json
import os
import shutil

import joblib
import numpy as np
import pytest
from _helpers import rewrite_config

from sklearn_cxr import ModelFileError, PretrainedCNNClassifier, PretrainedFeatures

DATA = os.path.join(os.path.dirname(__file__), "data", "release1")


def _expected(name):
    with open(os.path.join(DATA, "expected.json")) as handle:
        return np.asarray(json.load(handle)["outputs"][name])


@pytest.fixture(scope="module")
def images():
    return np.load(os.path.join(DATA, "images.npy"))


@pytest.mark.parametrize("name", ["finetune.cxr", "features.cxr"])
def test_safe_files_of_release1_load_and_predict_the_same(name, images):
    path = os.path.join(DATA, name)
    model = PretrainedCNNClassifier.load(path)
    assert model.mode_fitted_ == name.split(".")[0]
    np.testing.assert_allclose(
        model.predict_proba(images), _expected(name), rtol=1e-5, atol=1e-6
    )
    assert model.classes_.tolist() == ["NORMAL", "PNEUMONIA"]


def test_safe_file_of_release1_saved_again_loads(images, tmp_path):
    model = PretrainedCNNClassifier.load(os.path.join(DATA, "finetune.cxr"))
    path = model.save(tmp_path / "again.cxr")
    np.testing.assert_allclose(
        PretrainedCNNClassifier.load(path).predict_proba(images),
        _expected("finetune.cxr"),
        rtol=1e-5,
        atol=1e-6,
    )


def test_release1_file_with_a_damaged_head_is_refused(tmp_path):
    # a version-1 file whose config lost the head width is refused by name
    source = os.path.join(DATA, "finetune.cxr")
    damaged = rewrite_config(
        source,
        tmp_path / "damaged.cxr",
        lambda config: config["fitted"].pop("head_in_features"),
    )
    with pytest.raises(ModelFileError, match="head_in_features"):
        PretrainedCNNClassifier.load(damaged)


def test_release1_file_is_not_a_features_file():
    with pytest.raises(ModelFileError, match="PretrainedCNNClassifier"):
        PretrainedFeatures.load(os.path.join(DATA, "finetune.cxr"))


@pytest.mark.parametrize(
    "name", ["finetune.joblib", "features.joblib", "transformer.joblib"]
)
def test_joblib_pickles_of_release1_load_and_predict_the_same(name, images, tmp_path):
    # a copy: joblib may memory-map, and the test must not touch the fixture
    path = shutil.copy(os.path.join(DATA, name), tmp_path / name)
    model = joblib.load(path)
    if isinstance(model, PretrainedFeatures):
        output = model.transform(images)
    else:
        output = model.predict_proba(images)
        assert model.predict(images[:2]).tolist()[0] in ("NORMAL", "PNEUMONIA")
    np.testing.assert_allclose(output, _expected(name), rtol=1e-5, atol=1e-6)
    # the preprocessing of an old model is the one value of the new code
    assert model.preprocessing_.image_size == 32
