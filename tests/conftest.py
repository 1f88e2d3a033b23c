"""Shared fixtures: small synthetic images and the optional shared resources."""

import os
from pathlib import Path

import numpy as np
import pytest

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


def make_blobs(n=40, size=32, seed=0):
    """Tiny two-class images: class 1 has a bright square, class 0 does not."""
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 120, (n, size, size), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    s = size // 4
    X[y == "PNEUMONIA", s : 3 * s, s : 3 * s] = 255
    groups = np.repeat(np.arange(n // 2), 2)
    rng.shuffle(groups)
    return X, y, groups


@pytest.fixture
def blobs():
    return make_blobs()


@pytest.fixture(name="make_blobs")
def make_blobs_fixture():
    """The :func:`make_blobs` factory, for tests that need other sizes."""
    return make_blobs


@pytest.fixture(autouse=True)
def _offline_torch_home(tmp_path_factory, monkeypatch):
    """Tests never write to the user's torch hub cache."""
    if "TORCH_HOME" not in os.environ:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "th"))
