"""
Tuning hyper-parameters with Optuna
===================================

:func:`sklearn_cxr.tuning.tune` searches hyper-parameters with Optuna. Each
trial draws parameters, cross-validates the classifier with them by patient
(``StratifiedGroupKFold``) and scores it by ROC AUC; the best parameters are
then refitted on all the images. In finetune mode, each fold reports the
validation ROC AUC after every epoch and Optuna's pruner stops trials that
fall behind, so that a budget of GPU hours goes to the promising ones.

The same call scales out: give several processes, on one machine or many, the
same ``storage`` URL and ``study_name`` and they share one study
(:ref:`tuning`).

This example runs on a few small synthetic radiographs so that it finishes
quickly on a CPU: read it for the mechanics, not for the numbers. Feature
mode uses the offline ImageNet weights where the documentation build finds
them (``SKLEARN_CXR_WEIGHTS``); without them, and in the fine-tuning part,
the networks are random and score around chance.
"""

# %%
# Synthetic patients
# ------------------
# Several images per patient, as in the real data: the folds must keep each
# patient on one side.
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import optuna

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays
from sklearn_cxr.tuning import tune

optuna.logging.set_verbosity(optuna.logging.WARNING)

data = make_chest_xrays(64, image_size=64, random_state=0)
X, y, groups = data.images, data.target_names[data.target], data.groups
print(f"{len(X)} images of {len(np.unique(groups))} patients")

# %%
# Frozen features: tune the regularisation of the final estimator
# -----------------------------------------------------------------
# The default search space of feature mode is ``final_estimator__C``
# (log-uniform). With ``memory``, the embeddings of each image are computed
# once and reused by every fold of every trial.
weights = os.environ.get("SKLEARN_CXR_WEIGHTS")  # offline ImageNet weights
backbone = "timm:tf_efficientnet_lite0" if weights else "resnet18"
cache = tempfile.mkdtemp(prefix="sklearn_cxr_cache_")
clf = PretrainedCNNClassifier(
    backbone=backbone,
    weights=weights,
    mode="features",
    image_size=64,
    memory=cache,
    random_state=0,
)
study, best = tune(clf, X, y, groups=groups, cv=3, n_trials=4, random_state=0)
print(f"best C = {study.best_params['final_estimator__C']:.3g}, "
      f"cross-validated ROC AUC = {study.best_value:.3f}")

trials = study.trials_dataframe()
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.scatter(trials["params_final_estimator__C"], trials["value"])
ax.set_xscale("log")
ax.set_xlabel("final_estimator__C")
ax.set_ylabel("mean ROC AUC (3 folds)")
ax.set_title("Feature mode: one point per trial")
fig.tight_layout()

# %%
# Fine-tuning with pruning
# ------------------------
# A search space is a function ``trial -> dict of parameters``; here only
# the learning rate, over a range wide enough that some trials are bad. A
# random ResNet-18 on 32-pixel images keeps the fits short.
# ``MedianPruner`` stops a trial whose validation ROC AUC at some epoch is
# below the median of the earlier trials at that epoch.


def learning_rate_space(trial):
    return {"lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True)}


finetune = PretrainedCNNClassifier(
    backbone="resnet18",
    weights=None,
    image_size=32,
    max_epochs=2,
    batch_size=16,
    freeze_epochs=0,
    augment=False,
    validation_fraction=0.25,
    random_state=0,
)
ft_study, ft_best = tune(
    finetune,
    X,
    y,
    groups=groups,
    cv=2,
    n_trials=3,
    search_space=learning_rate_space,
    pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    random_state=0,
)
for trial in ft_study.trials:
    print(f"trial {trial.number}: lr={trial.params['lr']:.1e} {trial.state.name}")

# %%
# Each line is one trial's validation ROC AUC, epoch after epoch and fold
# after fold (steps 0-1 are the first fold, 2-3 the second). Dashed trials
# were pruned.
fig, ax = plt.subplots(figsize=(5, 3.5))
for trial in ft_study.trials:
    steps = sorted(trial.intermediate_values)
    pruned = trial.state == optuna.trial.TrialState.PRUNED
    ax.plot(
        steps,
        [trial.intermediate_values[s] for s in steps],
        "--" if pruned else "-",
        marker="o",
        label=f"lr={trial.params['lr']:.0e}" + (" (pruned)" if pruned else ""),
    )
ax.set_xlabel("step (fold x epochs + epoch)")
ax.set_ylabel("validation ROC AUC")
ax.legend(fontsize="small")
fig.tight_layout()

# %%
# Sharing a study between workers
# -------------------------------
# Start the same script on several machines with a shared database; each
# call runs its own ``n_trials`` and the study holds them all::
#
#     study, best = tune(
#         clf, X, y, groups=groups, n_trials=20,
#         storage="postgresql://optuna:secret@db-host/optuna",
#         study_name="cxr-finetune",
#     )
#
# Each trial records the worker that ran it (``host:pid``) in
# ``trial.user_attrs["worker"]``. With a database URL, every running trial
# also sends a heartbeat (``heartbeat_interval=60`` seconds by default): the
# trial of a worker that was killed is marked ``FAIL`` by the next worker,
# instead of staying ``RUNNING`` forever, and its parameters are tried again.
