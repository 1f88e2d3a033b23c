"""
=======================================================
Choosing the operating point: a target sensitivity
=======================================================

A classifier's ``predict`` cuts its probability at 0.5. For screening, the
cut should rather be where the model finds (say) 95% of the pneumonias,
accepting more false alarms. scikit-learn's
:class:`~sklearn.model_selection.TunedThresholdClassifierCV` moves the cut
to optimise a score; here the score is the specificity *provided that* the
sensitivity reaches 0.95.

The threshold is a parameter learned from data, so it must be chosen on the
training patients only (by cross-validation split by patient) and then
checked once on patients the model has never seen. Choosing it on the test
set would report a sensitivity that new patients will not get.
"""

# %%
# Synthetic chest X-rays, split by patient
# ----------------------------------------
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
from sklearn.metrics import make_scorer, recall_score
from sklearn.model_selection import (
    GroupShuffleSplit,
    StratifiedGroupKFold,
    TunedThresholdClassifierCV,
)

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays

data = make_chest_xrays(n_samples=240, image_size=64, random_state=0)
X, groups = data.images, data.groups
y = data.target_names[data.target]  # "NORMAL" / "PNEUMONIA"

splitter = GroupShuffleSplit(test_size=0.3, random_state=0)
train, test = next(splitter.split(X, y, groups))
print(f"{len(train)} training images, {len(test)} held-out images")
print("patients in both:", len(set(groups[train]) & set(groups[test])))

# %%
# The model and the objective
# ---------------------------
# Feature mode with a cache: the cross-validation and the refit embed each
# image once. With the offline ImageNet weights (``SKLEARN_CXR_WEIGHTS``) the
# example uses EfficientNet-Lite0; without them, a randomly initialised
# ResNet-18, which is enough for these synthetic images.
weights = os.environ.get("SKLEARN_CXR_WEIGHTS")
cache = tempfile.mkdtemp(prefix="sklearn_cxr_threshold_")
clf = PretrainedCNNClassifier(
    backbone="timm:tf_efficientnet_lite0" if weights else "resnet18",
    weights=weights,
    mode="features",
    image_size=64,
    memory=cache,
    random_state=0,
)

TARGET = 0.95


def specificity_at_sensitivity(y_true, y_pred):
    """Specificity if sensitivity >= TARGET, else a negative penalty."""
    sensitivity = recall_score(y_true, y_pred, pos_label="PNEUMONIA")
    specificity = recall_score(y_true, y_pred, pos_label="NORMAL")
    return specificity if sensitivity >= TARGET else sensitivity - 1.0


# %%
# Tune the threshold on the training patients only
# ------------------------------------------------
# The folds are precomputed by patient on the training set, so no patient
# is on both sides of a fold either.
folds = list(
    StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=0).split(
        X[train], y[train], groups[train]
    )
)
tuned = TunedThresholdClassifierCV(
    clf,
    scoring=make_scorer(specificity_at_sensitivity),
    cv=folds,
    store_cv_results=True,
).fit(X[train], y[train])
print(f"chosen threshold: {tuned.best_threshold_:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(tuned.cv_results_["thresholds"], tuned.cv_results_["scores"])
ax.axvline(tuned.best_threshold_, color="C3", ls="--", label="chosen")
ax.axvline(0.5, color="grey", ls=":", label="default 0.5")
ax.set_xlabel("threshold on P(PNEUMONIA)")
ax.set_ylabel("specificity if sensitivity >= 0.95")
ax.set_title("Objective on the training folds")
ax.legend()
fig.tight_layout()

# %%
# Check once on the held-out patients
# -----------------------------------
# ``tuned.estimator_`` is the model refitted on all training images; compare
# its default cut with the tuned one.
default = tuned.estimator_.predict(X[test])
chosen = tuned.predict(X[test])
for name, pred in [("default 0.5", default), ("tuned", chosen)]:
    sens = recall_score(y[test], pred, pos_label="PNEUMONIA")
    spec = recall_score(y[test], pred, pos_label="NORMAL")
    print(f"{name:>12}: sensitivity {sens:.2f}, specificity {spec:.2f}")

# %%
# The held-out sensitivity is an estimate from a few dozen patients: expect
# it near, not exactly at, the target. On real data, confirm it on an
# external set from another hospital before relying on it.
shutil.rmtree(cache, ignore_errors=True)
