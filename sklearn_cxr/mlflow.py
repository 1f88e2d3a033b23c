"""Log a fitted model to MLflow as a pyfunc model, without pickle.

:func:`log_model` stores the model in the package's safe format (see
:ref:`persistence`) as an MLflow artifact, with a few lines of Python code
that load it ("models from code"): nothing is pickled, neither the estimator
nor the wrapper. The logged model loads with :func:`mlflow.pyfunc.load_model`
and serves with ``mlflow models serve -m <model uri> --env-manager local``.

Its input is a table with one row per image and one of two columns filled:

- ``image`` (string): the path of an image file readable where the model
  runs, or the bytes of an image file (PNG, JPEG, TIFF, BMP, DICOM) encoded
  in base64;
- ``pixels`` (array of arrays of integers): the gray pixels, ``(H, W)``
  values in 0-255, such as a row of a uint8 array.

:func:`to_model_input` builds that table from anything the estimators
accept. The output has a ``label`` column (the predicted class) and one
probability column ``proba_<class>`` per class, in the order of ``classes_``.

Needs the optional ``mlflow`` package: ``pip install 'sklearn-cxr[mlflow]'``.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile

import numpy as np

__all__ = [
    "log_model",
    "save_model",
    "to_model_input",
    "encode_image_file",
    "model_signature",
]

#: Largest decoded image file accepted in the ``image`` column, in bytes.
MAX_IMAGE_BYTES = 32 * 1024 * 1024

_MODEL_FILE = "model.cxr"
_CODE = '''"""MLflow model code: a sklearn_cxr model read from its safe format."""

import mlflow.models

from sklearn_cxr.mlflow import _python_model

mlflow.models.set_model(_python_model())
'''


def _import_mlflow():
    try:
        import mlflow
        import mlflow.pyfunc
    except ImportError as exc:
        raise ImportError(
            "sklearn_cxr.mlflow needs MLflow: pip install 'sklearn-cxr[mlflow]'."
        ) from exc
    return mlflow


def _bad_input(message):
    """An error MLflow's scoring server answers with HTTP 400."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _proba_columns(classes):
    return [f"proba_{c}" for c in classes]


def model_signature(model):
    """The MLflow signature of ``model`` logged by :func:`log_model`.

    Parameters
    ----------
    model : PretrainedCNNClassifier
        Fitted.

    Returns
    -------
    signature : mlflow.models.ModelSignature
    """
    _import_mlflow()
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    inputs = Schema(
        [
            ColSpec(DataType.string, "image", required=False),
            ColSpec(Array(Array(DataType.long)), "pixels", required=False),
        ]
    )
    outputs = Schema(
        [ColSpec(DataType.string, "label")]
        + [ColSpec(DataType.double, name) for name in _proba_columns(model.classes_)]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def to_model_input(images):
    """The input table of a logged model, from paths or uint8 images.

    Parameters
    ----------
    images : sequence of path-like, or ndarray
        Image file paths (sent as paths: the model must see the same files),
        or a uint8 ``(n, H, W)`` array or list of uint8 ``(H, W)`` arrays
        (sent as ``pixels``).

    Returns
    -------
    frame : pandas.DataFrame
        One row per image.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_cxr.mlflow import to_model_input
    >>> to_model_input(np.zeros((2, 3, 3), dtype=np.uint8)).columns.tolist()
    ['pixels']
    """
    import pandas as pd

    if isinstance(images, (str, os.PathLike)):
        raise TypeError("images must be a sequence; wrap one path in a list.")
    items = list(images)
    if items and all(isinstance(i, (str, os.PathLike)) for i in items):
        return pd.DataFrame({"image": [os.fspath(i) for i in items]})
    pixels = []
    for index, item in enumerate(items):
        array = np.asarray(item)
        if array.dtype != np.uint8 or array.ndim != 2:
            raise ValueError(
                f"images[{index}] is a {array.dtype} array of shape {array.shape}; "
                "pass uint8 gray images of shape (H, W), or file paths."
            )
        pixels.append(array.tolist())
    return pd.DataFrame({"pixels": pixels})


def encode_image_file(path):
    """The base64 text of an image file, for the ``image`` column.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    text : str
    """
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode("ascii")


# ---------------------------------------------------------------- the wrapper
def _decode_image(text, row, allow_paths):
    """A PIL image from a path or base64 image bytes; errors are 400s."""
    from ._images import read_image

    if allow_paths and len(text) < 4096 and os.path.isfile(text):
        # isfile: regular files only (no FIFO or device that blocks or is endless)
        try:
            return read_image(text)
        except (OSError, ValueError) as exc:
            raise _bad_input(f"Row {row}: {exc}") from None
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise _bad_input(
            f"Row {row}: the image is over {MAX_IMAGE_BYTES} bytes; send a smaller "
            "file."
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        what = (
            "neither the path of an existing image file nor"
            if allow_paths
            else "not"
        )
        raise _bad_input(
            f"Row {row}: 'image' is {what} base64-encoded image bytes."
        ) from None
    # read_image does every check (empty, truncated, decompression bomb, DICOM)
    suffix = ".dcm" if data[128:132] == b"DICM" else ".img"
    with tempfile.TemporaryDirectory(prefix="sklearn_cxr_") as folder:
        path = os.path.join(folder, f"row{row}{suffix}")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            return read_image(path)
        except (OSError, ValueError) as exc:
            message = (
                str(exc)
                .replace(f"File {path!r}", "The decoded bytes")
                .replace(f"file {path!r}", "the decoded bytes")
                .replace(repr(path), "the decoded bytes")
            )
            raise _bad_input(f"Row {row}: {message}") from None


def _decode_pixels(value, row):
    from PIL import Image

    try:
        array = np.asarray(value)
        if array.dtype == object:  # ragged rows
            array = np.asarray([np.asarray(line) for line in value])
    except (TypeError, ValueError) as exc:
        raise _bad_input(
            f"Row {row}: 'pixels' is not a rectangular array: {exc}"
        ) from None
    if array.ndim != 2 or array.dtype.kind not in "iu" or min(array.shape) < 1:
        raise _bad_input(
            f"Row {row}: 'pixels' must be a non-empty (H, W) array of integers, got "
            f"{array.dtype} of shape {array.shape}."
        )
    if array.size > Image.MAX_IMAGE_PIXELS:
        raise _bad_input(
            f"Row {row}: 'pixels' holds {array.size} pixels, over the limit of "
            f"{Image.MAX_IMAGE_PIXELS}."
        )
    if array.min() < 0 or array.max() > 255:
        raise _bad_input(
            f"Row {row}: 'pixels' values lie in [{array.min()}, {array.max()}]; "
            "they must be 8-bit values in [0, 255]."
        )
    return array.astype(np.uint8)


def _images_from_frame(frame, allow_paths):
    import pandas as pd

    columns = set(frame.columns)
    if not columns & {"image", "pixels"}:
        raise _bad_input(
            f"The input has columns {sorted(map(str, columns))}; it needs an "
            "'image' column (path or base64 image bytes) or a 'pixels' column."
        )
    images = []
    for row in range(len(frame)):
        image = frame["image"].iloc[row] if "image" in columns else None
        pixels = frame["pixels"].iloc[row] if "pixels" in columns else None
        has_image = isinstance(image, str) and image != ""
        has_pixels = pixels is not None and not (
            np.isscalar(pixels) and pd.isna(pixels)
        )
        if has_image == has_pixels:
            raise _bad_input(
                f"Row {row}: fill exactly one of 'image' and 'pixels'."
            )
        if has_image:
            images.append(_decode_image(image, row, allow_paths))
        else:
            images.append(_decode_pixels(pixels, row))
    return images


def _predict_frame(model, frame, allow_paths):
    import pandas as pd

    images = _images_from_frame(frame, allow_paths)
    if not images:
        raise _bad_input("The input has no rows; send at least one image.")
    proba = model.predict_proba(images)
    labels = model.classes_[np.argmax(proba, axis=1)]
    out = pd.DataFrame(proba, columns=_proba_columns(model.classes_))
    out.insert(0, "label", [str(label) for label in labels])
    return out


def _python_model():
    """The pyfunc wrapper; built here so that importing this module needs no
    MLflow."""
    mlflow = _import_mlflow()

    class SklearnCXRModel(mlflow.pyfunc.PythonModel):
        """Loads the model from its safe file; predicts a table of images."""

        def load_context(self, context):
            from ._classifier import PretrainedCNNClassifier

            config = context.model_config or {}
            self.allow_paths = bool(config.get("allow_paths", True))
            self.model = PretrainedCNNClassifier.load(
                context.artifacts["model"], trusted=config.get("trusted")
            )

        def predict(self, context, model_input, params=None):
            import pandas as pd

            if not isinstance(model_input, pd.DataFrame):
                model_input = to_model_input(model_input)
            return _predict_frame(self.model, model_input, self.allow_paths)

    return SklearnCXRModel()


def _log_or_save(saver, model, target, *, allow_paths, trusted, kwargs):
    from ._classifier import PretrainedCNNClassifier
    from ._version import __version__

    _import_mlflow()
    if not isinstance(model, PretrainedCNNClassifier):
        raise TypeError(
            f"model must be a fitted PretrainedCNNClassifier, got "
            f"{type(model).__name__}."
        )
    requirements = [f"sklearn-cxr=={__version__}"]
    if str(getattr(model, "backbone", "")).startswith("timm:"):
        requirements.append("timm")
    kwargs.setdefault("pip_requirements", requirements)
    kwargs.setdefault("signature", model_signature(model))
    with tempfile.TemporaryDirectory(prefix="sklearn_cxr_mlflow_") as folder:
        model_path = model.save(os.path.join(folder, _MODEL_FILE))
        code_path = os.path.join(folder, "sklearn_cxr_model.py")
        with open(code_path, "w") as handle:
            handle.write(_CODE)
        return saver(
            target,
            python_model=code_path,
            artifacts={"model": model_path},
            model_config={"allow_paths": bool(allow_paths), "trusted": trusted},
            **kwargs,
        )


def log_model(model, artifact_path, *, allow_paths=True, trusted=None, **kwargs):
    """Log a fitted classifier to the active MLflow run as a pyfunc model.

    Parameters
    ----------
    model : PretrainedCNNClassifier
        Fitted, in either mode.
    artifact_path : str
        Name of the model in the run (MLflow's ``name``).
    allow_paths : bool, default=True
        Whether the ``image`` column may name files where the model runs. Set
        False for a server that others can reach: they could otherwise make it
        read any image file it can read.
    trusted : list of str, default=None
        Extra types accepted when the model's skops parts are loaded (see
        :meth:`PretrainedCNNClassifier.load`).
    **kwargs
        Passed to :func:`mlflow.pyfunc.log_model` (``registered_model_name``,
        ``input_example``, ``pip_requirements``...).

    Returns
    -------
    info : mlflow.models.model.ModelInfo
        ``info.model_uri`` loads it with :func:`mlflow.pyfunc.load_model`.
    """
    mlflow = _import_mlflow()

    def saver(name, **options):
        return mlflow.pyfunc.log_model(name=name, **options)

    return _log_or_save(
        saver, model, artifact_path, allow_paths=allow_paths, trusted=trusted,
        kwargs=kwargs,
    )


def save_model(model, path, *, allow_paths=True, trusted=None, **kwargs):
    """Save a fitted classifier as an MLflow pyfunc model folder.

    The same as :func:`log_model`, written to a local folder instead of a run
    (``mlflow models serve -m PATH`` serves it).

    Parameters
    ----------
    model : PretrainedCNNClassifier
    path : str or os.PathLike
        Folder to create; it must not exist.
    allow_paths, trusted, **kwargs
        See :func:`log_model`; ``kwargs`` go to :func:`mlflow.pyfunc.save_model`.

    Returns
    -------
    path : str
    """
    mlflow = _import_mlflow()
    path = os.fspath(path)

    def saver(target, **options):
        mlflow.pyfunc.save_model(target, **options)
        return target

    return _log_or_save(
        saver, model, path, allow_paths=allow_paths, trusted=trusted, kwargs=kwargs
    )
