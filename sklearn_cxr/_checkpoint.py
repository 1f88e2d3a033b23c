"""Epoch checkpoints of a finetune fit, and resuming from them.

A fit with ``checkpoint_dir`` writes each whole epoch to a fresh folder and
then points ``checkpoint.json`` at it (:class:`EpochCheckpoint`); a fit with
``resume=True`` continues from the folder named there
(:class:`ResumeFromCheckpoint`), only if the checkpoint's fingerprint
(:func:`fit_fingerprint`) says it was written by the same fit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np
import torch
from skorch.callbacks import Checkpoint, LoadInitState

from ._atomic import atomic_path

__all__ = [
    "CHECKPOINT_FILE",
    "EpochCheckpoint",
    "ResumeFromCheckpoint",
    "add_checkpoint_callbacks",
    "fit_fingerprint",
    "read_checkpoint_pointer",
]

logger = logging.getLogger(__name__)

SCHEDULER_FILE = "lr_scheduler.pt"
# Names the folder of the last whole epoch; replaced atomically after each.
CHECKPOINT_FILE = "checkpoint.json"
# Parameters that may change between a killed fit and its resumption.
RESUMABLE_PARAMS = {
    "max_epochs",
    "resume",
    "checkpoint_dir",
    "callbacks",
    "verbose",
    "num_workers",
    "device",
    "memory",
    "random_state",
    "tta",  # predict-time only
}


def fit_fingerprint(estimator, images, y_encoded, classes, seed, groups, weights):
    """Identify a fit (data and parameters) so that only it can be resumed.

    Paths count by name, in-memory images by content. Without it, a
    cross-validation with one ``checkpoint_dir`` and ``resume=True`` would
    silently continue fold 1's model on fold 2.
    """
    params = {
        name: repr(value)
        for name, value in sorted(estimator.get_params(deep=False).items())
        if name not in RESUMABLE_PARAMS
    }
    if estimator.random_state is not None:
        params["random_state"] = seed
    digest = hashlib.sha256(repr((params, classes.tolist())).encode())
    digest.update(np.ascontiguousarray(y_encoded, dtype=np.int64).tobytes())
    for extra in (groups, weights):
        text = "-" if extra is None else repr(np.asarray(extra).tolist())
        digest.update(text.encode())
    if images.kind == "paths":
        items = (os.fspath(path).encode() + b"\0" for path in images.source)
    else:
        items = images.fingerprint_items()
    for item in items:
        digest.update(hashlib.sha256(item).digest())
    return digest.hexdigest()


class EpochCheckpoint(Checkpoint):
    """skorch's ``Checkpoint`` every epoch, written so that a kill cannot tear it.

    Each epoch's weights, optimizer, LR-schedule state and history go to a
    fresh folder made by ``mkdtemp`` (never a planted name or link). Only when
    all are written does ``checkpoint.json``, replaced atomically, name that
    folder, with the epoch and the fit's fingerprint; then the previous
    epoch's folder is removed. A kill at any moment leaves ``checkpoint.json``
    naming one whole epoch: never epoch-2 weights with epoch-1 history.
    """

    def __init__(self, dirname, fingerprint=None):
        super().__init__(
            monitor=None, dirname=dirname, f_criterion=None, event_name=None
        )
        self.fingerprint = fingerprint

    def save_model(self, net):
        epoch = len(net.history)
        scheduler = getattr(
            dict(net.callbacks_).get("lr_schedule"), "lr_scheduler_", None
        )
        folder = None
        try:
            os.makedirs(self.dirname, exist_ok=True)
            folder = tempfile.mkdtemp(dir=self.dirname, prefix=f"epoch-{epoch}-")
            net.save_params(
                f_params=os.path.join(folder, self.f_params),
                f_optimizer=os.path.join(folder, self.f_optimizer),
                f_history=os.path.join(folder, self.f_history),
            )
            if scheduler is not None:
                torch.save(
                    scheduler.state_dict(), os.path.join(folder, SCHEDULER_FILE)
                )
            for name in os.listdir(folder):
                with open(os.path.join(folder, name), "rb") as written:
                    os.fsync(written.fileno())
            pointer = {
                "epoch": epoch,
                "folder": os.path.basename(folder),
                "fingerprint": self.fingerprint,
            }
            with atomic_path(os.path.join(self.dirname, CHECKPOINT_FILE)) as tmp:
                with open(tmp, "w") as handle:
                    json.dump(pointer, handle)
        except BaseException as exc:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, Exception):
                raise
            raise OSError(
                f"Cannot write the epoch checkpoint to {self.dirname!r} "
                f"({type(exc).__name__}: {exc}). Check the free space and the "
                "permissions of checkpoint_dir, or pass checkpoint_dir=None."
            ) from exc
        # older epochs, and folders of writes that were killed half-way
        for name in os.listdir(self.dirname):
            path = os.path.join(self.dirname, name)
            if (
                name.startswith("epoch-")
                and path != folder
                and os.path.isdir(path)
                and not os.path.islink(path)
            ):
                shutil.rmtree(path, ignore_errors=True)


def read_checkpoint_pointer(dirname):
    """``checkpoint.json`` of ``dirname``: None if absent, else its content,
    checked; ValueError if it is damaged or names something odd."""
    path = os.path.join(dirname, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            pointer = json.load(handle)
        folder = pointer["folder"]
        epoch = pointer["epoch"]
        valid = (
            isinstance(folder, str)
            and folder.startswith("epoch-")
            and os.path.basename(folder) == folder
            and isinstance(epoch, int)
            and epoch >= 1
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        valid, folder = False, repr(exc)
    folder_path = os.path.join(dirname, folder) if valid else ""
    if not valid or os.path.islink(folder_path) or not os.path.isdir(folder_path):
        raise ValueError(
            f"Cannot resume from the checkpoint in {dirname!r}: its "
            f"{CHECKPOINT_FILE} is damaged or names no epoch folder. Delete the "
            "folder, pass another checkpoint_dir, or fit with resume=False."
        )
    return dict(pointer, folder=folder_path)


class ResumeFromCheckpoint(LoadInitState):
    """skorch's ``LoadInitState`` that also restores the LR schedule and, unlike
    it, fails loudly when a checkpoint exists but cannot be loaded."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.did_load_:
            return
        self.did_load_ = True
        checkpoint = self.checkpoint
        pointer = read_checkpoint_pointer(checkpoint.dirname)
        if pointer is None:
            if os.path.isfile(checkpoint.f_history_):
                raise ValueError(
                    f"The checkpoint in {checkpoint.dirname!r} was written by an "
                    "older sklearn_cxr, whose files could be left from different "
                    "epochs; it cannot be resumed safely. Delete it or fit with "
                    "resume=False."
                )
            logger.info(
                "No checkpoint in %r yet: training from the first epoch.",
                checkpoint.dirname,
            )
            return
        if pointer.get("fingerprint") != checkpoint.fingerprint:
            raise ValueError(
                f"The checkpoint in {checkpoint.dirname!r} was saved by a fit on "
                "other data or with other parameters. resume=True only continues "
                "that same fit (same X, y, groups, sample_weight and parameters; "
                "max_epochs may grow). Give each fit its own checkpoint_dir (one "
                "per cross-validation fold), or fit with resume=False."
            )
        folder = pointer["folder"]
        try:
            net.load_params(
                f_params=os.path.join(folder, checkpoint.f_params),
                f_optimizer=os.path.join(folder, checkpoint.f_optimizer),
                f_history=os.path.join(folder, checkpoint.f_history),
            )
            if len(net.history) != pointer["epoch"]:
                raise ValueError(
                    f"the history has {len(net.history)} epochs, the checkpoint "
                    f"is of epoch {pointer['epoch']}"
                )
            schedule = dict(net.callbacks_).get("lr_schedule")
            path = os.path.join(folder, SCHEDULER_FILE)
            if schedule is not None and os.path.isfile(path):
                state = torch.load(path, map_location="cpu", weights_only=True)
                # keep this fit's schedule (its max_epochs), restore the step
                state["lr_lambdas"] = [None] * len(state.get("lr_lambdas", ()))
                schedule.lr_scheduler_.load_state_dict(state)
                schedule.batch_idx_ = int(state.get("last_epoch", 0))
        except Exception as exc:
            raise ValueError(
                f"Cannot resume from the checkpoint in {checkpoint.dirname!r} "
                f"({type(exc).__name__}: {exc}). It was written by a model of "
                "another configuration (backbone, head, classes) or is damaged: "
                "delete it, pass another checkpoint_dir, or fit with resume=False."
            ) from exc
        net.resumed_at_epoch_ = len(net.history)
        logger.info(
            "Resuming from the checkpoint in %r after epoch %d of %d.",
            checkpoint.dirname,
            len(net.history),
            net.max_epochs,
        )


def add_checkpoint_callbacks(callbacks, checkpoint_dir, fingerprint, resume):
    """Append the epoch checkpoint to ``callbacks`` and, to resume, insert the
    resume step just after the LR schedule it restores.

    Parameters
    ----------
    callbacks : list of (name, callback)
        Changed in place.
    checkpoint_dir : str or os.PathLike
    fingerprint : str
        :func:`fit_fingerprint` of this fit.
    resume : bool
    """
    checkpoint = EpochCheckpoint(os.fspath(checkpoint_dir), fingerprint=fingerprint)
    callbacks.append(("epoch_checkpoint", checkpoint))
    if resume:
        at = [name for name, _ in callbacks].index("lr_schedule") + 1
        callbacks.insert(at, ("resume", ResumeFromCheckpoint(checkpoint)))
