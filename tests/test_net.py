"""The skorch net, its one factory, the built-in callbacks, the shared docs."""

import os

import pytest
import torch
from skorch.callbacks import EarlyStopping, EpochScoring

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures
from sklearn_cxr._callbacks import VALID_AUC, finetune_callbacks
from sklearn_cxr._net import DeepCoralSkorchNet, SkorchNet, make_net, resolve_amp
from sklearn_cxr._param_docs import SHARED_PARAM_DOCS, fill_param_docs

RELEASE1 = os.path.join(os.path.dirname(__file__), "data", "release1")


def test_amp_rule():
    assert resolve_amp("auto", "cuda") and resolve_amp("auto", "cuda:1")
    assert not resolve_amp("auto", "cpu")
    assert resolve_amp(True, "cpu") and not resolve_amp(False, "cuda")


def test_make_net_defaults_and_overrides():
    module = torch.nn.Linear(3, 2)
    net = make_net(
        module, n_classes=2, device="cpu", amp="auto", batch_size=4,
        num_workers=0, lr=0.5,
    )
    assert type(net) is SkorchNet and net.module is module
    assert net.classes == [0, 1] and net.batch_size == 4 and net.lr == 0.5
    assert net.amp is False and net.train_split is None and net.verbose == 0
    assert net.criterion__reduction == "none"  # the per-sample weighted loss
    coral = make_net(
        module, n_classes=3, device="cpu", amp=True, batch_size=2,
        num_workers=0, net_class=DeepCoralSkorchNet, coral_weight=2.0,
    )
    assert type(coral) is DeepCoralSkorchNet and coral.coral_weight == 2.0
    assert coral.amp is True and coral.classes == [0, 1, 2]
    # under Accelerate: no placement, the DataLoaders of this process's device
    placed_elsewhere = make_net(
        module, n_classes=2, device=None, amp=False, batch_size=2,
        num_workers="auto", loader_device="cpu",
    )
    assert placed_elsewhere.device is None
    assert placed_elsewhere.iterator_train__num_workers == 0
    assert placed_elsewhere.iterator_valid__pin_memory is False


def test_a_loaded_model_gets_the_net_fit_builds():
    model = PretrainedCNNClassifier.load(os.path.join(RELEASE1, "finetune.cxr"))
    net = model.net_
    assert type(net) is SkorchNet
    assert net.amp is resolve_amp(model.amp, model.device_)
    assert net.batch_size == model.batch_size
    assert net.classes == [0, 1] and not net.module_.training


def test_validation_auc_has_one_name():
    names = dict(
        finetune_callbacks(
            steps_per_epoch=3, freeze_epochs=1, max_epochs=2, validate=True,
            patience=2, ema=None, verbose=0,
        )
    )
    assert isinstance(names[VALID_AUC], EpochScoring)
    assert names[VALID_AUC].name == VALID_AUC
    assert isinstance(names["early_stopping"], EarlyStopping)
    assert names["early_stopping"].monitor == VALID_AUC
    without = dict(
        finetune_callbacks(
            steps_per_epoch=3, freeze_epochs=1, max_epochs=2, validate=False,
            patience=2, ema=0.5, verbose=1,
        )
    )
    assert VALID_AUC not in without and "early_stopping" not in without
    assert {"weight_averaging", "progress_bar", "lr_schedule"} <= set(without)


def test_tuning_prunes_on_the_same_column():
    pytest.importorskip("optuna")
    from sklearn_cxr.tuning import OptunaPruningCallback

    assert OptunaPruningCallback(trial=None).monitor == VALID_AUC


@pytest.mark.parametrize("cls", [PretrainedCNNClassifier, PretrainedFeatures])
def test_shared_parameters_are_documented_once(cls):
    doc = cls.__doc__
    assert "%(" not in doc
    for name, entry in SHARED_PARAM_DOCS.items():
        assert name in cls._get_param_names()
        # the entry, indented as a numpydoc parameter of the class
        assert "\n".join("    " + line for line in entry.splitlines()) in doc


def test_fill_param_docs_leaves_other_text_alone():
    doc = "Text.\n\n    %(in_chans)s\n    other : int\n        Kept 100%.\n"
    filled = fill_param_docs(doc)
    assert filled.startswith("Text.\n\n    in_chans : {1, 3}, default=3\n")
    assert filled.endswith("    other : int\n        Kept 100%.\n")
    assert fill_param_docs(None) is None
