"""
===============================================
Patient leakage: split by patient, not by image
===============================================

Chest X-ray collections hold several images of the same patient. When
cross-validation splits the *images* at random, a patient's images end up on
both sides of a split: the model is then tested on people it has already
seen, and recognising them is easier than recognising the disease. The score
is too good, and it will not hold in the clinic, where every patient is new.

This example measures the gap on synthetic patients: the same classifier,
cross-validated with :class:`~sklearn.model_selection.KFold` over images and
with :class:`~sklearn.model_selection.StratifiedGroupKFold` over patients.
"""

# %%
# Patients with several images
# ----------------------------
# ``groups`` holds the patient of each image; the loaders of
# :mod:`sklearn_cxr.datasets` return it for real data sets too, parsed from
# the file names.
import os
import shutil
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import KFold, StratifiedGroupKFold, cross_val_score

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays

data = make_chest_xrays(
    n_samples=200, image_size=96, max_images_per_patient=6, random_state=0
)
X, y, groups = data.images, data.target_names[data.target], data.groups
images_per_patient = np.bincount(np.unique(groups, return_inverse=True)[1])
print(
    f"{len(X)} images of {len(images_per_patient)} patients, "
    f"{images_per_patient.mean():.1f} images per patient on average"
)

# %%
# How many test images have a "sibling" in the training folds?
# ------------------------------------------------------------
# An image-level split puts most patients on both sides; a grouped split
# none.
image_cv = KFold(n_splits=5, shuffle=True, random_state=0)
patient_cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
splits = {
    "by image": image_cv.split(X, y),
    "by patient": patient_cv.split(X, y, groups),
}
for name, folds in splits.items():
    shared = [np.isin(groups[test], groups[train]).mean() for train, test in folds]
    print(f"{name:>10s}: {np.mean(shared):.0%} of test images have a patient "
          "seen in training")

# %%
# The same model, scored both ways
# --------------------------------
# Frozen features and a logistic regression (pretrained weights when
# ``SKLEARN_CXR_WEIGHTS`` points at the offline checkpoint). ``memory`` keeps
# the embedding of each image in a folder, so the ten fits below pass each
# image through the network once, not ten times.
weights = os.environ.get("SKLEARN_CXR_WEIGHTS")
cache = tempfile.mkdtemp(prefix="sklearn_cxr_example_")
clf = PretrainedCNNClassifier(
    backbone="timm:tf_efficientnet_lite0" if weights else "resnet18",
    weights=weights,
    mode="features",
    image_size=96,
    memory=cache,
    random_state=0,
)
leaky = cross_val_score(clf, X, y, cv=image_cv, scoring="roc_auc")
honest = cross_val_score(
    clf, X, y, groups=groups, cv=patient_cv, scoring="roc_auc"
)
print(f"split by image:   ROC AUC {leaky.mean():.3f} +/- {leaky.std():.3f}")
print(f"split by patient: ROC AUC {honest.mean():.3f} +/- {honest.std():.3f}")
shutil.rmtree(cache)

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8))
names = ["KFold\n(by image)", "StratifiedGroupKFold\n(by patient)"]
for i, fold_scores in enumerate([leaky, honest]):
    ax.bar(i, fold_scores.mean(), color=f"C{i}", alpha=0.5)
    ax.plot(np.full(len(fold_scores), i), fold_scores, "o", color=f"C{i}")
    ax.text(i, 0.43, f"mean {fold_scores.mean():.3f}", ha="center")
ax.set_xticks([0, 1], names)
ax.set(ylim=(0.4, 1.05), ylabel="ROC AUC per fold")
ax.set_title("The same model, two ways to split")
fig.tight_layout()

# %%
# The image-level score is the optimistic one: part of it comes from
# recognising patients. Report the patient-level score, and pass ``groups``
# to every splitter and search (``GridSearchCV(...).fit(X, y, groups=...)``)
# and to :meth:`~sklearn_cxr.PretrainedCNNClassifier.fit`, whose internal
# validation split for early stopping then follows patients too.
