"""Shared fixtures: small synthetic images and the optional shared resources."""

import os
from pathlib import Path

import pytest
from _helpers import make_blobs

REPO = Path(__file__).resolve().parents[1]


def shared_dir():
    """The ``shared/`` folder beside the checkout, or $SKLEARN_CXR_SHARED."""
    return Path(os.environ.get("SKLEARN_CXR_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data_dir():
    """Root of the real Kermany training split; skips where it is absent."""
    root = shared_dir() / "data" / "chest_xray_224"
    if not (root / "train" / "NORMAL").is_dir():
        pytest.skip(f"real chest X-ray data not found at {root}")
    return root


@pytest.fixture(scope="session")
def imagenet_weights():
    """Offline ImageNet EfficientNet-Lite0 weights; skips where absent."""
    path = shared_dir() / "weights" / "efficientnet_lite0_imagenet_timm.pth"
    if not path.is_file():
        pytest.skip(f"offline ImageNet weights not found at {path}")
    pytest.importorskip("timm", reason="timm is needed for the offline weights")
    return path


@pytest.fixture
def blobs():
    return make_blobs()


@pytest.fixture(name="make_blobs", scope="session")
def make_blobs_fixture():
    """The :func:`_helpers.make_blobs` factory: ``make_blobs(n, size, seed)``."""
    return make_blobs


@pytest.fixture
def cli(capsys):
    """Run the command line: ``cli(argv) -> (status, stdout, stderr)``.

    ``argv`` items may be paths; argparse's exits (``--help``, usage errors)
    give their status like any other.
    """
    from sklearn_cxr._cli import main

    def run(argv):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(autouse=True)
def _offline_torch_home(tmp_path_factory, monkeypatch):
    """Tests never write to the user's torch hub cache."""
    if "TORCH_HOME" not in os.environ:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "th"))
