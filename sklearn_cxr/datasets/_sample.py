"""A small real sample of the Kermany et al. (2018) chest X-rays, shipped."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ._chest_xray import load_chest_xray

__all__ = ["load_sample_chest_xrays", "SAMPLE_FOLDER"]

#: The embedded sample, relative to the package ``sklearn_cxr.datasets``.
SAMPLE_FOLDER = "data/chest_xray_sample"

DESCR = """\
.. _sample_chest_xray_dataset:

Sample of the pediatric chest X-ray (pneumonia) data set
--------------------------------------------------------

**Data set characteristics:**

:Images: 407 frontal chest radiographs of 261 children, 128x128 pixels,
    grayscale JPEG, downsized from the training split of Kermany et al.
    (2018).
:Classes: NORMAL (200) and PNEUMONIA (207: 137 bacterial, 70 viral).
:Groups: the patient, from the file name (``person<ID>``, ``IM-<ID>``,
    ``NORMAL2-IM-<ID>``). Every image of a chosen patient is included:
    split by ``groups``, never by image.
:Selection: patients drawn at random (seed 0) in three strata: normal
    ``IM-`` files, normal ``NORMAL2-IM-`` files, and pneumonia; made by
    ``tools/make_sample.py``. ``sample.csv`` beside the images lists each
    file with its label, patient and subtype.
:Source: Guangzhou Women and Children's Medical Center; Kermany, Zhang and
    Goldbaum (2018), "Labeled Optical Coherence Tomography (OCT) and Chest
    X-Ray Images for Classification", Mendeley Data, V2,
    doi:10.17632/rscbjbr9sj.2.
:Licence: Creative Commons Attribution 4.0 International (CC BY 4.0,
    https://creativecommons.org/licenses/by/4.0/). Changes: subset,
    converted to grayscale, resized to 128 px, re-encoded as JPEG.

It is meant for examples, tests and a first try; for real work load the full
data set with :func:`fetch_chest_xray` or :func:`load_chest_xray`.

.. topic:: References

    - Kermany D. S. et al. (2018). Identifying Medical Diagnoses and Treatable
      Diseases by Image-Based Deep Learning. Cell 172(5), 1122-1131.
      doi:10.1016/j.cell.2018.02.010
"""


def _sample_folder():
    folder = Path(str(resources.files("sklearn_cxr.datasets").joinpath(SAMPLE_FOLDER)))
    if not (folder / "sample.csv").is_file():
        raise FileNotFoundError(
            f"The embedded sample is missing from {str(folder)!r}: the installation "
            "of sklearn_cxr is incomplete. Reinstall it (pip install --force-"
            "reinstall sklearn-cxr)."
        )
    return folder


def load_sample_chest_xrays(
    *,
    labels="binary",
    image_size=None,
    return_paths=False,
    return_X_y=False,
):
    """Load the small sample of real chest X-rays shipped with sklearn_cxr.

    407 radiographs of 261 children (200 normal, 207 pneumonia), 128x128
    pixels, from the training split of Kermany et al. (2018), licensed
    CC BY 4.0; ``DESCR`` gives the attribution. Nothing is downloaded.

    Read more in :ref:`datasets`.

    Parameters
    ----------
    labels : {"binary", "subtype"}, default="binary"
        ``"binary"``: 0 = NORMAL, 1 = PNEUMONIA. ``"subtype"``: 0 = normal,
        1 = bacterial, 2 = viral.
    image_size : int, default=None
        Resize every image to ``image_size x image_size``; None keeps 128.
    return_paths : bool, default=False
        Return the file paths of the embedded images instead of decoding
        them.
    return_X_y : bool, default=False
        Return ``(images, target)`` (or ``(paths, target)``) instead of a
        Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As :func:`load_chest_xray` returns: ``images`` (an array of shape
        ``(407, 128, 128)``, uint8) or ``paths``, ``target``,
        ``target_names``, ``subtype``, ``groups``, ``filenames`` and
        ``DESCR``.

    (images, target) : tuple if ``return_X_y`` is True

    See Also
    --------
    load_chest_xray : load the full data set from a folder.
    make_chest_xrays : synthetic images with the same structure.

    Examples
    --------
    >>> from sklearn_cxr.datasets import load_sample_chest_xrays
    >>> data = load_sample_chest_xrays()
    >>> data.images.shape
    (407, 128, 128)
    >>> data.target_names.tolist(), len(set(data.groups))
    (['NORMAL', 'PNEUMONIA'], 261)
    """
    folder = _sample_folder()
    data = load_chest_xray(
        folder,
        labels=labels,
        image_size=128 if image_size is None else image_size,
        return_paths=return_paths,
    )
    data.DESCR = DESCR
    if return_X_y:
        return (data.paths if return_paths else data.images), data.target
    return data
