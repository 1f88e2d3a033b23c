"""Reading and validating images, the torch ``Dataset`` and the transforms.

One reader, :func:`read_image`, serves every path input of the package (the
estimators and :mod:`sklearn_cxr.datasets`). :func:`check_images` turns
whatever a user passes as ``X`` into an :class:`ImageCollection`, a light,
lazily decoded sequence; nothing is materialised as one big float tensor.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from .exceptions import ImageReadError

__all__ = [
    "ImageReadError",
    "ImageCollection",
    "ImageDataset",
    "check_images",
    "read_image",
    "build_transform",
    "IMAGE_EXTENSIONS",
]

#: File extensions recognised as images when a folder is scanned.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".dcm")

# A truncated JPEG must be an error, not a silently grey bottom half.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# The only PIL decoders ever used. Left to itself PIL picks a decoder from the
# file's bytes, whatever its name: an EPS file named .png would run
# Ghostscript on the file's PostScript.
_PIL_FORMATS = ("JPEG", "PNG", "TIFF", "BMP")


def _to_uint8(array, name):
    """Scale an integer or float array of any range to uint8 (min-max)."""
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ImageReadError(f"{name} contains NaN or infinite pixel values.")
    lo, hi = float(array.min()), float(array.max())
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _check_dicom_header(ds, path):
    """Refuse what the header already shows is too large or unusable.

    Runs before any pixel is decoded; returns the number of frames.
    """
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    limit = Image.MAX_IMAGE_PIXELS
    if limit and rows * columns * frames > limit:
        raise ImageReadError(
            f"DICOM file {path!s} is too large to decode safely: {rows} x "
            f"{columns} pixels x {frames} frame(s) is over the limit of {limit} "
            "pixels (PIL.Image.MAX_IMAGE_PIXELS) that guards against "
            "decompression bombs; downscale the file first."
        )
    if frames > 1 and samples != 1:
        raise ImageReadError(
            f"DICOM file {path!s} is a multi-frame colour image ({frames} frames "
            f"of {samples} samples per pixel), which is not supported; export "
            "the frame you need as a single-frame image."
        )
    widths = ds.get("WindowWidth")
    if widths is not None:
        if isinstance(widths, str) or not isinstance(widths, Sequence):
            widths = [widths]
        if any(not float(w) > 0 for w in widths):
            raise ImageReadError(
                f"DICOM file {path!s} has WindowWidth {ds.WindowWidth}; a window "
                "width must be a positive number. Fix or remove the window in "
                "the file's header."
            )
    return frames


def _read_dicom(path):
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pragma: no cover - depends on the environment
        try:
            import pydicom
            from pydicom.pixel_data_handlers.util import (
                apply_modality_lut,
                apply_voi_lut,
            )
        except ImportError as exc:
            raise ImportError(
                f"Reading the DICOM file {path!s} needs pydicom: "
                "pip install 'sklearn-cxr[dicom]'."
            ) from exc
    try:
        ds = pydicom.dcmread(path)
        frames = _check_dicom_header(ds, path)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(
            f"Cannot read DICOM file {path!s}: {exc}. Check that the file is a "
            "complete DICOM image with pixel data."
        ) from exc
    try:
        if frames > 1:
            # Only the first frame is used: decode only that one.
            try:
                from pydicom.pixels import pixel_array
            except ImportError:  # pragma: no cover - pydicom < 3
                pixels = ds.pixel_array[0]
            else:
                pixels = pixel_array(ds, index=0)
        else:
            pixels = ds.pixel_array
    except Exception as exc:
        raise ImageReadError(
            f"Cannot read DICOM file {path!s}: {exc}. Check that the file is a "
            "complete DICOM image with pixel data."
        ) from exc
    pixels = apply_modality_lut(pixels, ds)
    pixels = apply_voi_lut(pixels, ds)
    image = _to_uint8(pixels, f"DICOM file {path!s}")
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        image = 255 - image
    return Image.fromarray(image)


def read_image(path):
    """Read one image file as a PIL image in mode ``"L"`` or ``"RGB"``.

    JPEG, PNG (8 and 16 bit), TIFF, BMP and DICOM (``.dcm``, with the optional
    ``pydicom`` dependency) are read, and nothing else: a file in another
    format, whatever its name, is refused without being decoded. Palette and
    CMYK images are converted to RGB; 16-bit and floating-point images are
    scaled to 8 bit by their own minimum and maximum. DICOM pixel data goes
    through the modality LUT (rescale slope and intercept) and the VOI LUT or
    window, and ``MONOCHROME1`` images are inverted so that bone is bright.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    image : PIL.Image.Image
        The decoded image, mode ``"L"`` or ``"RGB"``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImageReadError
        If ``path`` is a directory, an empty, truncated or non-image file, or
        an image over PIL's decompression-bomb limit.
    """
    # str(): a numpy string would show as np.str_('...') in the messages
    path = str(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image file not found: {path!r}.")
    if os.path.isdir(path):
        raise ImageReadError(f"Expected an image file, got a directory: {path!r}.")
    if os.path.getsize(path) == 0:
        raise ImageReadError(f"Image file is empty (0 bytes): {path!r}.")
    if path.lower().endswith(".dcm"):
        return _read_dicom(path)
    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice the limit: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_PIL_FORMATS) as opened:
                opened.load()
                image = opened.copy()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageReadError(
            f"Image file {path!r} is too large to decode safely ({exc}). Images "
            f"over {Image.MAX_IMAGE_PIXELS} pixels are refused as possible "
            "decompression bombs; downscale the file first."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(
            f"File {path!r} is not a JPEG, PNG, TIFF or BMP image, the only "
            "formats read (DICOM files must end in .dcm). Convert it to one of "
            "these formats."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"Cannot decode image file {path!r}: {exc}. The file may be "
            "truncated or corrupt."
        ) from exc
    return _normalise_mode(image, path)


def _normalise_mode(image, name):
    """Bring a PIL image to mode "L" or "RGB"."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), f"image {name!r}"))
    if mode in ("LA", "La"):
        return image.convert("L")
    if mode == "1":
        return image.convert("L")
    # P, PA, CMYK, YCbCr, RGBA, LAB, HSV...
    return image.convert("RGB")


class ImageCollection(Sequence):
    """A validated, lazily decoded sequence of images.

    Items are returned as ``uint8`` or ``float32`` torch tensors of shape
    ``(C, H, W)`` with ``C`` 1 or 3 and values in [0, 255] (uint8) or [0, 1]
    (float32), decoded only when accessed.

    Parameters
    ----------
    source : ndarray or list
        A 3-d or 4-d array, or a list of paths, PIL images or 2-d/3-d arrays.
    kind : {"array", "paths", "objects"}
        What ``source`` holds.
    """

    def __init__(self, source, kind):
        self.source = source
        self.kind = kind

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        item = self.source[index]
        if self.kind == "paths":
            return _pil_to_tensor(read_image(item))
        if isinstance(item, Image.Image):
            return _pil_to_tensor(_normalise_mode(item, f"X[{index}]"))
        return _array_to_tensor(item)

    def fingerprint_items(self):
        """Yield, for each image, bytes that identify its content."""
        for index in range(len(self)):
            item = self.source[index]
            if self.kind == "paths":
                with open(item, "rb") as handle:
                    yield handle.read()
            elif isinstance(item, Image.Image):
                yield item.mode.encode() + str(item.size).encode() + item.tobytes()
            else:
                arr = np.ascontiguousarray(item)
                yield str(arr.dtype).encode() + str(arr.shape).encode() + arr.tobytes()

    def take(self, indices):
        """Return the sub-collection at ``indices``."""
        indices = np.asarray(indices)
        if self.kind == "array":
            return ImageCollection(self.source[indices], self.kind)
        return ImageCollection([self.source[i] for i in indices], self.kind)


def _pil_to_tensor(image):
    array = np.array(image, dtype=np.uint8)  # a copy: PIL's buffer is read-only
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _array_to_tensor(array):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    chw = np.ascontiguousarray(array.transpose(2, 0, 1))
    if not chw.flags.writeable:  # read-only memmaps: torch wants writable memory
        chw = chw.copy()
    tensor = torch.from_numpy(chw)
    if tensor.dtype == torch.uint8:
        return tensor
    if array.dtype.kind in "ui":
        return tensor.to(torch.uint8)
    return tensor.to(torch.float32)


def _describe(obj):
    return type(obj).__name__


def _check_array_image(array, name):
    """Validate one in-memory image array and return it."""
    if array.dtype.kind == "b":
        array = array.astype(np.uint8) * 255
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name} has {array.ndim} dimensions; an image must be (H, W) or "
            "(H, W, C) with C in {1, 3}."
        )
    if array.ndim == 3 and array.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} has {array.shape[-1]} channels (shape {array.shape}); only 1 "
            "(grayscale) or 3 (RGB) channels are allowed, as the last axis."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} has an empty spatial size {array.shape[:2]}.")
    _check_values(array, name)
    return array


def _check_values(array, name):
    kind = array.dtype.kind
    if kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            where = np.argwhere(~finite)[0]
            raise ValueError(
                f"{name} contains NaN or infinite pixel values (first at index "
                f"{tuple(int(i) for i in where)}); clean or impute the images first."
            )
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} is a float array with values in [{lo:g}, {hi:g}]; float "
                "images must lie in [0, 1]. Pass uint8 pixels (0-255) or divide "
                "by the maximum value."
            )
    elif kind in "ui":
        if array.dtype != np.uint8 and array.size:
            lo, hi = int(array.min()), int(array.max())
            if lo < 0 or hi > 255:
                raise ValueError(
                    f"{name} is a {array.dtype} array with values in [{lo}, {hi}]; "
                    "integer images must hold 8-bit values (0-255). Scale 16-bit "
                    "images to uint8 or to floats in [0, 1]."
                )
    else:
        raise TypeError(
            f"{name} has dtype {array.dtype}; images must be uint8 (0-255) or "
            "float (0-1)."
        )


def check_images(X, *, allow_empty=False):
    """Validate ``X`` and wrap it as an :class:`ImageCollection`.

    Parameters
    ----------
    X : ndarray, sequence of path-like, sequence of PIL images or arrays
        ``(n, H, W)`` or ``(n, H, W, C)`` arrays with ``C`` in {1, 3}, uint8
        (0-255) or float (0-1); or a sequence of image file paths; or a
        sequence of PIL images or 2-d/3-d arrays (sizes may differ). Paths and
        in-memory images cannot be mixed.
    allow_empty : bool, default=False
        Whether zero images are accepted.

    Returns
    -------
    images : ImageCollection
    """
    if isinstance(X, ImageCollection):
        return X
    if isinstance(X, (str, os.PathLike, Image.Image)):
        raise TypeError(
            f"X must be a sequence of images, got a single {_describe(X)}. "
            "Wrap it in a list: [X]."
        )
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy()  # pandas Series / DataFrame column of paths
    elif (
        hasattr(X, "__array__")
        and not isinstance(X, (np.ndarray, Sequence))
        and not hasattr(X, "__len__")
    ):
        # an object offering only __array__ (scikit-learn's "data not an
        # array" check): a stack of images once converted
        X = np.asarray(X)
    if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
        collection = _check_image_array(X)
    else:
        if isinstance(X, np.ndarray):
            X = X.ravel().tolist() if X.ndim > 1 and X.shape[-1] == 1 else list(X)
        if not isinstance(X, Sequence) and not hasattr(X, "__len__"):
            raise TypeError(
                f"X must be an array of images or a sequence of paths or images, "
                f"got {_describe(X)}."
            )
        collection = _check_image_sequence(list(X))
    if len(collection) == 0 and not allow_empty:
        raise ValueError(
            "X is empty: at least one image is required (got 0 images)."
        )
    return collection


def _check_image_array(X):
    if X.ndim not in (3, 4):
        raise ValueError(
            f"X has shape {X.shape} ({X.ndim} dimensions); expected a stack of "
            "images (n, H, W) or (n, H, W, C) with C in {1, 3}. A single image "
            "needs a leading axis: X[None]. 2-D feature tables are not images."
        )
    if X.ndim == 4 and X.shape[-1] not in (1, 3):
        raise ValueError(
            f"X has {X.shape[-1]} channels (shape {X.shape}); only 1 (grayscale) "
            "or 3 (RGB) channels are allowed, channels last: (n, H, W, C)."
        )
    if X.shape[0] and (X.shape[1] < 1 or X.shape[2] < 1):
        raise ValueError(f"X has empty images of size {X.shape[1:3]}.")
    if X.dtype.kind == "b":
        X = X.astype(np.uint8) * 255
    if X.shape[0]:
        _check_values(X, "X")
    return ImageCollection(X, "array")


def _check_image_sequence(items):
    kinds = set()
    checked = []
    for index, item in enumerate(items):
        name = f"X[{index}]"
        if isinstance(item, (str, os.PathLike)):
            kinds.add("paths")
            path = str(os.fspath(item))
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"{name}: image file not found: {path!r}."
                )
            if os.path.isdir(path):
                raise ImageReadError(
                    f"{name}: expected an image file, got a directory: {path!r}."
                )
            checked.append(path)
        elif isinstance(item, Image.Image):
            kinds.add("objects")
            if item.size[0] < 1 or item.size[1] < 1:
                raise ValueError(f"{name} is an empty PIL image of size {item.size}.")
            checked.append(item)
        elif isinstance(item, np.ndarray) or hasattr(item, "__array__"):
            kinds.add("objects")
            checked.append(_check_array_image(np.asarray(item), name))
        else:
            raise TypeError(
                f"{name} is a {_describe(item)}; each image must be a file path "
                "(str or os.PathLike), a PIL image or a numpy array."
            )
        if len(kinds) > 1:
            raise TypeError(
                f"X mixes file paths and in-memory images ({name} is a "
                f"{_describe(item)} while earlier items are not); pass either only "
                "paths or only images."
            )
    kind = kinds.pop() if kinds else "objects"
    return ImageCollection(checked, kind)


class ImageDataset(torch.utils.data.Dataset):
    """A torch dataset over an :class:`ImageCollection`.

    Each item is ``({"x": image, "sample_weight": w}, y)``; the dict is the
    skorch way of passing extra per-sample values to the loss.

    Parameters
    ----------
    images : ImageCollection
    y : array-like of int, optional
        Encoded targets. ``-1`` is used where there are none.
    transform : callable
        Maps a ``(C, H, W)`` tensor to the network's input tensor.
    sample_weight : array-like of float, optional
    """

    def __init__(self, images, y=None, transform=None, sample_weight=None):
        self.images = images
        self.y = None if y is None else np.asarray(y, dtype=np.int64)
        self.transform = transform
        self.sample_weight = (
            None
            if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float32)
        )

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        weight = 1.0 if self.sample_weight is None else self.sample_weight[index]
        target = -1 if self.y is None else self.y[index]
        return {"x": image, "sample_weight": torch.tensor(weight)}, torch.tensor(
            target
        )


class ToChannels(torch.nn.Module):
    """Bring a ``(C, H, W)`` tensor to ``channels`` channels (1 or 3)."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, image):
        current = image.shape[-3]
        if current == self.channels:
            return image
        if current == 1:
            return image.expand(self.channels, *image.shape[-2:]).contiguous()
        from torchvision.transforms.v2 import functional as F

        return F.rgb_to_grayscale(image, num_output_channels=self.channels)

    def extra_repr(self):
        return f"channels={self.channels}"


class EqualizeHistogram(torch.nn.Module):
    """Per-image histogram equalisation of a uint8 or [0, 1] float tensor.

    Radiographs from different machines differ in exposure and contrast;
    equalising each image removes much of that acquisition shift.
    """

    def forward(self, image):
        from torchvision.transforms.v2 import functional as F

        if image.dtype == torch.uint8:
            return F.equalize(image)
        return F.equalize((image * 255).round().to(torch.uint8)).float() / 255

    def extra_repr(self):
        return ""


def build_transform(
    image_size,
    *,
    mean,
    std,
    channels=3,
    interpolation="bilinear",
    train=False,
    augment=True,
    equalize=False,
    detail_size=None,
):
    """Build the preprocessing of one image tensor.

    Parameters
    ----------
    image_size : int
        Output side in pixels (square).
    mean, std : sequence of float
        Normalisation statistics of the weights in use, one per channel.
    channels : int, default=3
        Channels the network expects.
    interpolation : {"bilinear", "bicubic", "nearest"}, default="bilinear"
        Resize interpolation, from the weights' own preprocessing.
    train : bool, default=False
        Whether to add the training augmentation.
    augment : bool, "geometric", "acquisition", "framing" or callable, \
default=True
        With ``train``: True or "geometric" adds random resized crops, small
        affine moves and brightness/contrast jitter; "acquisition" replaces
        the jitter by ``sklearn_cxr._augment.acquisition_augmentation``;
        "framing" by ``sklearn_cxr._augment.framing_augmentation``;
        a callable is applied to the resized float image in [0, 1] instead
        of the built-in augmentation; False or None adds none.
    equalize : bool, default=False
        Whether to equalise each image's histogram before anything else.
    detail_size : int or None, default=None
        When smaller than ``image_size``, the image is first resized to
        ``detail_size x detail_size`` (antialiased), which removes the detail
        finer than that scale before the resize to ``image_size``.

    Returns
    -------
    transform : torchvision.transforms.v2.Compose
    """
    from torchvision.transforms import InterpolationMode, v2

    if not isinstance(image_size, Integral) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}.")
    mode = InterpolationMode(interpolation)
    steps = [ToChannels(channels)]
    if equalize:
        steps.append(EqualizeHistogram())
    if detail_size is not None and detail_size < image_size:
        steps.append(
            v2.Resize((detail_size, detail_size), interpolation=mode, antialias=True)
        )
    if train and callable(augment) and not isinstance(augment, bool):
        steps += [
            v2.Resize((image_size, image_size), interpolation=mode, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            augment,
        ]
    elif train and augment:
        steps += [
            v2.RandomResizedCrop(
                image_size,
                scale=(0.80, 1.0),
                ratio=(0.9, 1.1),
                interpolation=mode,
                antialias=True,
            ),
            # grid-sampled ops take only nearest/bilinear on tensors
            v2.RandomAffine(
                degrees=7,
                translate=(0.05, 0.05),
                interpolation=InterpolationMode.BILINEAR,
            ),
            v2.ToDtype(torch.float32, scale=True),
        ]
        from ._augment import photometric_augmentation

        steps.append(photometric_augmentation(augment))
    else:
        steps += [
            v2.Resize((image_size, image_size), interpolation=mode, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
    mean = list(mean)[:channels] if channels == 3 else [float(np.mean(mean))]
    std = list(std)[:channels] if channels == 3 else [float(np.mean(std))]
    steps.append(v2.Normalize(mean=mean, std=std))
    return v2.Compose(steps)
