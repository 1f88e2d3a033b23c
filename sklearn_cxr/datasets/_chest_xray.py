"""The pediatric chest X-ray data set of Kermany et al. (2018)."""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from sklearn.utils import Bunch

from .._image_files import list_image_files
from .._images import IMAGE_EXTENSIONS, read_image
from ._base import (
    RemoteFileMetadata,
    _data_subdir,
    _folder_lock,
    _resolve_local_file,
    _safe_extract,
)

__all__ = ["load_chest_xray", "fetch_chest_xray", "load_folder"]

logger = logging.getLogger(__name__)

CLASS_FOLDERS = ("NORMAL", "PNEUMONIA")
SUBTYPE_NAMES = ("normal", "bacterial", "viral")
_SUBTYPE_CODES = {"normal": 0, "bacteria": 1, "virus": 2}

# ChestXRay2017.zip of Mendeley Data, doi:10.17632/rscbjbr9sj.2. Mendeley does
# not publish a checksum of it and it could not be downloaded where this was
# written, so none is pinned: pass ``sha256=`` to fetch_chest_xray to enforce
# one; otherwise the SHA256 of the download is logged.
KERMANY_ARCHIVE = RemoteFileMetadata(
    filename="ChestXRay2017.zip",
    url=(
        "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
        "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded"
    ),
    checksum=None,
    algorithm="sha256",
)

_PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)_", re.IGNORECASE)
# IM-0115-0001.jpeg, IM-0429-0001-0002.jpeg, NORMAL2-IM-0381-0001.jpeg: the
# first number after IM- is the patient, what follows numbers the images.
_NORMAL_NAME = re.compile(r"^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)

DESCR = """\
.. _chest_xray_dataset:

Pediatric chest X-ray (pneumonia) data set
------------------------------------------

**Data set characteristics (official release, Mendeley Data v2):**

:Images: 5,856 frontal chest radiographs of children aged one to five,
    grayscale, 400 to 2,900 pixels a side, JPEG.
:Classes: NORMAL and PNEUMONIA; PNEUMONIA file names say bacterial or viral.
:Training split: 5,232 images (1,349 NORMAL, 3,883 PNEUMONIA). The widely
    used Kaggle copy moves 16 of them to a ``val`` folder, leaving 5,216
    (1,341 NORMAL, 3,875 PNEUMONIA: 2,530 bacterial, 1,345 viral).
:Test split: 624 images (234 NORMAL, 390 PNEUMONIA).
:Groups: the patient, parsed from the file name: ``person<ID>`` for
    pneumonia, ``IM-<ID>`` or ``NORMAL2-IM-<ID>`` for normal images.
:Source: Guangzhou Women and Children's Medical Center; Kermany, Zhang and
    Goldbaum, Mendeley Data, doi:10.17632/rscbjbr9sj.2.
:Licence: CC BY 4.0.

Several images can belong to one patient: split by ``groups`` (for example
with ``StratifiedGroupKFold``), never by image, or the same child is seen in
training and evaluation and the scores are optimistic. About 74% of the
training images show pneumonia. The official test split was acquired
differently from the training split (an acquisition shift), and the 16-image
Kaggle validation split is too small to select models on.

.. topic:: References

    - Kermany D. S. et al. (2018). Identifying Medical Diagnoses and Treatable
      Diseases by Image-Based Deep Learning. Cell 172(5), 1122-1131.
      doi:10.1016/j.cell.2018.02.010
"""


def _parse_name(name, class_folder):
    """Return ``(group, subtype)`` for one file name, or ``(None, None)``."""
    stem = Path(name).name
    if class_folder == "PNEUMONIA":
        match = _PNEUMONIA_NAME.match(stem)
        if match:
            return match.group(1).lower(), match.group(2).lower()
        return None, None
    match = _NORMAL_NAME.match(stem)
    group = match.group(1).upper() if match else None
    return group, "normal"


def _find_class_folders(folder):
    """Map each class to its folder under ``folder`` (case-insensitive)."""
    found = {}
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.upper() in CLASS_FOLDERS:
            found.setdefault(child.name.upper(), child)
    return found


def _scan(folder):
    class_dirs = _find_class_folders(folder)
    if not class_dirs:
        raise FileNotFoundError(
            f"No class folder NORMAL or PNEUMONIA found in {str(folder)!r}. "
            "load_chest_xray expects root/{train,val,test}/{NORMAL,PNEUMONIA}/ "
            "with split='train' etc., or root/{NORMAL,PNEUMONIA}/ with "
            "split=None."
        )
    missing = [name for name in CLASS_FOLDERS if name not in class_dirs]
    if missing:
        warnings.warn(
            f"Class folder(s) {missing} not found in {str(folder)!r}; only "
            f"{sorted(class_dirs)} will be loaded.",
            UserWarning,
            stacklevel=3,
        )
    records = []
    for class_name in CLASS_FOLDERS:
        if class_name not in class_dirs:
            continue
        class_dir = class_dirs[class_name]
        files = [Path(p) for p in list_image_files(class_dir)]
        if not files:
            raise FileNotFoundError(
                f"Class folder {str(class_dir)!r} holds no image file (extensions "
                f"{', '.join(IMAGE_EXTENSIONS)}, any case)."
            )
        for path in files:
            records.append((class_name, path))
    return records


def _decode(paths, image_size):
    out = []
    for path in paths:
        image = read_image(path).convert("L")
        if image_size is not None:
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        out.append(np.asarray(image, dtype=np.uint8))
    return out


def _decode_all(paths, image_size, n_jobs, verbose):
    chunk = 64
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    # Pillow releases the GIL while decoding and resizing: threads suffice and
    # spare each worker process the import of torch.
    jobs = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
        delayed(_decode)(part, image_size) for part in chunks
    )
    if verbose:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, total=len(chunks), desc="Decoding images", unit="chunk")
    images = []
    for decoded in jobs:
        images.extend(decoded)
    return images


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"{name} must be one of {list(allowed)}, got {value!r}."
        )


def load_chest_xray(
    root,
    *,
    split=None,
    labels="binary",
    image_size=None,
    return_paths=False,
    return_X_y=False,
    n_jobs=None,
    verbose=0,
):
    """Load a folder of chest X-rays laid out like Kermany et al. (2018).

    The layout is ``root/{train,val,test}/{NORMAL,PNEUMONIA}/*`` (select one
    with ``split``), or ``root/{NORMAL,PNEUMONIA}/*`` with ``split=None``.
    Class folder names and file extensions may have any case; images in
    nested folders are found; hidden files are skipped. Any format
    :func:`sklearn_cxr.read_image` reads is accepted (JPEG, PNG, TIFF, BMP,
    DICOM).

    Read more in :ref:`datasets`.

    Parameters
    ----------
    root : str or os.PathLike
        The folder of the data set.
    split : {"train", "val", "test"} or None, default=None
        The sub-folder to load; None means ``root`` itself holds the class
        folders.
    labels : {"binary", "subtype"}, default="binary"
        ``"binary"``: 0 = NORMAL, 1 = PNEUMONIA. ``"subtype"``: 0 = normal,
        1 = bacterial, 2 = viral, from the file names.
    image_size : int, default=None
        Resize every image to ``image_size x image_size`` (bilinear) and
        return one ``(n, image_size, image_size)`` array. None keeps each
        image at its own size, in a list.
    return_paths : bool, default=False
        Return the file paths instead of decoding the images: fast, and what
        the estimators accept as ``X``.
    return_X_y : bool, default=False
        Return ``(images, target)`` (or ``(paths, target)``) instead of a
        Bunch.
    n_jobs : int, default=None
        Parallel jobs decoding the images (joblib, threads unless a
        ``joblib.parallel_config`` says otherwise); None means 1.
    verbose : int, default=0
        Show a progress bar while decoding when > 0.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n, image_size, image_size) or list of ndarray
            Grayscale uint8 images (absent with ``return_paths=True``).
        paths : ndarray of str
            Absolute file paths (only with ``return_paths=True``).
        target : ndarray of shape (n,)
            Integer class codes.
        target_names : ndarray of str
            ``["NORMAL", "PNEUMONIA"]`` or ``["normal", "bacterial", "viral"]``.
        subtype : ndarray of str
            ``"normal"``, ``"bacteria"`` or ``"virus"`` (``"unknown"`` for a
            pneumonia file whose name does not say).
        groups : ndarray of str
            The patient of each image, for grouped cross-validation.
        filenames : ndarray of str
            Paths relative to the loaded folder.
        DESCR : str
            Description of the data set.

    (images, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If ``root`` or the split folder is missing or holds no class folder.
    ValueError
        If ``labels="subtype"`` and a pneumonia file name does not say bacteria
        or virus.

    See Also
    --------
    fetch_chest_xray : download the official archive and load it.
    make_chest_xrays : synthetic images with the same structure.

    Notes
    -----
    File names that do not follow the Kermany conventions get their own file
    stem as group, so that they are never merged with another image.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn_cxr.datasets import load_chest_xray
    >>> root = tempfile.mkdtemp()
    >>> for name in ["NORMAL/IM-0001-0001.jpeg", "PNEUMONIA/person1_virus_1.jpeg"]:
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    ...     Image.fromarray(np.zeros((40, 30), np.uint8)).save(os.path.join(root, name))
    >>> data = load_chest_xray(root, image_size=32)
    >>> data.images.shape, data.target.tolist(), data.groups.tolist()
    ((2, 32, 32), [0, 1], ['IM-0001', 'person1'])
    """
    _check_choice("labels", labels, ("binary", "subtype"))
    _check_choice("split", split, (None, "train", "val", "test"))
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, (int, np.integer))
        or image_size < 1
    ):
        raise ValueError(
            f"image_size must be a positive integer or None, got {image_size!r}."
        )
    root = Path(os.fspath(root)).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Data folder not found: {str(root)!r}.")
    folder = root
    if split is not None:
        matches = [c for c in root.iterdir() if c.is_dir() and c.name.lower() == split]
        if not matches:
            present = sorted(
                c.name for c in root.iterdir()
                if c.is_dir() and c.name.lower() in ("train", "val", "test")
            )
            raise FileNotFoundError(
                f"Split folder {split!r} not found in {str(root)!r}; the splits "
                f"present are {present}. Use split=None if {str(root)!r} holds "
                "the class folders itself."
            )
        folder = matches[0]

    records = _scan(folder)
    class_names = [c for c, _ in records]
    paths = [p for _, p in records]
    groups, subtypes = [], []
    for class_name, path in records:
        group, subtype = _parse_name(path.name, class_name)
        groups.append(group if group is not None else f"{class_name}/{path.stem}")
        subtypes.append(subtype if subtype is not None else "unknown")
    subtypes = np.array(subtypes)
    if labels == "binary":
        target_names = np.array(CLASS_FOLDERS)
        target = np.array([CLASS_FOLDERS.index(c) for c in class_names], dtype=int)
    else:
        unknown = np.flatnonzero(subtypes == "unknown")
        if unknown.size:
            raise ValueError(
                f"labels='subtype' needs the file names to say bacteria or virus, "
                f"but {unknown.size} pneumonia file(s) do not, such as "
                f"{str(paths[unknown[0]])!r} (expected names like "
                "person1_bacteria_1.jpeg). Use labels='binary'."
            )
        target_names = np.array(SUBTYPE_NAMES)
        target = np.array([_SUBTYPE_CODES[s] for s in subtypes], dtype=int)

    bunch = Bunch(
        target=target,
        target_names=target_names,
        subtype=subtypes,
        groups=np.array(groups),
        filenames=np.array([p.relative_to(folder).as_posix() for p in paths]),
        DESCR=DESCR,
    )
    if return_paths:
        X = np.array([str(p.resolve()) for p in paths])
        bunch.paths = X
    else:
        logger.info("Decoding %d images from %s", len(paths), folder)
        images = _decode_all(paths, image_size, n_jobs, verbose)
        X = np.stack(images) if image_size is not None else images
        bunch.images = X
    if return_X_y:
        return X, target
    return bunch


def _find_split_root(folder):
    """The folder under ``folder`` that holds the split folders."""
    candidates = [folder / "chest_xray", folder]
    candidates += sorted(p for p in folder.iterdir() if p.is_dir())
    for candidate in candidates:
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            return candidate
    return None


def _download_and_extract(folder, marker, sha256, download_if_missing):
    remote = KERMANY_ARCHIVE
    if sha256 is not None:
        remote = remote._replace(checksum=sha256)
    archive = _resolve_local_file(
        remote, str(folder), download_if_missing=download_if_missing
    )
    logger.info("Extracting %s", archive)
    _safe_extract(archive, folder)
    marker.write_text(KERMANY_ARCHIVE.filename + "\n")
    os.remove(archive)


def fetch_chest_xray(
    *,
    split="train",
    data_home=None,
    download_if_missing=True,
    sha256=None,
    labels="binary",
    image_size=None,
    return_paths=False,
    return_X_y=False,
    n_jobs=None,
    verbose=0,
):
    """Download (if needed) and load the Kermany et al. (2018) chest X-rays.

    The official archive ``ChestXRay2017.zip`` (Mendeley Data,
    doi:10.17632/rscbjbr9sj.2, about 1.2 GB) is downloaded into
    ``get_data_home()/chest_xray``, checked, extracted safely (no member may
    leave that folder) and then read by :func:`load_chest_xray`. Later calls
    use the extracted copy.

    Read more in :ref:`datasets`.

    Parameters
    ----------
    split : {"train", "test", "val"}, default="train"
        The split to load. The official archive has ``train`` and ``test``;
        ``val`` exists only in copies that made one (Kaggle's has 16 images).
    data_home : str or os.PathLike, default=None
        Cache folder; see :func:`get_data_home`.
    download_if_missing : bool, default=True
        If False, raise an error naming where to put the archive instead of
        downloading it.
    sha256 : str, default=None
        The SHA256 the archive must have. Mendeley publishes none, so none is
        pinned in sklearn_cxr; without one the archive's SHA256 is logged
        (warning level) so that it can be pinned by the caller next time.
    labels, image_size, return_paths, return_X_y, n_jobs, verbose
        As in :func:`load_chest_xray`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch` or tuple
        As returned by :func:`load_chest_xray`.

    Raises
    ------
    FileNotFoundError
        If the data is not cached and ``download_if_missing=False``; the
        message names the path where to put ``ChestXRay2017.zip``.
    OSError
        If the download fails; the message says where to put the file.
    ChecksumError
        If ``sha256`` is given and the archive does not match it.
    """
    _check_choice("split", split, ("train", "val", "test"))
    folder = Path(_data_subdir(data_home, "chest_xray"))
    marker = folder / ".extracted"
    if not marker.is_file():
        # another process fetching into the same folder: wait for it, then
        # find its data instead of extracting (and removing the archive) twice
        with _folder_lock(folder):
            if not marker.is_file():
                _download_and_extract(folder, marker, sha256, download_if_missing)
    split_root = _find_split_root(folder)
    if split_root is None:
        raise FileNotFoundError(
            f"The extracted data in {str(folder)!r} has no train/ or test/ "
            f"folder. Delete {str(folder)!r} and fetch again."
        )
    return load_chest_xray(
        split_root,
        split=split,
        labels=labels,
        image_size=image_size,
        return_paths=return_paths,
        return_X_y=return_X_y,
        n_jobs=n_jobs,
        verbose=verbose,
    )


def load_folder(data_dir, preferred_split, *, labels="binary"):
    """Paths, labels and patients of a folder in the Kermany layout.

    What the command line and the demo read: ``data_dir/<preferred_split>``
    when ``data_dir`` has such a sub-folder (any case), else ``data_dir``
    itself, with :func:`load_chest_xray` and ``return_paths=True``.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The folder.
    preferred_split : {"train", "val", "test"}
        The split to read when ``data_dir`` has it.
    labels : {"binary", "subtype"}, default="binary"
        See :func:`load_chest_xray`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_chest_xray` with ``return_paths=True``.
    """
    split = None
    if os.path.isdir(data_dir):
        names = {entry.name.lower() for entry in os.scandir(data_dir) if entry.is_dir()}
        split = preferred_split if preferred_split in names else None
    return load_chest_xray(data_dir, split=split, labels=labels, return_paths=True)
