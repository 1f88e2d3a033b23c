"""The sklearn-cxr command line: help, train/predict/evaluate, demo, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sklearn_cxr import PretrainedCNNClassifier


def _write_split(folder, n_per_class, rng):
    kinds = ("bacteria", "virus")
    for i in range(n_per_class):
        normal = rng.randint(0, 120, (32, 32), dtype=np.uint8)
        sick = rng.randint(0, 120, (32, 32), dtype=np.uint8)
        sick[8:24, 8:24] = 255
        # two images per patient, named as in Kermany et al.
        patient = i // 2
        for label, image, name in [
            ("NORMAL", normal, f"IM-{patient:04d}-{i % 2 + 1:04d}.png"),
            ("PNEUMONIA", sick, f"person{patient}_{kinds[patient % 2]}_{i}.png"),
        ]:
            os.makedirs(folder / label, exist_ok=True)
            Image.fromarray(image).save(folder / label / name)


@pytest.fixture(scope="module")
def kermany(tmp_path_factory):
    """root/{train,test}/{NORMAL,PNEUMONIA}/*.png, 32 px."""
    root = tmp_path_factory.mktemp("chest_xray")
    rng = np.random.RandomState(0)
    _write_split(root / "train", 10, rng)
    _write_split(root / "test", 6, rng)
    return root


def assert_one_line_error(status, err, *fragments, code=1):
    assert status == code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("sklearn-cxr")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_everywhere(cli):
    status, out, _ = cli(["--help"])
    assert status == 0
    for command in ("train", "predict", "evaluate", "demo"):
        assert command in out
        status, out_cmd, _ = cli([command, "--help"])
        assert status == 0 and "usage: sklearn-cxr " + command in out_cmd
    _, out, _ = cli(["train", "--help"])
    for option in ("--out", "--backbone", "--weights", "--mode", "--epochs",
                   "--image-size", "--labels", "--device", "--joblib"):
        assert option in out


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, model_name", [("features", "model.cxr"), ("finetune", "model.joblib")]
)
def test_train_predict_evaluate(kermany, tmp_path, cli, mode, model_name):
    model = tmp_path / model_name
    argv = ["train", kermany, "--out", model, "--weights", "none", "--mode", mode,
            "--epochs", 1, "--image-size", 32, "--batch-size", 8, "-q"]
    if model_name.endswith(".joblib"):
        argv.append("--joblib")
    status, out, err = cli(argv)
    assert status == 0, err
    assert "20 images of 10 patients" in out  # the train split only
    assert model.is_file()
    loaded = (
        PretrainedCNNClassifier.load(model)
        if model_name.endswith(".cxr")
        else __import__("joblib").load(model)
    )
    assert loaded.mode == mode and loaded.classes_.tolist() == ["NORMAL", "PNEUMONIA"]

    test_dir = kermany / "test"
    trust = ["--trust-pickle"] if model_name.endswith(".joblib") else []
    status, out, err = cli(["predict", model, test_dir, "--json", "-q", *trust])
    assert status == 0, err
    rows = json.loads(out)
    assert len(rows) == 12
    assert {os.path.basename(os.path.dirname(r["path"])) for r in rows} == {
        "NORMAL", "PNEUMONIA"}
    for row in rows:
        assert row["label"] in ("NORMAL", "PNEUMONIA")
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
        assert row["probability"] == row["probabilities"][row["label"]]
    expected = loaded.predict(sorted(r["path"] for r in rows)).tolist()
    assert [r["label"] for r in sorted(rows, key=lambda r: r["path"])] == expected

    # a threshold of 0 calls everything positive; CSV output, a header and
    # one row per image
    one = str(test_dir / "NORMAL" / "IM-0000-0001.png")
    status, out, _ = cli(["predict", model, one, "--threshold", "0", "-q", *trust])
    assert status == 0
    header, row = out.strip().splitlines()
    assert header == "path,label,p_NORMAL,p_PNEUMONIA,threshold"
    path, label, p_normal, p_pneumonia, threshold = row.split(",")
    assert (path, label, threshold) == (one, "PNEUMONIA", "0.0")
    assert float(p_normal) + float(p_pneumonia) == pytest.approx(1.0)

    report_dir = tmp_path / "report"
    status, out, err = cli(
        ["evaluate", model, kermany, "--report", report_dir, "--n-bootstrap", 50,
         "-q", *trust],
    )
    assert status == 0, err
    for name in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        assert name in out
    assert "12 images, 6 patients" in out  # the test split, by patient
    saved = json.loads((report_dir / "report.json").read_text())
    assert saved["n_samples"] == 12 and saved["resampled_by"] == "patient"
    assert np.sum(saved["confusion_matrix"]) == 12
    for name in saved["figures"].values():
        assert (report_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert {"roc_curve", "confusion_matrix"} <= set(saved["figures"])
    errors = saved["confusion_matrix"][0][1] + saved["confusion_matrix"][1][0]
    assert ("gradcam_errors" in saved["figures"]) == (errors > 0)


def test_subtype_labels(kermany, tmp_path, cli):
    model = tmp_path / "subtype.cxr"
    status, _, err = cli(
        ["train", kermany, "--out", model, "--labels", "subtype", "--weights",
         "none", "--mode", "features", "--image-size", 32, "-q"],
    )
    assert status == 0, err
    classes = PretrainedCNNClassifier.load(model).classes_.tolist()
    assert classes == ["bacterial", "normal", "viral"]
    status, out, err = cli(
        ["evaluate", model, kermany, "--n-bootstrap", 20, "--json", "-q"],
    )
    assert status == 0, err
    report = json.loads(out)
    # disease (bacterial or viral) against normal, on the 12 test images
    assert report["labels"] == ["normal", "PNEUMONIA"]
    assert np.asarray(report["confusion_matrix"]).sum(axis=1).tolist() == [6, 6]


def test_bad_paths_and_options(kermany, tmp_path, cli):
    status, _, err = cli(["train", tmp_path / "missing", "--out", tmp_path / "m.cxr"])
    assert_one_line_error(status, err, "missing")
    status, _, err = cli(
        ["train", kermany, "--out", tmp_path / "no" / "such" / "m.cxr"],
    )
    assert_one_line_error(status, err, "does not exist")
    status, _, err = cli(["train", kermany, "--out", "m.cxr", "--mode", "bogus"])
    assert_one_line_error(status, err, "invalid choice", code=2)
    status, _, err = cli(["train", kermany])
    assert_one_line_error(status, err, "--out", code=2)
    status, _, err = cli(["predict", tmp_path / "nope.cxr", kermany])
    assert_one_line_error(status, err, "model file not found")
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    status, _, err = cli(["evaluate", not_a_model, kermany])
    assert_one_line_error(status, err, "is not a model")
    status, _, err = cli(["predict", "m.cxr", "x", "--threshold", "2"])
    assert_one_line_error(status, err, "[0, 1]", code=2)
    status, _, err = cli(
        ["train", kermany, "--out", tmp_path / "m.cxr", "--backbone", "resnet181",
         "--weights", "none", "-q"],
    )
    assert_one_line_error(status, err, "resnet181", "resnet18")


def test_bad_image_and_folder(kermany, tmp_path, cli):
    model = tmp_path / "m.cxr"
    status, _, err = cli(
        ["train", kermany, "--out", model, "--weights", "none", "--mode", "features",
         "--image-size", 32, "-q"],
    )
    assert status == 0, err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    status, _, err = cli(["predict", model, broken, "-q"])
    assert_one_line_error(status, err, "broken.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = cli(["predict", model, empty])
    assert_one_line_error(status, err, "no image files")
    status, _, err = cli(["predict", model, tmp_path / "ghost.png"])
    assert_one_line_error(status, err, "no such file or folder")


@pytest.mark.slow
def test_subprocess_exit_status_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "sklearn_cxr", "evaluate", str(tmp_path / "m.cxr"),
         str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "model file not found" in done.stderr


def test_demo_on_a_folder(kermany, cli):
    status, out, err = cli(
        ["demo", "--data", kermany, "--backbone", "resnet18", "--weights", "none",
         "--quick", "-q", "--report", "none"],
    )
    assert status == 0, err
    assert "not available" not in err
    assert f"Data: 20 images from {kermany}. Weights: random weights" in out
    assert "sensitivity" in out and "specificity" in out
