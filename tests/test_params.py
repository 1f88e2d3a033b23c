"""Parameter validation (``_parameter_constraints``) and nested parameters.

scikit-learn's ``check_param_validation`` runs in ``test_common.py``; here:
every value the docs allow passes the constraints, the checks the
constraints cannot express still run in ``fit``, and the ``callbacks__*``
names that ``set_params`` accepts are the ones ``get_params`` shows.
"""

import joblib
import numpy as np
import pytest
import torch
import torchvision
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import EarlyStopping, EpochScoring

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures

TINY = dict(backbone="resnet18", weights=None, image_size=32, batch_size=16)


def _tiny_classifier(**params):
    return PretrainedCNNClassifier(**{**TINY, "max_epochs": 1, **params})


# ------------------------------------------------- every documented value
class _Accelerator:
    """Stands for an ``accelerate.Accelerator`` (not installed here)."""

    def prepare(self, *args):
        return args


DOCUMENTED = {
    "backbone": ["resnet18", "timm:tf_efficientnet_lite0", torch.nn.Conv2d(3, 4, 3)],
    "weights": [
        "DEFAULT",
        "IMAGENET1K_V1",
        "/tmp/w.pth",
        torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
        None,
    ],
    "mode": ["finetune", "features"],
    "image_size": [8, 224, np.int64(64)],
    "hidden_units": [(), (64,), [32, 16], np.array([8])],
    "dropout": [0.0, 0.5, np.float32(0.2)],
    "max_epochs": [1, 30],
    "batch_size": [1, 32],
    "lr": [1e-3, 1],
    "freeze_epochs": [0, 2],
    "class_weight": ["balanced", None, {"NORMAL": 1.0, "PNEUMONIA": 2.0}],
    "augment": [True, False, "geometric", "acquisition", "framing",
                lambda image: image],
    "augment_copies": [0, 3, np.int64(2)],
    "final_estimator": [
        None,
        LogisticRegression(),
        make_pipeline(StandardScaler(), LogisticRegression()),
    ],
    "device": ["auto", "cpu", "cuda", "cuda:1", torch.device("cpu")],
    "num_workers": [0, 4, "auto"],
    "random_state": [None, 0, np.random.RandomState(0)],
    "verbose": [0, 2, True],
    "validation_fraction": ["auto", None, 0.1, 0.25],
    "patience": [1, 3],
    "body_lr_factor": [0.0, 0.1, 1],
    "weight_decay": [0.0, 1e-4],
    "callbacks": [None, [], [EarlyStopping()], [("auc", EpochScoring("roc_auc"))]],
    "amp": ["auto", True, False],
    "standardize": [True, False],
    "memory": [None, "/tmp/cache", joblib.Memory(None, verbose=0)],
    "in_chans": [1, 3],
    "equalize": [True, False],
    "detail_size": ["auto", None, 8, 128, 224],
    "accelerator": [None, True, {"mixed_precision": "bf16"}, _Accelerator()],
    "checkpoint_dir": [None, "/tmp/checkpoints"],
    "resume": [False],
    "compile": [True, False],
    "label_smoothing": [0.0, 0.1],
    "ema": [None, 0.5, 2],
    "tta": [False, True, (1.0, 0.9), [0.8], np.array([1.0, 0.85])],
    "adaptation": ["auto", None, "coral", "standardize", "adabn", "deepcoral"],
    "coral_weight": [0.0, 1.0, 5],
}


def test_constraints_cover_every_parameter():
    assert set(DOCUMENTED) == set(PretrainedCNNClassifier().get_params(deep=False))
    assert set(PretrainedFeatures._parameter_constraints) == set(
        PretrainedFeatures().get_params(deep=False)
    )


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_values_pass_the_checks(name):
    for value in DOCUMENTED[name]:
        clf = PretrainedCNNClassifier(**{name: value})
        clf._validate_params()
        clf._check_param_details()
        if name in PretrainedFeatures._parameter_constraints:
            PretrainedFeatures(**{name: value})._validate_params()


def test_resume_with_a_checkpoint_dir_passes(tmp_path):
    clf = PretrainedCNNClassifier(resume=True, checkpoint_dir=tmp_path)
    clf._validate_params()
    clf._check_param_details()


# ------------------------------------------ checks beyond the constraints
@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"hidden_units": (8, 0)}, ValueError, r"hidden_units must be a tuple of "),
        ({"hidden_units": (8, True)}, ValueError, r"positive integers, got \(8, Tr"),
        ({"tta": (1.0, 0.2)}, ValueError, r"fractions in \[0.5, 1\], got \(1.0, 0.2"),
        ({"ema": True}, ValueError, "ema must be None or a positive number"),
        ({"callbacks": [3]}, ValueError, r"callbacks\[0\] must be a skorch callback"),
        (
            {"callbacks": [("a", EarlyStopping(), 1)]},
            ValueError,
            r"callbacks\[0\] must be a skorch callback or a \(name, callback\)",
        ),
        ({"resume": True}, ValueError, "resume=True needs checkpoint_dir"),
        ({"mode": "frozen"}, InvalidParameterError, "'mode' parameter"),
        ({"augment_copies": -1}, InvalidParameterError, "'augment_copies' param"),
        ({"augment_copies": 1.5}, InvalidParameterError, "'augment_copies' param"),
        ({"augment_copies": 101}, InvalidParameterError, r"range \[0, 100\]"),
        ({"augment_copies": True}, ValueError, "augment_copies must be a number"),
        ({"augment_copies": "auto"}, InvalidParameterError, "'augment_copies' pa"),
        ({"backbone": 3}, InvalidParameterError, "'backbone' parameter"),
        ({"device": 0}, InvalidParameterError, "'device' parameter"),
        ({"device": "gpu"}, ValueError, r"Unknown device 'gpu'"),
        ({"backbone": "resnet81"}, ValueError, r"Did you mean 'resnet18'"),
    ],
)
def test_bad_values_are_refused_before_any_work(params, error, match):
    X = np.zeros((4, 32, 32), dtype=np.uint8)
    with pytest.raises(error, match=match):
        _tiny_classifier(**params).fit(X, np.array([0, 1, 0, 1]))


def test_param_error_leaves_a_fitted_model_as_it_was(make_blobs):
    X, y, _ = make_blobs(n=8)
    clf = _tiny_classifier(mode="features").fit(X, y)
    proba = clf.predict_proba(X)
    clf.set_params(dropout=2.0)
    with pytest.raises(InvalidParameterError, match="'dropout' parameter"):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


# ------------------------------------------- callbacks__* in get/set_params
def _with_callbacks():
    return PretrainedCNNClassifier(
        final_estimator=LogisticRegression(C=0.5),
        callbacks=[
            EarlyStopping(patience=5),
            ("auc", EpochScoring("roc_auc", lower_is_better=False)),
        ],
    )


def test_get_params_shows_what_set_params_accepts():
    clf = _with_callbacks()
    deep = clf.get_params(deep=True)
    assert deep["callbacks__EarlyStopping"] is clf.callbacks[0]
    assert deep["callbacks__EarlyStopping__patience"] == 5
    assert deep["callbacks__auc__scoring"] == "roc_auc"
    assert deep["final_estimator__C"] == 0.5
    assert set(clf.get_params(deep=False)) < set(deep)
    assert not any(k.startswith("callbacks__") for k in clf.get_params(deep=False))

    clf.set_params(callbacks__EarlyStopping__patience=7, callbacks__auc__name="a")
    deep = clf.get_params(deep=True)
    assert deep["callbacks__EarlyStopping__patience"] == 7
    assert deep["callbacks__auc__name"] == "a"


def test_deep_params_round_trip_and_clone():
    clf = _with_callbacks()
    before = clf.get_params(deep=True)
    clf.set_params(**before)
    after = clf.get_params(deep=True)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value or after[key] == value, key

    copy = clone(clf.set_params(callbacks__EarlyStopping__patience=9))
    deep = copy.get_params(deep=True)
    assert deep.keys() == after.keys()
    assert deep["callbacks__EarlyStopping__patience"] == 9
    assert deep["callbacks__EarlyStopping"] is not clf.callbacks[0]
    assert deep["callbacks__auc__lower_is_better"] is False


def test_grid_over_callback_params_sets_each_candidate():
    clf = _with_callbacks()
    grid = ParameterGrid({"callbacks__EarlyStopping__patience": [1, 4]})
    seen = [
        clone(clf).set_params(**params).callbacks[0].patience for params in grid
    ]
    assert seen == [1, 4]
    assert clf.callbacks[0].patience == 5  # the template is untouched


def test_set_params_replaces_or_removes_a_named_callback():
    clf = _with_callbacks()
    new = EpochScoring("accuracy", name="acc")
    clf.set_params(callbacks__auc=new)
    assert clf.callbacks[1] == ("auc", new)
    assert clf.get_params()["callbacks__auc__scoring"] == "accuracy"
    # replace, then tune the replacement, in one call
    clf.set_params(
        callbacks__EarlyStopping=EarlyStopping(patience=2),
        callbacks__EarlyStopping__threshold=0.1,
    )
    assert clf.callbacks[0].patience == 2 and clf.callbacks[0].threshold == 0.1
    clf.set_params(callbacks__auc=None)
    assert [name for name, _ in clf._named_callbacks()] == ["EarlyStopping"]
    assert "callbacks__auc" not in clf.get_params()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"callbacks__nope__x": 1}, r"No callback named 'nope'.*\['EarlyStopping', "),
        ({"callbacks__nope": EarlyStopping()}, r"No callback named 'nope'"),
        ({"callbacks__EarlyStopping__bogus": 1}, r"Invalid parameter 'bogus'"),
    ],
)
def test_set_params_refuses_what_get_params_cannot_show(params, match):
    with pytest.raises(ValueError, match=match):
        _with_callbacks().set_params(**params)


def test_callback_without_set_params_is_named():
    class OnlyGetParams:
        def get_params(self, deep=True):
            return {}

    clf = PretrainedCNNClassifier(callbacks=[("odd", OnlyGetParams())])
    assert clf.get_params()["callbacks__odd"] is clf.callbacks[0][1]
    with pytest.raises(ValueError, match=r"callbacks__odd=<callback> instead"):
        clf.set_params(callbacks__odd__x=1)


def test_get_params_survives_malformed_callbacks():
    """set_params and the error messages read get_params: it must not fail."""
    clf = PretrainedCNNClassifier(callbacks=[3, ("x",), EarlyStopping()])
    assert "callbacks__EarlyStopping" in clf.get_params()
    clf.set_params(callbacks="not a list")
    assert clf.get_params()["callbacks"] == "not a list"


def test_set_callback_params_reach_the_fitted_net(make_blobs):
    X, y, _ = make_blobs(n=8)
    scoring = EpochScoring("accuracy", on_train=True, name="train_acc")
    template = _tiny_classifier(callbacks=[("train_acc", scoring)], random_state=0)
    clf = clone(template).set_params(callbacks__train_acc__name="acc_on_train")
    clf.fit(X, y)
    assert "acc_on_train" in clf.history_[-1]
    assert scoring.name == "train_acc"  # the template's callback is untouched
