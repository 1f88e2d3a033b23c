"""Finetune mode under Hugging Face Accelerate: one process, and two launched."""

import json
import os
import pickle
import shutil
import socket
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pytest
from _helpers import TinyNet

from sklearn_cxr import PretrainedCNNClassifier

accelerate = pytest.importorskip(
    "accelerate", reason="the distributed extra (accelerate) is missing"
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "distributed" / "train_accelerate.py"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_accelerator_in_one_process_pickles_as_a_plain_net(blobs):
    X, y, groups = blobs
    clf = PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, image_size=32, max_epochs=2,
        batch_size=8, validation_fraction=0.2, random_state=0,
        accelerator={"cpu": True},
    )
    clf.fit(X, y, groups=groups)
    assert type(clf.net_).__name__ == "AccelerateSkorchNet"
    assert len(clf.history_) == 2 and "valid_auc" in clf.history_[-1]
    proba = clf.predict_proba(X)
    loaded = pickle.loads(pickle.dumps(clf))
    assert type(loaded.net_).__name__ == "SkorchNet"
    assert not hasattr(loaded.net_, "accelerator")
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


def test_bad_accelerator_value_is_named(blobs):
    X, y, _ = blobs
    clf = PretrainedCNNClassifier(
        backbone=TinyNet(), weights=None, image_size=32, max_epochs=1,
        accelerator="yes",
    )
    with pytest.raises(
        TypeError, match=r"'accelerator' parameter .* \{True\}, .*'dict'"
    ):
        clf.fit(X, y)
    clf.set_params(accelerator={"no_such_option": 1})
    with pytest.raises(TypeError, match="no_such_option"):
        clf.fit(X, y)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    launcher = shutil.which("accelerate")
    if launcher is None:
        pytest.skip("the accelerate command is not on PATH")
    n_images, batch_size = 48, 8
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    model_path = tmp_path / "model.joblib"
    command = [
        launcher, "launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--main_process_port", str(_free_port()),
        str(SCRIPT), "--cpu", "--image-size", "32",
        "--n-images", str(n_images), "--batch-size", str(batch_size),
        "--max-epochs", "2", "--report-dir", str(report_dir),
        "--output", str(model_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=480,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    reports = [
        json.loads((report_dir / f"rank{rank}.json").read_text())
        for rank in (0, 1)
    ]
    assert [r["rank"] for r in reports] == [0, 1]
    assert {r["num_processes"] for r in reports} == {2}
    assert {r["distributed_type"] for r in reports} == {"DistributedType.MULTI_CPU"}
    assert reports[0]["pid"] != reports[1]["pid"]
    # Each process trained on its share of every batch: about half the
    # training images (~36 of 48) each epoch, plus Accelerate's padding.
    seen = [r["n_train_images_seen"] for r in reports]
    assert seen[0] == seen[1]
    assert all(0 < n < 0.6 * n_images for n in seen[0])
    # Gradients were averaged: both processes end with the same weights,
    # the same validation scores and the same predictions of every image.
    assert reports[0]["weights_sum"] == pytest.approx(reports[1]["weights_sum"])
    assert reports[0]["valid_auc"] == reports[1]["valid_auc"]
    proba = np.asarray(reports[0]["proba"])
    assert proba.shape == (n_images, 2)
    np.testing.assert_allclose(proba, reports[1]["proba"])
    # The model saved by the main process loads here, without Accelerate.
    from sklearn_cxr.datasets import make_chest_xrays

    model = joblib.load(model_path)
    data = make_chest_xrays(n_images, image_size=32, random_state=0)
    np.testing.assert_allclose(model.predict_proba(data.images), proba, atol=1e-5)
    assert set(model.predict(data.images)) <= {"NORMAL", "PNEUMONIA"}
