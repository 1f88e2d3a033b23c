"""scikit-learn's estimator checks on every public estimator.

scikit-learn's data checks feed 2-D numeric tables (``make_blobs`` with a few
features), which are not images: our estimators refuse them by design, and
declaring "no 2-D input" in ``__sklearn_tags__`` makes scikit-learn 1.9 skip
every check of ``parametrize_with_checks``. So the checks that apply are run
by calling scikit-learn's own check functions (:data:`API_CHECKS`), and the
data checks are re-done below on image input. Not run, with the reason:

* ``check_estimators_dtypes``, ``check_fit2d_*``, ``check_fit1d``,
  ``check_n_features_in*``, ``check_dtype_object``, ``check_complex_data``,
  ``check_estimators_empty_data_messages``, ``check_estimators_nan_inf``,
  ``check_classifiers_train``, ``check_classifiers_classes``,
  ``check_supervised_y_2d``, ``check_methods_subset_invariance``,
  ``check_methods_sample_order_invariance``, ``check_fit_idempotent``,
  ``check_estimators_pickle``, ``check_dict_unchanged``,
  ``check_dont_overwrite_parameters``, ``check_fit_check_is_fitted``,
  ``check_estimators_fit_returns_self``, ``check_readonly_memmap_input``,
  ``check_sample_weights_*``, ``check_classifiers_one_label*``,
  ``check_transformer_*``, ``check_estimators_data_not_an_array``,
  ``check_classifiers_regression_target``, ``check_supervised_y_no_nan``,
  ``check_sample_weights_not_an_array``,
  ``check_sample_weights_not_overwritten``: they need 2-D feature tables;
  each has an image-input equivalent in this file (``test_image_*``).
* ``check_estimator_sparse_*``: images are never sparse matrices.
* ``check_dataframe_column_names_consistency``, ``check_set_output_*``,
  ``check_get_feature_names_out_error``: column names of tables; images have none.
* ``check_classifier_multioutput``, ``check_classifiers_multilabel_*``:
  one label per image only.
* ``check_class_weight_*``: they compare with linear models on tables;
  ``class_weight="balanced"`` is tested in ``test_classifier.py``.
* ``check_array_api_*``: torch tensors are not accepted as an array API input.

``check_param_validation`` runs: a bad parameter is refused by
``_parameter_constraints`` before ``fit`` looks at the data, so its 2-D table
is never read.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures

TINY = dict(backbone="resnet18", weights=None, image_size=32, batch_size=16)

ESTIMATORS = [
    PretrainedCNNClassifier(**TINY, max_epochs=1, random_state=0),
    PretrainedCNNClassifier(**TINY, mode="features", random_state=0),
    PretrainedFeatures(**TINY, random_state=0),
]
IDS = ["finetune", "features", "PretrainedFeatures"]

API_CHECKS = [
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_repr,
    ec.check_estimator_cloneable,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_mixin_order,
    ec.check_param_validation,
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


def test_sklearn_unfitted_checks():
    ec.check_estimators_unfitted("PretrainedCNNClassifier", clone(ESTIMATORS[0]))
    ec.check_transformers_unfitted("PretrainedFeatures", clone(ESTIMATORS[2]))


def _images(n=24, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 256, (n, 32, 32), dtype=np.uint8)
    y = np.array(["a", "b"] * (n // 2))
    X[y == "b", 8:24, 8:24] = 255
    return X, y


def _fit(estimator, X, y):
    if isinstance(estimator, PretrainedFeatures):
        return estimator.fit(X)
    return estimator.fit(X, y)


def _output(estimator, X):
    if isinstance(estimator, PretrainedFeatures):
        return estimator.transform(X)
    return estimator.predict_proba(X)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_fit_returns_self_and_keeps_params(estimator):
    X, y = _images()
    estimator = clone(estimator)
    params = pickle.dumps(estimator.get_params())
    assert _fit(estimator, X, y) is estimator
    assert pickle.dumps(estimator.get_params()) == params  # no overwritten params


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_inputs_not_mutated(estimator):
    X, y = _images()
    X_before, y_before = X.copy(), y.copy()
    fitted = _fit(clone(estimator), X, y)
    _output(fitted, X)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_predict_does_not_change_state(estimator):
    X, y = _images()
    fitted = _fit(clone(estimator), X, y)
    before = {k: v for k, v in vars(fitted).items() if isinstance(v, (int, str))}
    _output(fitted, X)
    after = {k: v for k, v in vars(fitted).items() if isinstance(v, (int, str))}
    assert before == after


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_subset_and_order_invariance(estimator):
    X, y = _images()
    fitted = _fit(clone(estimator), X, y)
    full = _output(fitted, X)
    np.testing.assert_allclose(_output(fitted, X[:5]), full[:5], rtol=1e-5, atol=1e-6)
    order = np.random.RandomState(1).permutation(len(X))
    np.testing.assert_allclose(_output(fitted, X[order]), full[order], atol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_fit_idempotent_and_pickle(estimator):
    X, y = _images()
    fitted = _fit(clone(estimator), X, y)
    first = _output(fitted, X)
    np.testing.assert_array_equal(_output(_fit(fitted, X, y), X), first)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(_output(restored, X), first)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_readonly_memmap_input(estimator, tmp_path):
    X, y = _images()
    path = tmp_path / "X.npy"
    np.save(path, X)
    X_mm = np.load(path, mmap_mode="r")
    fitted = _fit(clone(estimator), X_mm, y)
    assert _output(fitted, X_mm).shape[0] == len(X)


@pytest.mark.parametrize("estimator", ESTIMATORS[:2], ids=IDS[:2])
def test_image_classifier_errors(estimator):
    X, y = _images()
    est = clone(estimator)
    with pytest.raises(ValueError, match="single class"):
        est.fit(X, np.array(["a"] * len(X)))
    with pytest.raises(ValueError, match="empty"):
        est.fit(X[:0], y[:0])
    bad = X.astype(np.float32) / 255
    bad[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="same length"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="1-d"):
        est.fit(X, np.c_[y, y])
    with pytest.raises(ValueError, match="2-D feature tables are not images"):
        est.fit(np.zeros((10, 4)), y[:10])
    with pytest.raises(NotFittedError):
        clone(estimator).predict(X)


@pytest.mark.parametrize("estimator", ESTIMATORS[:2], ids=IDS[:2])
def test_image_classifier_classes_and_y_types(estimator):
    X, y = _images()
    for labels in (y, (y == "b").astype(int) + 3, np.where(y == "a", -1.0, 1.0)):
        fitted = clone(estimator).fit(X, labels)
        np.testing.assert_array_equal(fitted.classes_, np.unique(labels))
        assert set(fitted.predict(X)) <= set(np.unique(labels))
    fitted = clone(estimator).fit(X, list(y))  # a list of labels works
    assert fitted.predict(X[:2]).dtype.kind == "U"


@pytest.mark.parametrize("estimator", ESTIMATORS[:2], ids=IDS[:2])
def test_image_sample_weight_forms(estimator):
    X, y = _images()
    ones = np.ones(len(X))
    a = clone(estimator).fit(X, y, sample_weight=ones).predict_proba(X)
    b = clone(estimator).fit(X, y, sample_weight=list(ones)).predict_proba(X)
    np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError):
        clone(estimator).fit(X, y, sample_weight=ones[:3])


def test_transformer_output_dtype_and_names():
    X, _ = _images()
    features = clone(ESTIMATORS[2]).fit(X)
    out = features.transform(X)
    assert out.dtype == np.float32 and out.shape == (len(X), features.n_features_out_)
    assert len(features.get_feature_names_out()) == out.shape[1]
    np.testing.assert_array_equal(features.fit_transform(X), out)


class _NotAnArray:
    """Offers only ``__array__``, like scikit-learn's ``_NotAnArray``."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_image_data_not_an_array(estimator):
    """check_estimators_data_not_an_array: an image stack behind __array__."""
    X, y = _images()
    expected = _output(_fit(clone(estimator), X, y), X)
    fitted = _fit(clone(estimator), _NotAnArray(X), _NotAnArray(y))
    np.testing.assert_allclose(_output(fitted, _NotAnArray(X)), expected,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS[:2], ids=IDS[:2])
def test_image_classifier_target_checks(estimator):
    """check_classifiers_regression_target and check_supervised_y_no_nan."""
    X, _ = _images()
    continuous = np.random.RandomState(0).rand(len(X))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clone(estimator).fit(X, continuous)
    with_nan = np.where(np.arange(len(X)) % 2, 1.0, 0.0)
    with_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(estimator).fit(X, with_nan)


@pytest.mark.parametrize("estimator", ESTIMATORS[:2], ids=IDS[:2])
def test_image_sample_weights_not_an_array_and_not_overwritten(estimator):
    X, y = _images()
    weights = np.random.RandomState(0).uniform(0.5, 2.0, len(X))
    before = weights.copy()
    a = clone(estimator).fit(X, y, sample_weight=weights).predict_proba(X)
    np.testing.assert_array_equal(weights, before)
    b = clone(estimator).fit(X, y, sample_weight=_NotAnArray(weights))
    np.testing.assert_allclose(b.predict_proba(X), a, rtol=1e-5, atol=1e-6)
