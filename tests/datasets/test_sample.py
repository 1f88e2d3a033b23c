"""The embedded sample of real chest X-rays (load_sample_chest_xrays)."""

import csv
from pathlib import Path

import numpy as np
import pytest

from sklearn_cxr.datasets import _sample, load_chest_xray, load_sample_chest_xrays

FOLDER = Path(_sample.__file__).parent / _sample.SAMPLE_FOLDER


def _csv_rows():
    with open(FOLDER / "sample.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_sample_images_labels_and_groups():
    data = load_sample_chest_xrays()
    assert data.images.shape == (407, 128, 128)
    assert data.images.dtype == np.uint8
    assert data.target_names.tolist() == ["NORMAL", "PNEUMONIA"]
    assert np.bincount(data.target).tolist() == [200, 207]
    assert len(set(data.groups)) == 261
    # both normal file-name families and both pneumonia subtypes
    normal = data.groups[data.target == 0]
    assert any(g.startswith("NORMAL2-IM-") for g in normal)
    assert any(g.startswith("IM-") for g in normal)
    assert set(data.subtype) == {"normal", "bacteria", "virus"}
    # real radiographs, not blank files
    assert data.images.std() > 30


def test_sample_matches_its_csv():
    data = load_sample_chest_xrays(return_paths=True)
    rows = {row["filename"]: row for row in _csv_rows()}
    assert sorted(rows) == sorted(data.filenames.tolist())
    for name, label, group, subtype in zip(
        data.filenames, data.target_names[data.target], data.groups, data.subtype
    ):
        row = rows[name]
        assert (row["label"], row["patient"], row["subtype"]) == (
            label,
            group,
            subtype,
        )
    assert all(Path(p).is_file() for p in data.paths)


def test_sample_subtypes_and_return_x_y():
    data = load_sample_chest_xrays(labels="subtype", image_size=32)
    assert data.target_names.tolist() == ["normal", "bacterial", "viral"]
    assert np.bincount(data.target).tolist() == [200, 137, 70]
    X, y = load_sample_chest_xrays(return_X_y=True, image_size=32)
    assert X.shape == (407, 32, 32)
    np.testing.assert_array_equal(y, load_sample_chest_xrays(return_paths=True).target)


def test_sample_licence_and_attribution():
    descr = load_sample_chest_xrays(return_paths=True).DESCR
    licence = (FOLDER / "LICENSE.txt").read_text(encoding="utf-8")
    for text in (descr, licence):
        assert "CC BY 4.0" in text
        assert "10.17632/rscbjbr9sj" in text
        assert "10.1016/j.cell.2018.02.010" in text
        assert "Kermany" in text


def test_sample_is_small():
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file())
    assert size < 5e6


def test_missing_sample_says_to_reinstall(monkeypatch):
    monkeypatch.setattr(_sample, "SAMPLE_FOLDER", "data/no_such_sample")
    with pytest.raises(FileNotFoundError, match="installation .* incomplete"):
        load_sample_chest_xrays()


def test_sample_keeps_every_image_of_its_patients(shared_data_dir):
    full = load_chest_xray(shared_data_dir, split="train", return_paths=True)
    sample = load_sample_chest_xrays(return_paths=True)
    chosen = set(sample.groups)
    expected = sorted(
        Path(f).name for f, g in zip(full.filenames, full.groups) if g in chosen
    )
    assert sorted(Path(f).name for f in sample.filenames) == expected
