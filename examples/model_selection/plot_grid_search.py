"""
====================================
Grid search over the final estimator
====================================

:class:`~sklearn_cxr.PretrainedCNNClassifier` is a scikit-learn estimator,
so :class:`~sklearn.model_selection.GridSearchCV` tunes it like any other.
In feature mode the final estimator's parameters are reached as
``final_estimator__<name>``, even when ``final_estimator`` is left at its
default logistic regression.

Two things make the search honest and cheap:

- the folds split by patient (``StratifiedGroupKFold`` and ``groups``), so
  that the chosen parameters are not those that best recognise patients;
- ``memory`` caches the embedding of each image: every candidate and fold
  reuses them, and the whole grid costs about one pass of the network over
  the images.
"""

# %%
# Data and model
# --------------
import os
import shutil
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays

data = make_chest_xrays(n_samples=200, image_size=96, random_state=1)
X, y, groups = data.images, data.target_names[data.target], data.groups

weights = os.environ.get("SKLEARN_CXR_WEIGHTS")  # offline ImageNet weights
cache = tempfile.mkdtemp(prefix="sklearn_cxr_example_")
clf = PretrainedCNNClassifier(
    backbone="timm:tf_efficientnet_lite0" if weights else "resnet18",
    weights=weights,
    mode="features",
    image_size=96,
    memory=cache,
    random_state=0,
)

# %%
# Search the regularisation of the logistic regression
# ----------------------------------------------------
# Smaller ``C`` means stronger regularisation; with a few hundred images and
# hundreds of features per image, it matters. Any parameter can join the
# grid (``class_weight``, ``final_estimator`` itself...), at the price of
# more fits.
param_grid = {"final_estimator__C": np.logspace(-4, 0, 5)}
search = GridSearchCV(
    clf,
    param_grid,
    cv=StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0),
    scoring="roc_auc",
)
start = time.perf_counter()
search.fit(X, y, groups=groups)
n_fits = len(search.cv_results_["params"]) * search.n_splits_ + 1
print(f"{n_fits} fits in {time.perf_counter() - start:.0f} s")
print(f"best C: {float(search.best_params_['final_estimator__C']):g}")
print(f"best ROC AUC (mean over folds): {search.best_score_:.3f}")

# %%
# The refitted best model predicts right away:
search.best_estimator_.predict(X[:5])

# %%
# The score of each candidate
# ---------------------------
results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(
    results["param_final_estimator__C"].astype(float),
    results["mean_test_score"],
    yerr=results["std_test_score"],
    marker="o",
    capsize=3,
)
best_C = search.best_params_["final_estimator__C"]
ax.axvline(best_C, ls=":", c="gray", label=f"best C = {best_C:g}")
ax.set(xscale="log", xlabel="final_estimator__C", ylabel="ROC AUC (3 folds)")
ax.set_title("Grid search, patient-grouped folds")
ax.legend()
fig.tight_layout()

# %%
# The best score of a search is itself optimistic (it was picked as the
# maximum of five noisy estimates). To report how the chosen model will do,
# evaluate the whole search on held-out patients, for instance inside
# ``cross_val_score(search, X, y, groups=groups, cv=...)`` (nested
# cross-validation).
shutil.rmtree(cache)
