"""Files written whole or not at all, without leaks and without surprises.

Each file is written to a fresh ``mkstemp`` name in its target folder
(``O_EXCL``: a planted symbolic link is never followed), locked while it is
written, synced, given the permissions of the file it replaces and renamed
into place. The temporary files of a killed writer are recognised by their
free lock and removed by the next writer.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from contextlib import contextmanager

__all__ = [
    "TMP_PREFIX",
    "atomic_path",
    "file_mode",
    "remove_stale_temporaries",
    "try_lock",
]

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"


def try_lock(fd):
    """Take an exclusive, non-blocking lock on ``fd``; False if another holds it.

    Without ``fcntl`` (Windows) nothing is locked and True is returned.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_stale_temporaries(folder, suffix):
    """Remove the ``.tmp-*<suffix>`` files of writes that were killed.

    A save in progress holds a lock on its temporary file; one whose lock is
    free belongs to a process that died.
    """
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows: cannot tell, keep them
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(TMP_PREFIX) and name.endswith(suffix)):
            continue
        stale = os.path.join(folder, name)
        try:
            fd = os.open(stale, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if try_lock(fd):
                os.remove(stale)
                logger.info("Removed %s, left by an interrupted write.", stale)
        except OSError:
            pass
        finally:
            os.close(fd)


def file_mode(path):
    """The permissions the saved file gets: those of the file it replaces,
    else the usual ones for a new file (0o666 less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary file is created with ``mkstemp`` (``O_EXCL``), locked while
    the block runs, synced and renamed over ``path`` when the block ends
    without error; on any error it is removed.

    Parameters
    ----------
    path : str
        The file to write.
    suffix : str, default=".tmp"
        Ending of the temporary name (stale ones with it are removed first).
    """
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder, suffix)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=suffix)
    try:
        try_lock(handle)
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        os.close(handle)
