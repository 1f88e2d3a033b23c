"""Grad-CAM: the heatmap of a trained model peaks on the lesion it learned."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC
from torch import nn

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.inspection import find_target_layer, gradcam, plot_gradcam


def make_lesions(n, size=64, radius=6, seed=0):
    """Class 1 has a bright disc at a random place; every image has a dark
    square elsewhere, which says nothing about the class."""
    rng = np.random.RandomState(seed)
    X = rng.randint(40, 110, (n, size, size)).astype(np.uint8)
    y = np.array(["NORMAL", "PNEUMONIA"] * (n // 2))
    centres = rng.randint(radius + 2, size - radius - 2, (n, 2))
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        if y[i] == "PNEUMONIA":
            cy, cx = centres[i]
            X[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 250
        while True:
            sy, sx = rng.randint(0, size - 10, 2)
            if max(abs(sy + 5 - centres[i][0]), abs(sx + 5 - centres[i][1])) > 14:
                break
        X[i, sy : sy + 10, sx : sx + 10] = 0
    return X, y, centres


class TinyCNN(nn.Module):
    """Three convolutions, 16x16 feature map at 64 px: fast on a CPU."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _fit(mode, X, y, **params):
    return PretrainedCNNClassifier(
        backbone=TinyCNN(),
        weights=None,
        mode=mode,
        image_size=64,
        max_epochs=4,
        lr=1e-2,
        body_lr_factor=1.0,
        freeze_epochs=0,
        augment=False,
        validation_fraction=None,
        batch_size=16,
        random_state=0,
        **params,
    ).fit(X, y)


@pytest.fixture(scope="module")
def lesion_data():
    return make_lesions(64, seed=0), make_lesions(40, seed=1)


@pytest.fixture(scope="module")
def fitted(lesion_data):
    (X, y, _), _ = lesion_data
    return {mode: _fit(mode, X, y) for mode in ("finetune", "features")}


@pytest.mark.parametrize("mode", ["finetune", "features"])
def test_heatmap_peaks_on_the_lesion(fitted, lesion_data, mode):
    clf = fitted[mode]
    _, (X_test, y_test, centres) = lesion_data
    # the model learned the lesion, on images it has not seen
    assert clf.score(X_test, y_test) >= 0.9
    sick = y_test == "PNEUMONIA"
    heatmaps = gradcam(clf, X_test[sick], target="PNEUMONIA")
    assert heatmaps.shape == (sick.sum(), 64, 64)
    assert heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    peaks = np.array([np.unravel_index(h.argmax(), h.shape) for h in heatmaps])
    distance = np.sqrt(((peaks - centres[sick]) ** 2).sum(axis=1))
    # the disc has radius 6; chance of a random peak within 8 px is about 7%
    assert np.mean(distance <= 8) >= 0.8, distance
    # the map of the other class is not drawn to the lesion the same way
    yy, xx = np.mgrid[:64, :64]
    on_lesion = np.array(
        [(yy - cy) ** 2 + (xx - cx) ** 2 <= 36 for cy, cx in centres[sick]]
    )
    normal_maps = gradcam(clf, X_test[sick], target="NORMAL")
    assert heatmaps[on_lesion].mean() > normal_maps[on_lesion].mean()


def test_default_target_is_the_prediction(fitted, lesion_data):
    clf = fitted["finetune"]
    _, (X_test, _, _) = lesion_data
    predicted = clf.predict(X_test[:6])
    default = gradcam(clf, X_test[:6])
    explicit = gradcam(clf, X_test[:6], target=predicted)
    np.testing.assert_allclose(default, explicit)
    assert not np.allclose(default, gradcam(clf, X_test[:6], target="NORMAL"))


@pytest.mark.parametrize("mode", ["finetune", "features"])
def test_heatmaps_follow_each_image_size(fitted, mode):
    rng = np.random.RandomState(0)
    images = [
        rng.randint(0, 255, (50, 70), dtype=np.uint8),
        rng.randint(0, 255, (64, 64, 3), dtype=np.uint8),
    ]
    heatmaps = gradcam(fitted[mode], images)
    assert isinstance(heatmaps, list)
    assert [h.shape for h in heatmaps] == [(50, 70), (64, 64)]
    assert all(0.0 <= h.min() and h.max() <= 1.0 for h in heatmaps)


def test_layer_by_name(fitted, lesion_data):
    clf = fitted["finetune"]
    assert find_target_layer(clf.module_.body, 64) == "features"
    _, (X_test, _, _) = lesion_data
    early = gradcam(clf, X_test[:3], layer="features.3")
    assert early.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="'nope' is not a module of the backbone"):
        gradcam(clf, X_test[:1], layer="nope")
    # feature mode weighs the pooled channels; an earlier layer has others
    with pytest.raises(ValueError, match="channels"):
        gradcam(fitted["features"], X_test[:1], layer="features.0")


@pytest.mark.parametrize(
    "backbone, expected",
    [
        ("resnet18", "layer4"),
        ("efficientnet_b0", "features"),
        ("convnext_tiny", "features"),  # not the LayerNorm after the pooling
        ("timm:tf_efficientnet_lite0", "bn2"),
    ],
)
def test_default_layer_of_common_backbones(backbone, expected):
    if backbone.startswith("timm:"):
        pytest.importorskip("timm")
    from sklearn_cxr._backbones import load_backbone

    body = load_backbone(backbone, None).body
    assert find_target_layer(body, 64) == expected


def test_bad_targets_and_models(fitted, lesion_data):
    (X, y, _), (X_test, _, _) = lesion_data
    with pytest.raises(ValueError, match="'COVID' is not a class"):
        gradcam(fitted["features"], X_test[:2], target="COVID")
    with pytest.raises(ValueError, match="target has 3 entries but X has 2"):
        gradcam(fitted["features"], X_test[:2], target=["NORMAL"] * 3)
    with pytest.raises(NotFittedError):
        gradcam(PretrainedCNNClassifier(), X_test[:2])
    svc = _fit("features", X[:16], y[:16], final_estimator=SVC(kernel="rbf"))
    with pytest.raises(TypeError, match="linear final estimator with coef_"):
        gradcam(svc, X_test[:2])


def test_plot_gradcam(fitted, lesion_data):
    from matplotlib.figure import Figure

    _, (X_test, _, _) = lesion_data
    heatmaps = gradcam(fitted["features"], X_test[:5])
    fig = plot_gradcam(X_test[:5], heatmaps, titles=list("abcde"), figure=Figure())
    panels, (bar,) = fig.axes[:5], fig.axes[5:]
    assert [ax.get_title() for ax in panels] == list("abcde")
    # each panel shows the image and its heatmap; a colour bar gives the scale
    assert all(len(ax.images) == 2 for ax in panels)
    assert "Grad-CAM" in bar.get_ylabel()
    assert fig.get_suptitle() == ""
    fig = plot_gradcam(
        X_test[:2], heatmaps[:2], titles=["a", "b"], explained=["NORMAL", "PNEUMONIA"],
        colorbar=False, figure=Figure(),
    )
    assert [ax.get_title() for ax in fig.axes] == [
        "a\nexplains NORMAL",
        "b\nexplains PNEUMONIA",
    ]
    fig = plot_gradcam(X_test[:2], heatmaps[:2], explained="PNEUMONIA", figure=Figure())
    assert fig.get_suptitle() == "Grad-CAM: evidence for PNEUMONIA"
    with pytest.raises(ValueError, match="1 explained classes for 2 images"):
        plot_gradcam(X_test[:2], heatmaps[:2], explained=["a"], figure=Figure())
    with pytest.raises(ValueError, match="heatmap 0 has shape"):
        plot_gradcam(X_test[:1], np.zeros((1, 8, 8)), figure=Figure())
    with pytest.raises(ValueError, match="2 heatmaps for 1 images"):
        plot_gradcam(X_test[:1], heatmaps[:2], figure=Figure())


def test_plot_roc_with_ci_legend():
    from matplotlib.figure import Figure

    from sklearn_cxr.inspection import plot_roc_with_ci

    ax = Figure().subplots()
    y = np.array(["N", "N", "P", "P", "P"])
    display = plot_roc_with_ci(
        y, [0.1, 0.7, 0.6, 0.8, 0.9], pos_label="P", roc_auc=0.8333,
        ci_low=0.5, ci_high=0.995, ax=ax,
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["AUC 0.83 [0.50, 0.99]", "chance (AUC 0.50)"]
    assert display.fpr.tolist()[-1] == 1.0
    assert ax.get_title() == "ROC curve (P positive)"
    ax = Figure().subplots()
    plot_roc_with_ci(
        y, [0.1, 0.2, 0.6, 0.8, 0.9], pos_label="P", roc_auc=1.0,
        ci_low=float("nan"), ci_high=float("nan"), ax=ax,
    )
    assert ax.get_legend().get_texts()[0].get_text() == "AUC 1.00"
