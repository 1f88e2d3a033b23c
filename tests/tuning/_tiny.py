"""A backbone small enough for the many fits of the tuning tests."""

from torch import nn


class TinyNet(nn.Module):
    """A 2-layer CNN whose classifier is ``fc``: fast enough for many fits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.features(x))
