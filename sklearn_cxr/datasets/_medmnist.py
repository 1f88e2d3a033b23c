"""MedMNIST's PneumoniaMNIST, a small re-packaging of the Kermany data."""

from __future__ import annotations

import os
import zipfile

import numpy as np
from sklearn.utils import Bunch

from ._base import RemoteFileMetadata, _data_subdir, _resolve_local_file

__all__ = ["fetch_pneumoniamnist", "load_pneumoniamnist"]

# MedMNIST+ record on Zenodo (doi:10.5281/zenodo.10519652). MedMNIST publishes
# MD5 digests only (medmnist/info.py, INFO["pneumoniamnist"]["MD5"],
# ["MD5_64"], ["MD5_128"], ["MD5_224"]), so MD5 is what is verified.
_ZENODO = "https://zenodo.org/records/10519652/files/{}?download=1"
PNEUMONIAMNIST_FILES = {
    28: RemoteFileMetadata(
        "pneumoniamnist.npz",
        _ZENODO.format("pneumoniamnist.npz"),
        "28209eda62fecd6e6a2d98b1501bb15f",
        "md5",
    ),
    64: RemoteFileMetadata(
        "pneumoniamnist_64.npz",
        _ZENODO.format("pneumoniamnist_64.npz"),
        "8f4eceb4ccffa70c672198ea285246c6",
        "md5",
    ),
    128: RemoteFileMetadata(
        "pneumoniamnist_128.npz",
        _ZENODO.format("pneumoniamnist_128.npz"),
        "05b46931834c231683c68f40c47b2971",
        "md5",
    ),
    224: RemoteFileMetadata(
        "pneumoniamnist_224.npz",
        _ZENODO.format("pneumoniamnist_224.npz"),
        "d6a3c71de1b945ea11211b03746c1fe1",
        "md5",
    ),
}

_SPLITS = ("train", "val", "test")

DESCR = """\
.. _pneumoniamnist_dataset:

PneumoniaMNIST (MedMNIST v2 / MedMNIST+)
----------------------------------------

**Data set characteristics:**

:Images: 5,856 pediatric chest radiographs of Kermany et al. (2018),
    center-cropped and resized to 28, 64, 128 or 224 pixels, grayscale uint8.
:Splits: train 4,708 / val 524 / test 624. MedMNIST split Kermany's training
    set 9:1 into train and val, and uses Kermany's test set as test.
:Classes: 0 = normal, 1 = pneumonia.
:Groups: none. The files carry no patient identifier, so train and val may
    share patients; only the test split is patient-disjoint from the others.
:Licence: CC BY 4.0.

.. topic:: References

    - Yang J. et al. (2023). MedMNIST v2 - A large-scale lightweight benchmark
      for 2D and 3D biomedical image classification. Scientific Data 10, 41.
    - Kermany D. S. et al. (2018). Cell 172(5), 1122-1131.
"""


def load_pneumoniamnist(path, *, split="train", return_X_y=False):
    """Read a PneumoniaMNIST ``.npz`` file, without checking its checksum.

    Any file with the MedMNIST schema is accepted: arrays
    ``{split}_images`` of shape ``(n, H, W)`` (uint8) and ``{split}_labels``
    of shape ``(n, 1)`` or ``(n,)`` holding 0 (normal) or 1 (pneumonia).

    Read more in :ref:`datasets`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    split : {"train", "val", "test"}, default="train"
    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With ``images`` (uint8, ``(n, H, W)``), ``target`` (int, 0 or 1),
        ``target_names`` (``["normal", "pneumonia"]``) and ``DESCR``.

    (images, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an ``.npz`` archive or misses or mangles the split.

    See Also
    --------
    fetch_pneumoniamnist : the checksum-verified official files.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_cxr.datasets import load_pneumoniamnist
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> np.savez(path, train_images=np.zeros((3, 28, 28), np.uint8),
    ...          train_labels=np.array([[0], [1], [1]]))
    >>> X, y = load_pneumoniamnist(path, return_X_y=True)
    >>> X.shape, y.tolist()
    ((3, 28, 28), [0, 1, 1])
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}.")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PneumoniaMNIST file not found: {path!r}.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path!r} is not a readable .npz file ({exc}); delete it and fetch "
            "it again."
        ) from exc
    with archive:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise ValueError(
                f"{path!r} has no array(s) {missing} (it holds "
                f"{sorted(archive.files)}); a PneumoniaMNIST file has "
                "{train,val,test}_images and {train,val,test}_labels."
            )
        images = archive[keys[0]]
        labels = archive[keys[1]]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{keys[0]} in {path!r} has shape {images.shape} and dtype "
            f"{images.dtype}; expected (n, H, W) uint8 grayscale images."
        )
    labels = np.asarray(labels)
    stored_shape = labels.shape
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{keys[1]} in {path!r} has shape {stored_shape}; expected "
            f"({images.shape[0]},) or ({images.shape[0]}, 1) to match the images."
        )
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise ValueError(
            f"{keys[1]} in {path!r} holds {labels[bad][0].item()!r} at index "
            f"{int(np.flatnonzero(bad)[0])}; PneumoniaMNIST labels are 0 or 1."
        )
    target = labels.astype(int)
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        target=target,
        target_names=np.array(["normal", "pneumonia"]),
        DESCR=DESCR,
    )


def fetch_pneumoniamnist(
    *,
    size=28,
    split="train",
    data_home=None,
    download_if_missing=True,
    return_X_y=False,
):
    """Download (if needed), verify and load MedMNIST's PneumoniaMNIST.

    The official ``.npz`` of the requested size is taken from the MedMNIST+
    Zenodo record (doi:10.5281/zenodo.10519652) into
    ``get_data_home()/medmnist``. Whether downloaded or found in the cache,
    its MD5 is checked against the value MedMNIST publishes (MedMNIST
    publishes MD5 digests, not SHA256).

    Read more in :ref:`datasets`.

    Parameters
    ----------
    size : {28, 64, 128, 224}, default=28
        Side of the images in pixels.
    split : {"train", "val", "test"}, default="train"
        4,708, 524 and 624 images.
    data_home : str or os.PathLike, default=None
        Cache folder; see :func:`get_data_home`.
    download_if_missing : bool, default=True
        If False, raise an error naming where to put the file instead of
        downloading it.
    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch` or tuple
        As returned by :func:`load_pneumoniamnist`.

    Raises
    ------
    FileNotFoundError
        If the file is not cached and ``download_if_missing=False``; the
        message names the path where to put it.
    ChecksumError
        If the cached or downloaded file does not have the published MD5.
    """
    if isinstance(size, bool) or size not in PNEUMONIAMNIST_FILES:
        raise ValueError(
            f"size must be one of {sorted(PNEUMONIAMNIST_FILES)}, got {size!r}."
        )
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}.")
    remote = PNEUMONIAMNIST_FILES[size]
    path = _resolve_local_file(
        remote,
        _data_subdir(data_home, "medmnist"),
        download_if_missing=download_if_missing,
    )
    return load_pneumoniamnist(path, split=split, return_X_y=return_X_y)
