"""Small helpers shared by the estimators: device, seeding, data loaders."""

from __future__ import annotations

import logging
import os
import random
from contextlib import contextmanager

import numpy as np
import torch

__all__ = [
    "resolve_num_workers",
    "resolve_device",
    "seed_everything",
    "make_loader",
    "check_random_seed",
    "explain_out_of_memory",
    "fitted_device",
    "to_builtin",
]

logger = logging.getLogger(__name__)


def fitted_device(fitted_on):
    """The device a loaded model runs on: the one it was fitted on, or the CPU
    (with a warning) when that was CUDA and this machine has none."""
    if str(fitted_on).startswith("cuda") and not torch.cuda.is_available():
        logger.warning(
            "Model fitted on %s loaded on a machine without CUDA: using the CPU.",
            fitted_on,
        )
        return "cpu"
    return str(fitted_on)


def resolve_device(device):
    """Turn ``"auto"`` into ``"cuda"`` or ``"cpu"`` and check the request."""
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='auto' or 'cpu'."
        )
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    return device


def check_random_seed(random_state):
    """Return an int seed from ``random_state`` (None draws one)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    raise ValueError(
        f"random_state must be None, an int or a RandomState, got {random_state!r}."
    )


def seed_everything(seed):
    """Seed Python, numpy and torch so that CPU runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_num_workers(num_workers, device):
    """Turn ``"auto"`` into a worker count: several on CUDA, none on the CPU.

    On the CPU the network, not decoding, is the bottleneck, and worker
    processes would compete with torch's threads for the same cores.
    """
    if num_workers == "auto":
        if str(device).startswith("cuda"):
            return min(4, os.cpu_count() or 1)
        return 0
    return num_workers


def make_loader(dataset, *, batch_size, num_workers, device, shuffle=False, seed=0):
    """A DataLoader with the settings that suit ``device``."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=str(device).startswith("cuda"),
        persistent_workers=False,
        generator=generator,
    )


@contextmanager
def explain_out_of_memory(batch_size, image_size):
    """Turn running out of memory on a batch into an error saying what to lower.

    Raises :class:`torch.OutOfMemoryError` (so code catching torch's error still
    does) with a message naming ``batch_size`` and ``image_size``.
    """
    try:
        yield
    except RuntimeError as exc:
        if not (
            isinstance(exc, torch.OutOfMemoryError)
            or "out of memory" in str(exc).lower()
        ):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise torch.OutOfMemoryError(
            f"Out of memory on a batch of {batch_size} images of {image_size}x"
            f"{image_size} pixels ({type(exc).__name__}: {exc}). Lower batch_size "
            "(memory grows linearly with it) or image_size (quadratically); on "
            "CUDA, amp=True also halves activation memory."
        ) from exc


def to_builtin(value):
    """A numpy scalar or array as the plain Python value JSON can hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
