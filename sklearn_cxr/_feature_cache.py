"""Per-image cache of embeddings, shared across folds, candidates and processes.

The cache lives under a ``joblib.Memory`` location (or a plain folder):
``<location>/sklearn_cxr_embeddings/<config hash>/``. The config hash covers
everything that changes an embedding except the image (see
``PretrainedFeatures._config``); inside that folder each image is keyed by the
SHA-256 of its content. Keying images one by one (not the set passed to
``transform``) means that the folds of a cross-validation, whose subsets
differ, still share one backbone pass over the data.

Entries are written as ``.npz`` shards (digests + float32 embeddings), each
written to a temporary file and renamed, so concurrent workers (``n_jobs>1``)
never read a partial shard: temporary names (``.tmp-*``) are never read. They
are read with ``allow_pickle=False``; a shard that cannot be read (0 bytes,
truncated, a bad CRC) counts as missing, so its images are embedded again.
A cache that cannot be written (a full disk) is reported with a warning naming
the folder, and the embeddings just computed are returned all the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings

import joblib
import numpy as np

__all__ = ["cache_folder", "cached_embed", "memory_location", "state_digest"]

logger = logging.getLogger(__name__)

_SUBDIR = "sklearn_cxr_embeddings"


def memory_location(memory):
    """The folder of ``memory`` (str, PathLike, joblib.Memory or None)."""
    if memory is None:
        return None
    if isinstance(memory, (str, os.PathLike)):
        return os.fspath(memory)
    if hasattr(memory, "location"):
        location = memory.location
        return None if location is None else os.fspath(location)
    raise ValueError(
        f"memory must be None, a folder path or a joblib.Memory, got "
        f"{type(memory).__name__}: {memory!r}."
    )


def cache_folder(location, config):
    """The folder holding the embeddings of one backbone configuration."""
    return os.path.join(location, _SUBDIR, joblib.hash(config))


def _digests(images):
    return np.asarray(
        [
            np.frombuffer(hashlib.sha256(item).digest(), dtype=np.uint8)
            for item in images.fingerprint_items()
        ],
        dtype=np.uint8,
    ).reshape(len(images), 32)


def _read_shards(folder, width):
    index = {}
    if not os.path.isdir(folder):
        return index
    for name in sorted(os.listdir(folder)):
        # ".tmp-*" files are shards still being written by another process
        if name.startswith(".") or not name.endswith(".npz"):
            continue
        try:
            with np.load(os.path.join(folder, name), allow_pickle=False) as shard:
                digests, embeddings = shard["digests"], shard["embeddings"]
        except Exception as exc:  # EOFError, BadZipFile, zlib.error, OSError...
            # a damaged shard counts as missing: its images are embedded again
            logger.warning(
                "Ignoring unreadable cache shard %s: %s: %s",
                os.path.join(folder, name),
                type(exc).__name__,
                exc,
            )
            continue
        if (
            embeddings.ndim != 2
            or embeddings.shape[1] != width
            or digests.shape != (len(embeddings), 32)
        ):
            continue
        for digest, row in zip(digests, embeddings):
            index[digest.tobytes()] = row
    return index


def _write_shard(folder, config, digests, embeddings):
    os.makedirs(folder, exist_ok=True)
    about = os.path.join(folder, "config.json")
    if not os.path.exists(about):
        with open(about, "w") as handle:
            json.dump(config, handle, indent=1, default=str)
    name = hashlib.sha256(digests.tobytes()).hexdigest()[:32] + ".npz"
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, digests=digests, embeddings=embeddings)
            out.flush()
            # on disk before the rename: a crash never leaves a named, empty shard
            os.fsync(out.fileno())
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def cached_embed(transformer, images, location):
    """Embeddings of ``images``, computing only those not in the cache.

    Parameters
    ----------
    transformer : PretrainedFeatures
        Fitted; its ``_config()`` names the cache folder and its ``_embed``
        computes missing embeddings.
    images : ImageCollection
    location : str
        Root folder of the cache.

    Returns
    -------
    embeddings : ndarray of shape (n_images, n_features_out_), float32
    """
    config = transformer._config()
    folder = cache_folder(location, config)
    width = transformer.n_features_out_
    digests = _digests(images)
    index = _read_shards(folder, width)
    out = np.empty((len(images), width), dtype=np.float32)
    missing = []
    for i, digest in enumerate(digests):
        row = index.get(digest.tobytes())
        if row is None:
            missing.append(i)
        else:
            out[i] = row
    logger.info(
        "Embedding cache %s: %d hits, %d misses",
        folder,
        len(images) - len(missing),
        len(missing),
    )
    if missing:
        # Duplicated images within the batch are embedded once.
        unique = {}
        for i in missing:
            unique.setdefault(digests[i].tobytes(), i)
        todo = np.fromiter(unique.values(), dtype=np.int64)
        computed = transformer._embed(images.take(todo))
        try:
            _write_shard(folder, config, digests[todo], computed)
        except OSError as exc:
            warnings.warn(
                f"Cannot write to the embedding cache folder {folder} "
                f"({type(exc).__name__}: {exc}); is its disk full? The "
                f"{len(todo)} embeddings just computed are returned but not "
                "cached. Free space there, or pass another memory= folder.",
                UserWarning,
                stacklevel=3,
            )
        rows = dict(zip(unique, computed))
        for i in missing:
            out[i] = rows[digests[i].tobytes()]
    return out


def state_digest(module):
    """SHA-256 of a module's tensors (names, dtypes, shapes and values).

    This is what makes the cache key follow the actual weights, whatever
    their source (a name whose meaning changes between library versions, a
    file, a seed, the 1-channel stem adaptation).
    """
    import torch

    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
