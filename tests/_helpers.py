"""Helpers shared by the tests: tiny backbones, estimators and image files."""

import numpy as np
import torch
from PIL import Image
from torch import nn


class TinyNet(nn.Module):
    """The tests' one tiny backbone: a convolution, then the classifier ``fc``.

    Fast enough for many fits (tuning trials, checkpoints, faults); ``conv``
    is its only convolution (Grad-CAM's target, weights-file tests) and
    ``fc`` the head the estimators replace.
    """

    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def make_blobs(n=40, size=32, seed=0):
    """Tiny two-class images: class 1 has a bright square, class 0 does not.

    Returns ``X`` (uint8, ``(n, size, size)``), ``y`` (``"NORMAL"`` /
    ``"PNEUMONIA"``) and ``groups`` (two images a patient). Tests get it as the
    ``make_blobs`` fixture; subprocess scripts import it from here.
    """
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 120, (n, size, size), dtype=np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    s = size // 4
    X[y == "PNEUMONIA", s : 3 * s, s : 3 * s] = 255
    groups = np.repeat(np.arange(n // 2), 2)
    rng.shuffle(groups)
    return X, y, groups


def tiny_params(**overrides):
    """Estimator parameters of a tiny, fast, seeded configuration."""
    params = {
        "backbone": TinyNet(),
        "weights": None,
        "image_size": 32,
        "batch_size": 8,
        "random_state": 0,
    }
    params.update(overrides)
    return params


def tiny_resnet_classifier(mode, **overrides):
    """A seeded 32 px, one-epoch resnet18 classifier without validation split."""
    from sklearn_cxr import PretrainedCNNClassifier

    params = dict(
        backbone="resnet18",
        weights=None,
        image_size=32,
        max_epochs=1,
        batch_size=16,
        mode=mode,
        random_state=0,
        validation_fraction=None,
    )
    params.update(overrides)
    return PretrainedCNNClassifier(**params)


def write_image(path, array=None, mode=None, size=(32, 32), seed=0):
    """Write an image file (format from the suffix) and return its path."""
    if array is None:
        array = np.random.RandomState(seed).randint(0, 255, size[::-1], np.uint8)
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    image.save(path)
    return str(path)


def rewrite_config(source, target, edit):
    """Copy the model file ``source`` to ``target`` with ``edit(config)``
    applied to its ``config.json`` (a dict changed in place)."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            new.writestr(item, data)
    return target
