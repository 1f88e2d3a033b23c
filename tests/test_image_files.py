"""The one rule for "is this an image file", on hostile and odd names."""

import os

import numpy as np
import pytest
from PIL import Image

from sklearn_cxr._cli._predict import image_files
from sklearn_cxr._image_files import (
    IMAGE_EXTENSIONS,
    is_image_file,
    list_image_files,
)
from sklearn_cxr.datasets import load_chest_xray


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture
def odd_folder(tmp_path):
    """A class folder full of traps; returns (folder, the real image files)."""
    root = tmp_path / "PNEUMONIA"
    images = [
        _png(root / "UPPER.PNG"),
        _png(root / "mixed.JpEg"),
        _png(root / "name with spaces, commas.png"),
        _png(root / "x.txt.png"),
        _png(root / "nested" / "deep" / "d.tif"),
        _png(root / "scan.png" / "inside.png"),  # a folder named like an image
    ]
    os.symlink(images[0], root / "link-to-image.png")
    images.append(root / "link-to-image.png")
    # not images
    _png(root / ".hidden.png")
    _png(root / "._resource-fork.jpeg")
    _png(root / ".thumbnails" / "t.png")  # hidden folder: not entered
    _png(root / "no-suffix")
    _png(root / "x.png.txt")
    _png(root / "png")
    os.symlink(root / "missing.png", root / "broken-link.png")
    os.symlink(root / "nested", root / "link-to-folder")  # not entered twice
    os.symlink(root, root / "nested" / "loop")  # nor in circles
    return root, sorted(map(str, images), key=lambda p: p.split(os.sep))


def test_is_image_file_on_odd_names(odd_folder):
    root, images = odd_folder
    for path in images:
        assert is_image_file(path), path
    for name in (".hidden.png", "._resource-fork.jpeg", "no-suffix", "x.png.txt",
                 "png", "broken-link.png", "scan.png", "link-to-folder",
                 "does-not-exist.png"):
        assert not is_image_file(root / name), name
    assert set(IMAGE_EXTENSIONS) >= {".png", ".jpeg", ".jpg", ".dcm"}


def test_list_image_files_finds_exactly_the_images(odd_folder):
    root, images = odd_folder
    assert list_image_files(root) == images
    with pytest.raises(NotADirectoryError, match="UPPER.PNG"):
        list_image_files(root / "UPPER.PNG")


def test_loader_and_command_line_use_the_same_rule(odd_folder):
    root, images = odd_folder
    with pytest.warns(UserWarning, match=r"\['NORMAL'\] not found"):
        data = load_chest_xray(root.parent, return_paths=True)
    assert sorted(map(os.path.realpath, data.paths)) == sorted(
        map(os.path.realpath, images)
    )
    assert image_files([root]) == images
