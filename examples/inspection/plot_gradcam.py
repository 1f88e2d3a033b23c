"""
============================================
Where does the model look? Grad-CAM heatmaps
============================================

A classifier that says "pneumonia" should say it because of the lungs, not
because of a marker in the corner or the shape of the patient's shoulders.
:func:`~sklearn_cxr.inspection.gradcam` computes, for each image, a heatmap of
the regions that pushed the model towards a class, and
:func:`~sklearn_cxr.inspection.plot_gradcam` overlays it on the image.

- In ``mode="finetune"`` it is Grad-CAM (Selvaraju et al., 2017): the last
  feature map of the network, each channel weighted by the gradient of the
  class score.
- In ``mode="features"`` it is the class activation map (Zhou et al., 2016):
  the same feature map weighted by the logistic regression's coefficients.

The heatmaps come back as an ``(n, H, W)`` array aligned with the input
images, values in [0, 1].
"""

# %%
# A classifier on synthetic radiographs
# -------------------------------------
# Pneumonia in :func:`~sklearn_cxr.datasets.make_chest_xrays` is a lobar
# consolidation in one lung (bacterial) or a diffuse pattern in both
# (viral). A model that learned the disease should light up there.
import os

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays
from sklearn_cxr.inspection import gradcam, plot_gradcam

data = make_chest_xrays(n_samples=200, image_size=96, random_state=0)
X, y, groups = data.images, data.target_names[data.target], data.groups
train, test = next(
    GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0).split(
        X, y, groups
    )
)

weights = os.environ.get("SKLEARN_CXR_WEIGHTS")  # offline ImageNet weights
clf = PretrainedCNNClassifier(
    backbone="timm:tf_efficientnet_lite0" if weights else "resnet18",
    weights=weights,
    mode="features",
    image_size=96,
    random_state=0,
).fit(X[train], y[train])
print(f"test accuracy: {clf.score(X[test], y[test]):.3f}")

# %%
# Explain the pneumonia images of the test patients
# -------------------------------------------------
# ``target="PNEUMONIA"`` explains the pneumonia class for every image, the
# question a reader asks; the default, ``target=None``, explains whichever
# class the model predicted.
show = np.concatenate([
    np.flatnonzero(data.subtype[test] == "bacteria")[:4],
    np.flatnonzero(data.subtype[test] == "virus")[:2],
    np.flatnonzero(data.subtype[test] == "normal")[:2],
])
images = X[test][show]
heatmaps = gradcam(clf, images, target="PNEUMONIA")
print(heatmaps.shape, heatmaps.dtype, float(heatmaps.min()), float(heatmaps.max()))

proba = clf.predict_proba(images)[:, list(clf.classes_).index("PNEUMONIA")]
titles = [
    f"{kind}, p(pneumonia)={p:.2f}"
    for kind, p in zip(data.subtype[test][show], proba)
]
fig = plot_gradcam(images, heatmaps, titles=titles, n_cols=4)

# %%
# Reading the maps
# ----------------
# A heatmap is a question to the model, not a diagnosis: it shows where the
# evidence for a class came from, not whether the answer is right. With the
# small images, few training images and (without ``SKLEARN_CXR_WEIGHTS``)
# random weights of this example, the maps are coarse; with ImageNet weights
# and full-size radiographs they follow consolidations closely. Look at them
# for the errors of a model too: a map that lights up outside the lungs is a
# sign of a shortcut (text markers, devices, the edge of the image) worth
# removing from the training data.
