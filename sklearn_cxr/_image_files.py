"""Which files are images: the one rule of every folder scan.

:func:`~sklearn_cxr.datasets.load_chest_xray`, the command line's
``predict DIR`` and the demo find image files with :func:`list_image_files`,
so that they cannot disagree on a hidden file, a folder named ``x.png`` or an
upper-case suffix.
"""

from __future__ import annotations

import os

from ._images import IMAGE_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "is_image_file", "list_image_files"]


def is_image_file(path):
    """Whether a folder scan takes ``path`` as an image: the package's one rule.

    A regular file (or a link to one) whose name ends in one of
    :data:`IMAGE_EXTENSIONS`, in any case, and does not start with a dot:
    hidden files, such as the ``._x.jpeg`` resource forks macOS leaves on
    shared drives, are not images. A folder named ``x.png``, a broken link
    and a file without extension are not images either. The content is not
    looked at: :func:`read_image` checks it.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    bool

    Examples
    --------
    >>> from sklearn_cxr._image_files import is_image_file
    >>> is_image_file(__file__)
    False
    """
    name = os.path.basename(os.fspath(path))
    return (
        not name.startswith(".")
        and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        and os.path.isfile(path)
    )


def list_image_files(folder):
    """The image files under ``folder``, searched recursively, sorted.

    Files are taken by :func:`is_image_file`. Hidden folders (name starting
    with a dot) are not entered, nor are links to folders, so a link cannot
    make the scan loop or leave the folder.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to scan.

    Returns
    -------
    paths : list of str
        Paths under ``folder``, sorted.

    Raises
    ------
    NotADirectoryError
        If ``folder`` is not a folder.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"Not a folder: {str(folder)!r}.")
    found = []
    for parent, subfolders, names in os.walk(folder):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found += [
            os.path.join(parent, name)
            for name in names
            if is_image_file(os.path.join(parent, name))
        ]
    # folder by folder, as pathlib orders paths
    return sorted(found, key=lambda path: path.split(os.sep))
