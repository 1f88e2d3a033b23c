"""Every error the package raises on purpose, in one place.

Each one subclasses the built-in error a caller would already catch
(``ValueError``, ``OSError``), so ``except ValueError`` keeps working. The
modules that raise them still re-export them under their old import paths.
"""

__all__ = [
    "ChecksumError",
    "ImageReadError",
    "ModelFileError",
    "UnsafeArchiveError",
    "WeightsUnavailableError",
]


class ImageReadError(OSError, ValueError):
    """An image file could not be read: missing, empty, truncated, not an image
    or too large. The message names the file.

    It subclasses both :class:`OSError` and :class:`ValueError` so that callers
    catching either see it.
    """


class ModelFileError(ValueError):
    """A file is not a safe sklearn_cxr model, or would need untrusted code."""


class WeightsUnavailableError(OSError):
    """Pretrained weights could not be loaded (no network, no cached file)."""


class ChecksumError(OSError, ValueError):
    """A downloaded or cached file does not have its published checksum."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the extraction folder."""
