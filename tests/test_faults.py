"""Faults: interrupted fits, killed processes, out-of-memory, repeatability."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import TinyNet, tiny_params
from skorch.callbacks import Callback

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures
from sklearn_cxr._backbones import CXRNetwork

TESTS_DIR = Path(__file__).resolve().parent

# Weights seen at the end of each epoch, by callbacks that sklearn.clone copies.
_SEEN = {}


class _Interrupt(Callback):
    """Raise KeyboardInterrupt at the end of ``epoch``, or after the first
    training batch of ``epoch`` when ``mid_epoch``; record each epoch's weights."""

    def __init__(self, epoch=2, mid_epoch=False):
        self.epoch = epoch
        self.mid_epoch = mid_epoch

    def on_epoch_end(self, net, **kwargs):
        _SEEN[len(net.history)] = {
            k: v.detach().clone() for k, v in net.module_.state_dict().items()
        }
        if not self.mid_epoch and len(net.history) == self.epoch:
            raise KeyboardInterrupt

    def on_batch_end(self, net, training=False, **kwargs):
        if self.mid_epoch and training and len(net.history) == self.epoch:
            raise KeyboardInterrupt


def _classifier(**overrides):
    params = {"max_epochs": 4, "validation_fraction": None, "batch_size": 4}
    params.update(overrides)
    return PretrainedCNNClassifier(**tiny_params(**params))


def _assert_weights(module, expected):
    state = module.state_dict()
    assert state.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


@pytest.mark.parametrize("mid_epoch", [False, True], ids=["epoch-end", "mid-epoch"])
def test_interrupt_keeps_the_last_completed_epoch(mid_epoch, make_blobs):
    """Ctrl-C in epoch 3 (mid-epoch) or at epoch 2's end: the model is epoch 2's."""
    _SEEN.clear()
    X, y, _ = make_blobs(n=16)
    interrupt_at = 3 if mid_epoch else 2
    clf = _classifier(callbacks=[_Interrupt(interrupt_at, mid_epoch)])
    assert clf.fit(X, y) is clf
    assert list(clf.classes_) == ["NORMAL", "PNEUMONIA"]
    assert len(clf.history_) == 2
    assert clf.history_[-1, "epoch"] == 2
    assert "train_loss" in clf.history_[-1]
    _assert_weights(clf.module_, _SEEN[2])
    proba = clf.predict_proba(X)
    assert proba.shape == (16, 2) and np.isfinite(proba).all()
    assert set(clf.predict(X)) <= {"NORMAL", "PNEUMONIA"}


def test_interrupt_before_any_epoch_keeps_the_previous_model(make_blobs):
    X, y, _ = make_blobs(n=16)
    clf = _classifier(max_epochs=1).fit(X, y)
    proba = clf.predict_proba(X)
    net = clf.net_
    clf.set_params(callbacks=[_Interrupt(1, mid_epoch=True)], max_epochs=3)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert clf.net_ is net
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    unfitted = _classifier(callbacks=[_Interrupt(1, mid_epoch=True)])
    with pytest.raises(KeyboardInterrupt):
        unfitted.fit(X, y)
    assert not hasattr(unfitted, "classes_")


# --------------------------------------------------- kill and resume
_TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {tests_dir!r})
    import numpy as np
    from skorch.callbacks import Callback
    from _helpers import make_blobs, tiny_params
    from sklearn_cxr import PretrainedCNNClassifier

    class Report(Callback):
        # prints each epoch as it starts; sleeps at the start of epoch 2 of the
        # first run so that the kill lands after epoch 1 was saved
        def __init__(self, sleep=0.0):
            self.sleep = sleep

        def on_epoch_begin(self, net, **kwargs):
            print("epoch", len(net.history), flush=True)
            if len(net.history) == 2:
                time.sleep(self.sleep)

    checkpoint_dir, resume, out = sys.argv[1], sys.argv[2] == "resume", sys.argv[3]
    X, y, _ = make_blobs(n=16)
    clf = PretrainedCNNClassifier(
        **tiny_params(
            max_epochs=4, validation_fraction=None, batch_size=4,
            checkpoint_dir=checkpoint_dir, resume=resume,
            callbacks=[Report(0.0 if resume else 600.0)],
        )
    )
    clf.fit(X, y)
    json.dump({{
        "history": clf.history_.to_list(),
        "proba": clf.predict_proba(X).tolist(),
    }}, open(out, "w"))
    """
)


def _wait_for(predicate, process, timeout=240):
    start = time.monotonic()
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(
                f"training process ended early ({process.returncode}): "
                + process.stdout.read()
            )
        if time.monotonic() - start > timeout:
            process.kill()
            raise AssertionError("no epoch checkpoint appeared in time")
        time.sleep(0.1)


def _epoch_file(checkpoint_dir, name="history.json"):
    """A file of the epoch that ``checkpoint.json`` names."""
    pointer = json.loads((Path(checkpoint_dir) / "checkpoint.json").read_text())
    return Path(checkpoint_dir) / pointer["folder"] / name


def _batch_lrs(history):
    return [b["event_lr"] for epoch in history for b in epoch["batches"]]


def test_killed_training_resumes_from_the_last_epoch(tmp_path, make_blobs):
    script = tmp_path / "train.py"
    script.write_text(_TRAIN_SCRIPT.format(tests_dir=str(TESTS_DIR)))
    checkpoint_dir = tmp_path / "checkpoints"

    def saved_epochs():
        try:
            return len(json.loads(_epoch_file(checkpoint_dir).read_text()))
        except (OSError, ValueError, KeyError):
            return 0

    first = subprocess.Popen(
        [sys.executable, str(script), str(checkpoint_dir), "first", "unused"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: saved_epochs() >= 1, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    log_first = first.stdout.read()
    assert "epoch 1" in log_first
    assert saved_epochs() == 1
    assert not list(checkpoint_dir.glob(".tmp*"))
    assert len(list(checkpoint_dir.glob("epoch-*"))) == 1  # older epochs removed
    saved = json.loads(_epoch_file(checkpoint_dir).read_text())

    out = tmp_path / "resumed.json"
    resumed = subprocess.run(
        [sys.executable, str(script), str(checkpoint_dir), "resume", str(out)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    started = [int(line.split()[1]) for line in resumed.stdout.splitlines()
               if line.startswith("epoch ")]
    assert started == [2, 3, 4], resumed.stdout
    result = json.loads(out.read_text())
    history = result["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[0]["train_loss"] == saved[0]["train_loss"]
    assert all(np.isfinite(row["train_loss"]) for row in history)
    proba = np.asarray(result["proba"])
    assert proba.shape == (16, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # The learning-rate schedule continues where it stopped: the same
    # per-batch learning rates as a fit that was never interrupted.
    X, y, _ = make_blobs(n=16)
    uninterrupted = _classifier().fit(X, y)
    assert _batch_lrs(history) == pytest.approx(
        _batch_lrs(uninterrupted.history_.to_list())
    )


def test_resume_with_an_empty_folder_trains_from_the_start(tmp_path, make_blobs):
    X, y, _ = make_blobs(n=16)
    clf = _classifier(max_epochs=2, checkpoint_dir=tmp_path / "new", resume=True)
    clf.fit(X, y)
    assert len(clf.history_) == 2
    assert json.loads(_epoch_file(tmp_path / "new").read_text())[-1]["epoch"] == 2
    again = _classifier(max_epochs=2, checkpoint_dir=tmp_path / "new", resume=True)
    again.fit(X, y)  # nothing left to do: the saved model is loaded as is
    assert len(again.history_) == 2
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X))


def test_resume_refuses_a_damaged_checkpoint(tmp_path, make_blobs):
    X, y, _ = make_blobs(n=16)
    _classifier(max_epochs=1, checkpoint_dir=tmp_path).fit(X, y)
    _epoch_file(tmp_path, "params.pt").write_bytes(b"not a checkpoint")
    clf = _classifier(max_epochs=2, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"Cannot resume from the checkpoint in .*"
                       r"damaged"):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_")


def test_resume_refuses_the_checkpoint_of_another_fit(tmp_path, make_blobs):
    """One checkpoint_dir across cross-validation folds must not let fold 2
    continue fold 1's model: other data or parameters are refused."""
    X, y, _ = make_blobs(n=16)
    _classifier(max_epochs=1, checkpoint_dir=tmp_path).fit(X[:12], y[:12])
    others = [
        ({}, (X[4:], y[4:])),  # another fold
        ({}, (X[:12][::-1], y[:12][::-1])),  # same images, other order
        ({"lr": 0.01}, (X[:12], y[:12])),  # another parameter
        ({}, (X[:12], np.resize(["a", "b", "c"], 12))),  # other classes
    ]
    for params, (X_other, y_other) in others:
        clf = _classifier(max_epochs=2, checkpoint_dir=tmp_path, resume=True, **params)
        with pytest.raises(ValueError, match=r"saved by a fit on other data or"):
            clf.fit(X_other, y_other)
        assert not hasattr(clf, "classes_")
    same = _classifier(max_epochs=2, checkpoint_dir=tmp_path, resume=True, verbose=0)
    assert len(same.fit(X[:12], y[:12]).history_) == 2


def test_checkpoint_parameters_are_checked(tmp_path, make_blobs):
    X, y, _ = make_blobs(n=16)
    with pytest.raises(ValueError, match=r"resume=True needs checkpoint_dir"):
        _classifier(resume=True).fit(X, y)
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(ValueError, match=r"checkpoint_dir='.*file\.txt' is a file"):
        _classifier(checkpoint_dir=a_file).fit(X, y)
    with pytest.raises(TypeError, match=r"'checkpoint_dir' parameter .* 'str'"):
        _classifier(checkpoint_dir=3).fit(X, y)


# --------------------------------------------------------- out of memory
def _raise_oom(exc):
    def forward(self, *args, **kwargs):
        raise exc

    return forward


_OOM_ERRORS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                 "can't allocate memory: you tried to allocate 1 bytes. "
                 "Error code 12 (Cannot allocate memory) out of memory"),
]
_ADVICE = r"Out of memory on a batch of 4 images of 32x32 pixels.*Lower batch_size"


@pytest.mark.parametrize("exc", _OOM_ERRORS, ids=["torch-oom", "runtime-error"])
def test_out_of_memory_in_fit_says_what_to_lower(exc, monkeypatch, make_blobs):
    X, y, _ = make_blobs(n=16)
    clf = _classifier(max_epochs=1).fit(X, y)
    proba = clf.predict_proba(X)
    monkeypatch.setattr(CXRNetwork, "forward", _raise_oom(exc))
    with pytest.raises(torch.OutOfMemoryError, match=_ADVICE + r".*image_size"):
        clf.fit(X, y)
    with pytest.raises(torch.OutOfMemoryError, match=_ADVICE):
        clf.predict(X)
    monkeypatch.undo()
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


@pytest.mark.parametrize("exc", _OOM_ERRORS, ids=["torch-oom", "runtime-error"])
def test_out_of_memory_in_features_says_what_to_lower(exc, monkeypatch, make_blobs):
    X, y, _ = make_blobs(n=16)
    features = PretrainedFeatures(**tiny_params(batch_size=4)).fit()
    clf = _classifier(mode="features").fit(X, y)
    monkeypatch.setattr(TinyNet, "forward", _raise_oom(exc))
    with pytest.raises(torch.OutOfMemoryError, match=_ADVICE):
        features.transform(X)
    with pytest.raises(torch.OutOfMemoryError, match=_ADVICE):
        clf.predict_proba(X)


def test_other_runtime_errors_pass_through(monkeypatch, make_blobs):
    X, y, _ = make_blobs(n=16)
    monkeypatch.setattr(CXRNetwork, "forward", _raise_oom(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match=r"^boom$"):
        _classifier(max_epochs=1).fit(X, y)


# ----------------------------------------------------------- repeatability
@pytest.mark.parametrize("mode", ["finetune", "features"])
def test_same_seed_same_predictions_on_cpu(mode, make_blobs):
    """Seeds cover head init, validation split, shuffling and augmentation
    (finetune) and the random backbone weights (features, resnet18)."""
    X, y, groups = make_blobs(n=20)
    params = {
        "backbone": TinyNet() if mode == "finetune" else "resnet18",
        "weights": None,
        "image_size": 32,
        "max_epochs": 2,
        "batch_size": 8,
        "mode": mode,
        "validation_fraction": 0.2,
        "device": "cpu",
    }
    first = PretrainedCNNClassifier(random_state=7, **params).fit(X, y, groups)
    second = PretrainedCNNClassifier(random_state=7, **params).fit(X, y, groups)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    if mode == "finetune":
        other = PretrainedCNNClassifier(random_state=8, **params).fit(X, y, groups)
        assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


# ------------------------------------------- the checkpoint file protocol
class _Killed(BaseException):
    """Stands in for SIGKILL at one precise point of a checkpoint write."""


_RECORDS = {}  # module level: the classifier clones its callbacks


class _RecordEpochs(Callback):
    """Weights at each epoch's end, and those a resumed fit starts from."""

    def __init__(self, run):
        self.run = run

    def on_train_begin(self, net, **kwargs):
        _RECORDS.setdefault(self.run, {})["start"] = (
            len(net.history), _weights_of(net)
        )

    def on_epoch_end(self, net, **kwargs):
        _RECORDS.setdefault(self.run, {})[len(net.history)] = _weights_of(net)


def _weights_of(net):
    return {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


def test_kill_between_renames_resumes_one_whole_epoch(
    tmp_path, monkeypatch, make_blobs
):
    """A kill between two renames of a checkpoint write, in epoch 2 or 3, must
    leave files of one single epoch: resume starts from that epoch's weights
    with that epoch's history, never epoch-2 weights with epoch-1 history."""
    X, y, _ = make_blobs(n=16)
    _RECORDS.clear()
    seen = _RECORDS.setdefault("killed", {})
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        if seen.get(2) is not None:  # armed once epoch 2 has ended
            calls.append(dst)
            if len(calls) == 2:
                raise _Killed
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        _classifier(max_epochs=3, checkpoint_dir=tmp_path, freeze_epochs=0,
                    callbacks=[_RecordEpochs("killed")]).fit(X, y)
    monkeypatch.setattr(os, "replace", real_replace)
    clf = _classifier(max_epochs=3, checkpoint_dir=tmp_path, resume=True,
                      freeze_epochs=0, callbacks=[_RecordEpochs("resumed")])
    clf.fit(X, y)
    epoch, weights = _RECORDS["resumed"]["start"]
    assert epoch in (1, 2)
    _assert_weights_equal(weights, seen[epoch])


def _assert_weights_equal(state, expected):
    assert state.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


def test_checkpoint_never_writes_through_planted_links(tmp_path, make_blobs):
    X, y, _ = make_blobs(n=16)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    names = ["params.pt", "optimizer.pt", "history.json", "lr_scheduler.pt",
             "fit.json", "checkpoint.json"]
    for name in names:
        for planted in (name, name + ".tmp"):
            (folder / planted).symlink_to(victim)
    clf = _classifier(max_epochs=2, checkpoint_dir=folder).fit(X, y)
    assert victim.read_text() == "precious"
    assert len(clf.history_) == 2
    assert not (folder / "checkpoint.json").is_symlink()


def test_failed_checkpoint_write_leaves_no_temporary_files(
    tmp_path, monkeypatch, make_blobs
):
    X, y, _ = make_blobs(n=16)
    _classifier(max_epochs=1, checkpoint_dir=tmp_path).fit(X, y)
    before = sorted(p.name for p in tmp_path.iterdir())
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "lr_scheduler.pt" in str(f):
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"Cannot write the epoch checkpoint to .*"
                       r"No space left"):
        _classifier(max_epochs=1, checkpoint_dir=tmp_path).fit(X, y)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".tmp*"))
