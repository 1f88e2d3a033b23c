"""Helpers shared by the tests: tiny backbones, estimators and image files."""

import numpy as np
import torch
from PIL import Image
from torch import nn


class TinyNet(nn.Module):
    """A backbone small enough for fast tests; its classifier is ``fc``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


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
