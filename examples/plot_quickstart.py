"""
==========
Quickstart
==========

Train a pneumonia classifier by transfer learning and evaluate it the way a
clinician reads a diagnostic test: accuracy, sensitivity, specificity and
ROC AUC, on patients the model has never seen.

The images are synthetic chest radiographs, small enough to train on a CPU
in seconds. The same code runs on real X-rays: replace ``make_chest_xrays``
by :func:`~sklearn_cxr.datasets.load_chest_xray` on a folder of images.
"""

# %%
# Synthetic chest radiographs
# ---------------------------
# :func:`~sklearn_cxr.datasets.make_chest_xrays` draws a thorax, two lungs, a
# heart and ribs; pneumonia images carry a lobar consolidation (bacterial) or
# a diffuse pattern in both lungs (viral). Each synthetic patient has several
# images, and ``groups`` says which patient each image belongs to.
import os

import matplotlib.pyplot as plt
import numpy as np

from sklearn_cxr.datasets import make_chest_xrays

data = make_chest_xrays(n_samples=240, image_size=96, random_state=0)
X = data.images
y = data.target_names[data.target]  # the labels "NORMAL" and "PNEUMONIA"
groups = data.groups
labels, counts = np.unique(y, return_counts=True)
print(f"{X.shape[0]} images of {X.shape[1]}x{X.shape[2]} pixels, "
      f"{len(np.unique(groups))} patients")
print(dict(zip(labels.tolist(), counts.tolist())))

# %%
# Two images of each kind:
kinds = ["normal", "bacteria", "virus"]
fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.4))
for col, kind in enumerate(kinds):
    for row, index in enumerate(np.flatnonzero(data.subtype == kind)[:2]):
        axes[row, col].imshow(X[index], cmap="gray")
        axes[row, col].set_title(f"{kind} (patient {groups[index]})")
        axes[row, col].axis("off")
fig.tight_layout()

# %%
# Keep whole patients out for testing
# -----------------------------------
# The test images must come from patients the model never saw, or the score
# measures how well it recognises patients (see :ref:`patient-leakage`).
from sklearn.model_selection import GroupShuffleSplit

splitter = GroupShuffleSplit(n_splits=1, test_size=0.3, random_state=0)
train, test = next(splitter.split(X, y, groups))
assert not set(groups[train]) & set(groups[test])
print(f"{len(train)} training images, {len(test)} test images")

# %%
# Transfer learning with frozen features
# --------------------------------------
# ``mode="features"`` passes each image once through a network trained on
# ImageNet and fits a logistic regression on the resulting vectors. With the
# offline ImageNet checkpoint (``SKLEARN_CXR_WEIGHTS``) the network is a
# pretrained EfficientNet-Lite0; without it, a ResNet-18 with random weights
# stands in, which runs the same code but scores lower.
from sklearn_cxr import PretrainedCNNClassifier

weights = os.environ.get("SKLEARN_CXR_WEIGHTS")
backbone = "timm:tf_efficientnet_lite0" if weights else "resnet18"

clf = PretrainedCNNClassifier(
    backbone=backbone,
    weights=weights,
    mode="features",
    image_size=96,
    class_weight="balanced",
    random_state=0,
)
clf.fit(X[train], y[train])
clf.classes_

# %%
# Evaluate as a diagnostic test
# -----------------------------
# Sensitivity is the share of pneumonia the model finds, specificity the
# share of normal images it leaves alone; ROC AUC summarises every threshold.
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    recall_score,
    roc_auc_score,
)

pred = clf.predict(X[test])
proba = clf.predict_proba(X[test])[:, list(clf.classes_).index("PNEUMONIA")]
scores = {
    "accuracy": accuracy_score(y[test], pred),
    "sensitivity": recall_score(y[test], pred, pos_label="PNEUMONIA"),
    "specificity": recall_score(y[test], pred, pos_label="NORMAL"),
    "ROC AUC": roc_auc_score(y[test] == "PNEUMONIA", proba),
}
for name, value in scores.items():
    print(f"{name:>12s}: {value:.3f}")

# %%
# The ROC curve and the confusion matrix at the default threshold of 0.5:
fig, (ax_roc, ax_cm) = plt.subplots(1, 2, figsize=(10, 4.2))
RocCurveDisplay.from_predictions(
    y[test], proba, pos_label="PNEUMONIA", name=backbone, ax=ax_roc
)
ax_roc.plot([0, 1], [0, 1], ls="--", c="gray", label="chance")
ax_roc.legend(loc="lower right")
ConfusionMatrixDisplay.from_predictions(y[test], pred, ax=ax_cm, colorbar=False)
fig.tight_layout()

# %%
# Where next: :ref:`sphx_glr_auto_examples_model_selection_plot_grouped_cv.py`
# cross-validates by patient, and
# :ref:`sphx_glr_auto_examples_model_selection_plot_feature_vs_finetune.py`
# compares frozen features with fine-tuning the whole network.
