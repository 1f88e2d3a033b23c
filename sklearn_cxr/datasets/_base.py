"""The data home, checked downloads and safe archive extraction.

Every fetcher of :mod:`sklearn_cxr.datasets` goes through :func:`_fetch_remote`
(download to a temporary file, verify the checksum, then move into place) and,
for archives, :func:`_safe_extract`, which refuses any member that would land
outside the target folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import namedtuple
from pathlib import Path

from ..exceptions import ChecksumError, UnsafeArchiveError

__all__ = [
    "get_data_home",
    "clear_data_home",
    "RemoteFileMetadata",
    "ChecksumError",
    "UnsafeArchiveError",
]

logger = logging.getLogger(__name__)

#: Environment variable that overrides the default data home.
DATA_HOME_ENV = "SKLEARN_CXR_DATA"

_CHUNK = 1 << 20

RemoteFileMetadata = namedtuple(
    "RemoteFileMetadata", ["filename", "url", "checksum", "algorithm"]
)
RemoteFileMetadata.__doc__ = """A file to download and the checksum it must have.

Parameters
----------
filename : str
    Name of the file in the cache folder.
url : str
    Where to download it from (``https://`` or ``file://``).
checksum : str or None
    Expected hex digest; None when no checksum is published (the download is
    then only logged with its SHA256, never silently trusted elsewhere).
algorithm : {"sha256", "md5"}
    Hash algorithm of ``checksum``.
"""


def get_data_home(data_home=None):
    """Return the folder where sklearn_cxr caches data sets, creating it.

    By default it is ``~/sklearn_cxr_data``; the environment variable
    ``SKLEARN_CXR_DATA`` or the ``data_home`` argument override it.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        The folder to use. None means ``$SKLEARN_CXR_DATA``, else
        ``~/sklearn_cxr_data``.

    Returns
    -------
    data_home : str
        The absolute path of the data home.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn_cxr.datasets import get_data_home
    >>> folder = os.path.join(tempfile.mkdtemp(), "cxr")
    >>> get_data_home(folder) == folder
    True
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or os.path.join(
            "~", "sklearn_cxr_data"
        )
    data_home = os.path.abspath(os.path.expanduser(os.fspath(data_home)))
    os.makedirs(data_home, exist_ok=True)
    return data_home


def clear_data_home(data_home=None):
    """Delete every cached data set in the data home.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        The folder to delete; see :func:`get_data_home`.
    """
    data_home = get_data_home(data_home)
    shutil.rmtree(data_home)
    logger.info("Deleted the data home %s", data_home)


def _file_checksum(path, algorithm="sha256"):
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_checksum(path, remote, *, origin):
    """Raise :class:`ChecksumError` when ``path`` does not match ``remote``."""
    if remote.checksum is None:
        return
    actual = _file_checksum(path, remote.algorithm)
    if actual.lower() != remote.checksum.lower():
        raise ChecksumError(
            f"{origin} {os.fspath(path)!r} has {remote.algorithm} {actual}, but "
            f"{remote.filename} should have {remote.checksum}. The file is "
            "corrupt, incomplete or not the published one: delete it and "
            f"download it again from {remote.url}."
        )


def _fetch_remote(remote, dirname):
    """Download ``remote`` into ``dirname``, verify it and return its path.

    The file is written to a temporary name first and only moved to
    ``dirname/remote.filename`` once its checksum matches, so that a broken
    download never poses as a cached file.
    """
    os.makedirs(dirname, exist_ok=True)
    target = os.path.join(dirname, remote.filename)
    logger.info("Downloading %s to %s", remote.url, target)
    fd, partial = tempfile.mkstemp(prefix=remote.filename + ".", dir=dirname)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(remote.url, timeout=60) as response:
                    shutil.copyfileobj(response, out, _CHUNK)
            except (urllib.error.URLError, OSError) as exc:
                raise OSError(
                    f"Could not download {remote.url} ({exc}). Without network "
                    f"access, download {remote.filename} by other means and put "
                    f"it at {target!r}."
                ) from exc
        _check_checksum(partial, remote, origin="The downloaded file")
        if remote.checksum is None:
            logger.warning(
                "No published checksum is pinned for %s; its sha256 is %s.",
                remote.filename,
                _file_checksum(partial, "sha256"),
            )
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


def _member_error(archive, name, why):
    return UnsafeArchiveError(
        f"Refusing to extract {archive!r}: member {name!r} {why}. The archive "
        "is corrupt or malicious; download it again from its official source."
    )


def _check_member_path(archive, name, root):
    if os.path.isabs(name) or name.startswith(("/", "\\")) or ":" in name[:3]:
        raise _member_error(archive, name, "has an absolute path")
    destination = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, destination]) != root:
        raise _member_error(archive, name, f"would be written outside {root!r}")


def _safe_extract(archive, target):
    """Extract a zip or tar ``archive`` into ``target``, refusing unsafe members.

    Members with absolute paths, with ``..`` components that leave ``target``
    (zip slip), symbolic or hard links, and device files are refused before
    anything is written.

    Parameters
    ----------
    archive : str or os.PathLike
    target : str or os.PathLike

    Raises
    ------
    UnsafeArchiveError
        Naming the first offending member.
    """
    archive = os.fspath(archive)
    os.makedirs(target, exist_ok=True)
    root = os.path.realpath(os.fspath(target))
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member_path(archive, info.filename, root)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise _member_error(archive, info.filename, "is a symbolic link")
            zf.extractall(root)
        return root
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _check_member_path(archive, member.name, root)
                if member.issym() or member.islnk():
                    raise _member_error(archive, member.name, "is a link")
                if not (member.isfile() or member.isdir()):
                    raise _member_error(archive, member.name, "is a special file")
            if hasattr(tarfile, "data_filter"):
                tf.extractall(root, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; members were checked
                tf.extractall(root, members=members)
        return root
    raise ValueError(
        f"{archive!r} is neither a zip nor a tar archive; delete it and download "
        "it again."
    )


def _resolve_local_file(remote, dirname, *, download_if_missing):
    """Return the verified cached file, downloading it when allowed."""
    path = os.path.join(dirname, remote.filename)
    if os.path.exists(path):
        _check_checksum(path, remote, origin="The cached file")
        return path
    if not download_if_missing:
        raise FileNotFoundError(
            f"{remote.filename} is not in the data cache: expected it at "
            f"{path!r}. Download it from {remote.url} and put it there, or pass "
            "download_if_missing=True."
        )
    return _fetch_remote(remote, dirname)


@contextlib.contextmanager
def _folder_lock(folder):
    """Hold an exclusive lock on ``.<folder name>.lock`` beside ``folder``.

    Blocks until it is free. Two processes fetching into the same data home
    take turns: the second finds the data the first extracted. Without
    ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = os.path.abspath(os.fspath(folder))
    lock = os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _data_subdir(data_home, name):
    path = Path(get_data_home(data_home)) / name
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
