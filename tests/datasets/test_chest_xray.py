"""load_chest_xray and fetch_chest_xray on files the tests create, and the
real counts of the shared training split."""

import hashlib
import os
import zipfile

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import StratifiedGroupKFold

from sklearn_cxr import ImageReadError
from sklearn_cxr.datasets import (
    ChecksumError,
    UnsafeArchiveError,
    _chest_xray,
    fetch_chest_xray,
    load_chest_xray,
)


def _save(path, size=(40, 30), mode="L", value=100, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        array = np.full(size[::-1], value * 200, dtype=np.uint16)
        Image.fromarray(array).save(path, **kwargs)
    else:
        Image.new(mode, size, value if mode == "L" else (value,) * 3).save(
            path, **kwargs
        )
    return path


@pytest.fixture
def kermany_tree(tmp_path):
    """A small Kermany-style tree with awkward names and formats."""
    root = tmp_path / "chest xray ü"
    train = root / "train"
    files = {
        "NORMAL/IM-0115-0001.jpeg": {},
        "NORMAL/IM-0115-0002.JPG": {"size": (50, 60)},
        "NORMAL/IM-0429-0001-0002.png": {"mode": "I;16"},
        "NORMAL/NORMAL2-IM-0115-0001.jpeg": {"mode": "RGB"},
        "NORMAL/batch 2/NORMAL2-IM-0381-0001.PNG": {},
        "PNEUMONIA/person1_bacteria_1.jpeg": {},
        "PNEUMONIA/person1_bacteria_2.jpeg": {"size": (70, 20)},
        "PNEUMONIA/person12_virus_5.tif": {},
        "PNEUMONIA/person12_bacteria_9.jpeg": {},
        "PNEUMONIA/person447_virus_921_1.jpeg": {},
    }
    for name, kwargs in files.items():
        _save(train / name, **kwargs)
    # things that are not images of the data set
    (train / "NORMAL" / ".DS_Store").write_bytes(b"\0\0")
    (train / "NORMAL" / "._IM-0115-0001.jpeg").write_bytes(b"resource fork")
    (train / "PNEUMONIA" / "notes.txt").write_text("not an image")
    _save(root / "test" / "normal" / "IM-0001-0001.jpeg")
    return root


def test_binary_labels_groups_subtypes(kermany_tree):
    data = load_chest_xray(kermany_tree, split="train", image_size=32)
    assert data.images.shape == (10, 32, 32) and data.images.dtype == np.uint8
    assert list(data.target_names) == ["NORMAL", "PNEUMONIA"]
    by_name = {os.path.basename(f): i for i, f in enumerate(data.filenames)}
    assert len(by_name) == 10
    group = {name: data.groups[i] for name, i in by_name.items()}
    # two images of patient IM-0115 share a group...
    assert group["IM-0115-0001.jpeg"] == group["IM-0115-0002.JPG"] == "IM-0115"
    # ...but NORMAL2-IM-0115 is another patient
    assert group["NORMAL2-IM-0115-0001.jpeg"] == "NORMAL2-IM-0115"
    assert group["IM-0429-0001-0002.png"] == "IM-0429"
    assert group["person12_virus_5.tif"] == group["person12_bacteria_9.jpeg"]
    assert group["person447_virus_921_1.jpeg"] == "person447"
    subtype = {name: data.subtype[i] for name, i in by_name.items()}
    assert subtype["person1_bacteria_2.jpeg"] == "bacteria"
    assert subtype["person12_virus_5.tif"] == "virus"
    assert subtype["NORMAL2-IM-0381-0001.PNG"] == "normal"
    np.testing.assert_array_equal(data.target, [0] * 5 + [1] * 5)
    assert "NORMAL/batch 2/NORMAL2-IM-0381-0001.PNG" in data.filenames
    assert "Kermany" in data.DESCR


def test_subtype_labels(kermany_tree):
    data = load_chest_xray(kermany_tree, split="train", labels="subtype",
                           return_paths=True)
    assert list(data.target_names) == ["normal", "bacterial", "viral"]
    codes = {"normal": 0, "bacteria": 1, "virus": 2}
    np.testing.assert_array_equal(data.target, [codes[s] for s in data.subtype])
    assert sorted(np.bincount(data.target)) == [2, 3, 5]


def test_images_keep_their_size_without_image_size(kermany_tree):
    data = load_chest_xray(kermany_tree, split="train")
    assert isinstance(data.images, list)
    shapes = {f: im.shape for f, im in zip(data.filenames, data.images)}
    assert shapes["NORMAL/IM-0115-0002.JPG"] == (60, 50)
    assert shapes["PNEUMONIA/person1_bacteria_2.jpeg"] == (20, 70)
    assert all(im.ndim == 2 and im.dtype == np.uint8 for im in data.images)
    # the 16-bit PNG is scaled to 8 bit, the RGB JPEG made grayscale
    assert shapes["NORMAL/IM-0429-0001-0002.png"] == (30, 40)


def test_return_paths_and_X_y(kermany_tree):
    paths, y = load_chest_xray(
        kermany_tree, split="train", return_paths=True, return_X_y=True
    )
    assert len(paths) == len(y) == 10
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in paths)
    data = load_chest_xray(kermany_tree, split="train", return_paths=True)
    assert "images" not in data
    np.testing.assert_array_equal(data.paths, paths)
    X, y2 = load_chest_xray(kermany_tree, split="train", image_size=16,
                            return_X_y=True)
    assert X.shape == (10, 16, 16)
    np.testing.assert_array_equal(y, y2)


def test_split_none_and_case_insensitive_class_folders(kermany_tree):
    with pytest.warns(UserWarning, match=r"\['PNEUMONIA'\] not found"):
        data = load_chest_xray(kermany_tree / "test", return_paths=True)
    assert data.groups.tolist() == ["IM-0001"]
    with pytest.warns(UserWarning, match=r"\['PNEUMONIA'\] not found"):
        data = load_chest_xray(kermany_tree, split="test", return_paths=True)
    assert data.target.tolist() == [0]


def test_parallel_decoding_with_progress_bar(kermany_tree, capsys):
    serial = load_chest_xray(kermany_tree, split="train", image_size=24)
    parallel = load_chest_xray(
        kermany_tree, split="train", image_size=24, n_jobs=2, verbose=1
    )
    np.testing.assert_array_equal(serial.images, parallel.images)
    assert "Decoding images" in capsys.readouterr().err
    load_chest_xray(kermany_tree, split="train", image_size=24, verbose=0)
    assert "Decoding images" not in capsys.readouterr().err


def test_errors_name_the_problem(kermany_tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="Split folder 'val' not found.*"
                       r"\['test', 'train'\]"):
        load_chest_xray(kermany_tree, split="val")
    with pytest.raises(FileNotFoundError, match="Data folder not found"):
        load_chest_xray(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="No class folder NORMAL or PNEUMONIA"):
        load_chest_xray(kermany_tree)  # holds split folders, split=None
    (tmp_path / "empty" / "NORMAL").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no image file"):
        with pytest.warns(UserWarning, match="PNEUMONIA"):
            load_chest_xray(tmp_path / "empty")
    with pytest.raises(ValueError, match="labels must be one of"):
        load_chest_xray(kermany_tree, labels="multiclass")
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_chest_xray(kermany_tree, split="train", image_size=0)


def test_unparsed_names(tmp_path):
    _save(tmp_path / "NORMAL" / "scan 1.jpeg")
    _save(tmp_path / "PNEUMONIA" / "scan 1.jpeg")
    data = load_chest_xray(tmp_path, return_paths=True)
    # each unparsed file is its own group, never merged across classes
    assert data.groups.tolist() == ["NORMAL/scan 1", "PNEUMONIA/scan 1"]
    assert data.subtype.tolist() == ["normal", "unknown"]
    with pytest.raises(ValueError, match="PNEUMONIA/scan 1.jpeg.*labels='binary'"):
        load_chest_xray(tmp_path, labels="subtype", return_paths=True)


def test_truncated_image_error_names_file(tmp_path):
    good = _save(tmp_path / "NORMAL" / "IM-0001-0001.jpeg", size=(64, 64))
    bad = tmp_path / "PNEUMONIA" / "person1_virus_1.jpeg"
    bad.parent.mkdir()
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="person1_virus_1.jpeg"):
        load_chest_xray(tmp_path, image_size=16)


# ------------------------------------------------------------------ fetcher
def _archive(tmp_path, members):
    path = tmp_path / "remote" / "ChestXRay2017.zip"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name in members:
            source = _save(tmp_path / "src" / os.path.basename(name))
            zf.write(source, name)
    return path


@pytest.fixture
def local_archive(tmp_path, monkeypatch):
    path = _archive(
        tmp_path,
        [
            "chest_xray/train/NORMAL/IM-0001-0001.jpeg",
            "chest_xray/train/PNEUMONIA/person1_virus_1.jpeg",
            "chest_xray/test/NORMAL/IM-0002-0001.jpeg",
            "chest_xray/test/PNEUMONIA/person2_bacteria_3.jpeg",
        ],
    )
    monkeypatch.setattr(
        _chest_xray,
        "KERMANY_ARCHIVE",
        _chest_xray.KERMANY_ARCHIVE._replace(url=path.as_uri()),
    )
    return path


def test_fetch_downloads_verifies_extracts_and_caches(tmp_path, local_archive):
    digest = hashlib.sha256(local_archive.read_bytes()).hexdigest()
    home = tmp_path / "home"
    data = fetch_chest_xray(data_home=home, sha256=digest, return_paths=True)
    assert data.groups.tolist() == ["IM-0001", "person1"]
    assert not (home / "chest_xray" / "ChestXRay2017.zip").exists()
    local_archive.unlink()  # now only the cache can serve it
    X, y = fetch_chest_xray(
        split="test", data_home=home, download_if_missing=False, image_size=8,
        return_X_y=True,
    )
    assert X.shape == (2, 8, 8) and y.tolist() == [0, 1]


def test_fetch_without_checksum_logs_sha256(tmp_path, local_archive, caplog):
    digest = hashlib.sha256(local_archive.read_bytes()).hexdigest()
    with caplog.at_level("WARNING"):
        fetch_chest_xray(data_home=tmp_path / "home", return_paths=True)
    assert digest in caplog.text


def test_fetch_checksum_mismatch_rejected(tmp_path, local_archive):
    home = tmp_path / "home"
    with pytest.raises(ChecksumError, match="ChestXRay2017.zip should have"):
        fetch_chest_xray(data_home=home, sha256="0" * 64)
    assert os.listdir(home / "chest_xray") == []


def test_fetch_missing_says_where_to_put_archive(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(FileNotFoundError) as info:
        fetch_chest_xray(data_home=home, download_if_missing=False)
    assert str(home / "chest_xray" / "ChestXRay2017.zip") in str(info.value)


def test_fetch_refuses_zip_slip(tmp_path, monkeypatch):
    path = _archive(tmp_path, ["chest_xray/train/NORMAL/IM-1-1.jpeg", "../x.jpeg"])
    monkeypatch.setattr(
        _chest_xray,
        "KERMANY_ARCHIVE",
        _chest_xray.KERMANY_ARCHIVE._replace(url=path.as_uri()),
    )
    with pytest.raises(UnsafeArchiveError, match=r"\.\./x\.jpeg"):
        fetch_chest_xray(data_home=tmp_path / "home")
    assert not (tmp_path / "home" / "x.jpeg").exists()


# -------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_real_training_split_counts_and_groups(shared_data_dir):
    data = load_chest_xray(
        shared_data_dir, split="train", labels="subtype", return_paths=True
    )
    counts = dict(zip(*np.unique(data.subtype, return_counts=True)))
    assert counts == {"normal": 1341, "bacteria": 2530, "virus": 1345}
    binary = (data.target > 0).astype(int)
    assert np.bincount(binary).tolist() == [1341, 3875]
    assert "unknown" not in set(data.subtype)
    # patients: several images each, never on both sides of a split
    n_groups = len(np.unique(data.groups))
    assert n_groups < len(data.groups)
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    for train, test in cv.split(data.paths, binary, data.groups):
        assert not set(data.groups[train]) & set(data.groups[test])


def test_two_fetches_into_one_data_home_both_succeed(tmp_path, local_archive,
                                                     monkeypatch):
    """Concurrent fetches take turns; extraction is slowed down so that both
    are inside it at once, as two processes were in 3 of 3 tries."""
    import threading
    import time

    real_extract = _chest_xray._safe_extract

    def slow_extract(archive, target):
        time.sleep(0.5)
        return real_extract(archive, target)

    monkeypatch.setattr(_chest_xray, "_safe_extract", slow_extract)
    home = tmp_path / "home"
    results, errors = [], []

    def fetch():
        try:
            results.append(fetch_chest_xray(data_home=home, return_paths=True))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(results) == 2
    for data in results:
        assert data.groups.tolist() == ["IM-0001", "person1"]
    assert not (home / "chest_xray" / "ChestXRay2017.zip").exists()
