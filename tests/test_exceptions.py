"""Every package error lives in sklearn_cxr.exceptions; old paths still work."""

import pytest

import sklearn_cxr
from sklearn_cxr import exceptions


@pytest.mark.parametrize(
    "module, name",
    [
        ("sklearn_cxr", "ImageReadError"),
        ("sklearn_cxr", "ModelFileError"),
        ("sklearn_cxr", "WeightsUnavailableError"),
        ("sklearn_cxr._images", "ImageReadError"),
        ("sklearn_cxr._model_schema", "ModelFileError"),
        ("sklearn_cxr._persistence", "ModelFileError"),
        ("sklearn_cxr._backbones", "WeightsUnavailableError"),
        ("sklearn_cxr.datasets", "ChecksumError"),
        ("sklearn_cxr.datasets", "UnsafeArchiveError"),
        ("sklearn_cxr.datasets._base", "ChecksumError"),
    ],
)
def test_old_import_paths_give_the_one_class(module, name):
    import importlib

    assert getattr(importlib.import_module(module), name) is getattr(
        exceptions, name
    )


def test_errors_subclass_what_callers_already_catch():
    assert issubclass(exceptions.ImageReadError, OSError)
    assert issubclass(exceptions.ImageReadError, ValueError)
    assert issubclass(exceptions.ModelFileError, ValueError)
    assert issubclass(exceptions.WeightsUnavailableError, OSError)
    assert issubclass(exceptions.ChecksumError, OSError)
    assert issubclass(exceptions.UnsafeArchiveError, ValueError)
    assert set(exceptions.__all__) == {
        name for name in vars(exceptions) if name.endswith("Error")
    }


def test_version_comes_from_one_place():
    from sklearn_cxr._version import __version__

    assert sklearn_cxr.__version__ == __version__
