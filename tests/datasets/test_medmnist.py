"""PneumoniaMNIST: reading the schema, and the fetcher offline."""

import hashlib

import numpy as np
import pytest

from sklearn_cxr.datasets import (
    ChecksumError,
    _medmnist,
    fetch_pneumoniamnist,
    load_pneumoniamnist,
)


def _npz(path, n=(6, 2, 3), size=28, labels_2d=True, **overrides):
    rng = np.random.RandomState(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.randint(0, 256, (count, size, size)).astype(
            np.uint8
        )
        labels = np.arange(count) % 2
        arrays[f"{split}_labels"] = labels[:, None] if labels_2d else labels
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def test_load_every_split(tmp_path):
    path = _npz(tmp_path / "pm.npz")
    raw = np.load(path)
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        data = load_pneumoniamnist(path, split=split)
        assert data.images.shape == (count, 28, 28)
        np.testing.assert_array_equal(data.images, raw[f"{split}_images"])
        assert data.target.tolist() == [i % 2 for i in range(count)]
        assert list(data.target_names) == ["normal", "pneumonia"]
        assert "MedMNIST" in data.DESCR
    X, y = load_pneumoniamnist(
        _npz(tmp_path / "flat.npz", labels_2d=False), split="val", return_X_y=True
    )
    assert X.shape == (2, 28, 28) and y.tolist() == [0, 1]


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"train_labels": np.array([[0], [1], [2], [0], [1], [0]])}, "holds 2"),
        ({"train_labels": np.zeros((5, 1))}, r"has shape \(5, 1\)"),
        ({"train_images": np.zeros((6, 28, 28), np.float32)}, "uint8"),
        ({"train_images": np.zeros((6, 28, 28, 3), np.uint8)}, r"\(n, H, W\)"),
    ],
)
def test_load_rejects_bad_schema(tmp_path, overrides, match):
    path = _npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(ValueError, match=match):
        load_pneumoniamnist(path)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_pneumoniamnist(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz.*not a readable .npz"):
        load_pneumoniamnist(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, test_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"no array\(s\) \['test_labels'\]"):
        load_pneumoniamnist(partial, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_pneumoniamnist(partial, split="validation")


def test_published_md5_table():
    assert sorted(_medmnist.PNEUMONIAMNIST_FILES) == [28, 64, 128, 224]
    for size, remote in _medmnist.PNEUMONIAMNIST_FILES.items():
        assert remote.algorithm == "md5" and len(remote.checksum) == 32
        assert remote.url.startswith("https://zenodo.org/records/10519652/")
        assert (f"_{size}" in remote.filename) == (size != 28)


@pytest.fixture
def local_record(tmp_path, monkeypatch):
    """Point the 64-pixel entry at a local file with its real MD5."""
    source = _npz(tmp_path / "remote.npz", size=64)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    remote = _medmnist.PNEUMONIAMNIST_FILES[64]._replace(
        url=source.as_uri(), checksum=md5
    )
    monkeypatch.setitem(_medmnist.PNEUMONIAMNIST_FILES, 64, remote)
    return source


def test_fetch_downloads_verifies_and_caches(tmp_path, local_record):
    home = tmp_path / "home"
    data = fetch_pneumoniamnist(size=64, split="test", data_home=home)
    assert data.images.shape == (3, 64, 64)
    cached = home / "medmnist" / "pneumoniamnist_64.npz"
    assert cached.read_bytes() == local_record.read_bytes()
    local_record.unlink()  # the cache alone serves it now
    X, y = fetch_pneumoniamnist(
        size=64, data_home=home, download_if_missing=False, return_X_y=True
    )
    assert X.shape == (6, 64, 64) and y.tolist() == [0, 1, 0, 1, 0, 1]


def test_fetch_checksum_mismatch_rejected(tmp_path, local_record, monkeypatch):
    remote = _medmnist.PNEUMONIAMNIST_FILES[64]._replace(checksum="0" * 32)
    monkeypatch.setitem(_medmnist.PNEUMONIAMNIST_FILES, 64, remote)
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="downloaded file.*has md5"):
        fetch_pneumoniamnist(size=64, data_home=home)
    assert not (home / "medmnist" / "pneumoniamnist_64.npz").exists()


def test_fetch_verifies_a_cached_file(tmp_path):
    """A file in the cache is checked against MedMNIST's published MD5."""
    home = tmp_path / "home"
    (home / "medmnist").mkdir(parents=True)
    _npz(home / "medmnist" / "pneumoniamnist.npz")
    with pytest.raises(ChecksumError, match="28209eda62fecd6e6a2d98b1501bb15f"):
        fetch_pneumoniamnist(data_home=home, download_if_missing=False)


def test_fetch_missing_names_the_path(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(FileNotFoundError) as info:
        fetch_pneumoniamnist(size=128, data_home=home, download_if_missing=False)
    assert str(home / "medmnist" / "pneumoniamnist_128.npz") in str(info.value)
    assert "zenodo.org/records/10519652" in str(info.value)


def test_fetch_uses_the_environment_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_CXR_DATA", str(tmp_path / "env_home"))
    with pytest.raises(FileNotFoundError, match="env_home"):
        fetch_pneumoniamnist(download_if_missing=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"size": 32}, r"size must be one of \[28, 64, 128, 224\]"),
     ({"split": "all"}, "split must be one of")],
)
def test_fetch_bad_parameters(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fetch_pneumoniamnist(data_home=tmp_path, **kwargs)
