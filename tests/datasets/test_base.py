"""The data home, checked downloads and safe extraction, all offline."""

import hashlib
import io
import os
import stat
import tarfile
import zipfile

import pytest

from sklearn_cxr.datasets import (
    ChecksumError,
    UnsafeArchiveError,
    clear_data_home,
    get_data_home,
)
from sklearn_cxr.datasets._base import (
    RemoteFileMetadata,
    _fetch_remote,
    _resolve_local_file,
    _safe_extract,
)


def test_get_data_home_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_CXR_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == str(tmp_path / "from_env")
    assert os.path.isdir(tmp_path / "from_env")
    assert get_data_home(tmp_path / "explicit") == str(tmp_path / "explicit")


def test_get_data_home_default_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SKLEARN_CXR_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_data_home() == str(tmp_path / "sklearn_cxr_data")


def test_clear_data_home(tmp_path):
    home = get_data_home(tmp_path / "home")
    (tmp_path / "home" / "sub").mkdir()
    (tmp_path / "home" / "sub" / "f.npz").write_bytes(b"x")
    clear_data_home(home)
    assert not os.path.exists(home)


def _remote(path, algorithm="sha256", checksum=None, name="data.bin"):
    if checksum is None:
        checksum = hashlib.new(algorithm, path.read_bytes()).hexdigest()
    return RemoteFileMetadata(name, path.as_uri(), checksum, algorithm)


def test_fetch_remote_file_url_verified(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"chest x-ray" * 1000)
    cache = tmp_path / "cache"
    path = _fetch_remote(_remote(source), str(cache))
    assert path == str(cache / "data.bin")
    assert (cache / "data.bin").read_bytes() == source.read_bytes()
    assert os.listdir(cache) == ["data.bin"]  # no temporary file left


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_fetch_remote_checksum_mismatch_leaves_nothing(tmp_path, algorithm):
    source = tmp_path / "source.bin"
    source.write_bytes(b"tampered")
    cache = tmp_path / "cache"
    remote = _remote(source, algorithm, checksum="0" * 32)
    with pytest.raises(ChecksumError, match=f"has {algorithm} .*data.bin should"):
        _fetch_remote(remote, str(cache))
    assert os.listdir(cache) == []


def test_fetch_remote_unreachable_says_where_to_put_file(tmp_path):
    remote = RemoteFileMetadata(
        "data.bin", (tmp_path / "absent.bin").as_uri(), "0" * 64, "sha256"
    )
    with pytest.raises(OSError, match="put it at .*data.bin"):
        _fetch_remote(remote, str(tmp_path / "cache"))


def test_resolve_local_file_cached_and_missing(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"abc")
    remote = _remote(source)
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError) as info:
        _resolve_local_file(remote, str(cache), download_if_missing=False)
    assert str(cache / "data.bin") in str(info.value)
    assert remote.url in str(info.value)
    path = _resolve_local_file(remote, str(cache), download_if_missing=True)
    assert open(path, "rb").read() == b"abc"
    # a cached file is verified too
    (cache / "data.bin").write_bytes(b"abd")
    with pytest.raises(ChecksumError, match="cached file"):
        _resolve_local_file(remote, str(cache), download_if_missing=False)


# --------------------------------------------------------------- extraction
def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def test_safe_extract_zip_and_tar(tmp_path):
    archive = _zip(
        tmp_path / "ok.zip", [("chest_xray/train/NORMAL/IM-1-1.jpeg", b"x")]
    )
    _safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/chest_xray/train/NORMAL/IM-1-1.jpeg").read_bytes() == b"x"

    tar_path = tmp_path / "ok.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    _safe_extract(tar_path, tmp_path / "out2")
    assert (tmp_path / "out2/a/b.txt").read_bytes() == b"hi"


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil_abs.txt"]
)
def test_safe_extract_zip_slip_refused(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", [("fine.txt", b"ok"), (name, b"evil")])
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="evil"):
        _safe_extract(archive, target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "fine.txt").exists()  # nothing written before the check


def test_safe_extract_zip_symlink_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        _safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink"])
def test_safe_extract_tar_refused(tmp_path, kind):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        if kind == "traversal":
            info = tarfile.TarInfo("../../evil.txt")
        elif kind == "absolute":
            info = tarfile.TarInfo("/tmp/evil.txt")
        else:
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd"
        info.size = 0 if kind in ("symlink", "hardlink") else 4
        tf.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(UnsafeArchiveError, match="Refusing to extract"):
        _safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_rejects_non_archive(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        _safe_extract(junk, tmp_path / "out")
