"""
============================================
Frozen features or fine-tuning? Ask the data
============================================

:class:`~sklearn_cxr.PretrainedCNNClassifier` transfers an ImageNet network
in two ways:

- ``mode="features"``: the network stays frozen; each image becomes a vector
  once, and a logistic regression learns from the vectors. One pass over the
  images, cheap on a CPU.
- ``mode="finetune"``: the new last layer trains alone for ``freeze_epochs``
  epochs, then the whole network trains at a lower learning rate. Many passes
  over the images; it adapts the network to radiographs.

Both are scikit-learn estimators, so one call to
:func:`~sklearn.model_selection.cross_val_score`, with the same
patient-grouped folds, compares them fairly.

This example is sized to run in seconds: 96-pixel images, three folds and
two epochs of fine-tuning (one for the new layer, one for the whole network).
At that budget fine-tuning has hardly started;
on real X-rays, with full-size images and tens of epochs on a GPU, it
usually scores higher than frozen features.
"""

# %%
# Data: synthetic patients
# ------------------------
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, cross_val_score

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays

data = make_chest_xrays(n_samples=150, image_size=96, random_state=0)
X, y, groups = data.images, data.target_names[data.target], data.groups
cv = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)

# %%
# Two models, one backbone
# ------------------------
# Pretrained weights if ``SKLEARN_CXR_WEIGHTS`` points at the offline
# EfficientNet-Lite0 checkpoint, random weights otherwise.
weights = os.environ.get("SKLEARN_CXR_WEIGHTS")
backbone = "timm:tf_efficientnet_lite0" if weights else "resnet18"
common = dict(
    backbone=backbone, weights=weights, image_size=96, random_state=0
)
models = {
    "frozen features": PretrainedCNNClassifier(mode="features", **common),
    "fine-tuning": PretrainedCNNClassifier(
        mode="finetune",
        max_epochs=2,
        freeze_epochs=1,
        lr=1e-2,
        batch_size=8,  # small batches: more optimiser steps per epoch
        validation_fraction=None,  # too few images to hold some out
        **common,
    ),
}

# %%
# Cross-validate both on the same patient-grouped folds
# -----------------------------------------------------
scores, seconds = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    scores[name] = cross_val_score(
        model, X, y, groups=groups, cv=cv, scoring="roc_auc"
    )
    seconds[name] = time.perf_counter() - start
    print(
        f"{name:>16s}: ROC AUC {scores[name].mean():.3f} "
        f"+/- {scores[name].std():.3f}  ({seconds[name]:.0f} s for 3 folds)"
    )

# %%
# Each dot is one fold; the bar is the mean.
fig, (ax_score, ax_time) = plt.subplots(1, 2, figsize=(9, 3.6))
names = list(scores)
for i, name in enumerate(names):
    ax_score.bar(i, scores[name].mean(), color=f"C{i}", alpha=0.5)
    ax_score.plot(np.full(3, i), scores[name], "o", color=f"C{i}")
ax_score.axhline(0.5, ls="--", c="gray", label="chance")
ax_score.set(
    xticks=range(len(names)), xticklabels=names, ylim=(0, 1),
    ylabel="ROC AUC (3 patient-grouped folds)",
)
ax_score.legend(loc="lower right")
ax_time.bar(names, [seconds[n] for n in names], color=["C0", "C1"])
ax_time.set(ylabel="seconds for 3 fits and predictions")
fig.tight_layout()

# %%
# Reading the result
# ------------------
# Frozen features cost one pass over the images per fit, fine-tuning one
# pass per epoch plus the backward passes, so it is several times slower
# here even at two epochs. Which scores higher depends on the budget: run
# the same comparison on your own images, with ``groups`` holding the
# patients, before choosing. The :ref:`user guide <transfer-learning>`
# explains what each mode does.
