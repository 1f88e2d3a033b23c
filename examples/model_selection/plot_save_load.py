"""
===================================================
Saving a model safely, and why not to trust pickles
===================================================

A fitted model can be kept with ``model.save(path)`` and read back with
``PretrainedCNNClassifier.load(path)``. The file stores the parameters as
JSON, the network's tensors as safetensors and the fitted scikit-learn parts
with skops: loading it runs no code from the file.

``joblib.dump`` / ``joblib.load`` work too, but **loading a pickle can run
arbitrary code**: use joblib only for files you or someone you trust wrote.
See :ref:`persistence`.
"""

# %%
# Fit a small model
# -----------------
import json
import os
import shutil
import tempfile
import zipfile

import joblib
import matplotlib.pyplot as plt
import numpy as np

from sklearn_cxr import ModelFileError, PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays

data = make_chest_xrays(n_samples=60, image_size=48, random_state=0)
X, y = data.images, data.target_names[data.target]
clf = PretrainedCNNClassifier(
    backbone="resnet18", weights=None, mode="features", image_size=48, random_state=0
).fit(X, y)

# %%
# Save, look inside, load
# -----------------------
folder = tempfile.mkdtemp(prefix="sklearn_cxr_save_")
path = clf.save(os.path.join(folder, "pneumonia.cxr"))
with zipfile.ZipFile(path) as archive:
    for info in archive.infolist():
        print(f"{info.filename:<24} {info.file_size / 1e6:7.2f} MB")
    config = json.loads(archive.read("config.json"))
print("classes:", config["fitted"]["classes_"])
print("backbone:", config["params"]["backbone"], "mode:", config["fitted"]["mode"])

loaded = PretrainedCNNClassifier.load(path)
before, after = clf.predict_proba(X)[:, 1], loaded.predict_proba(X)[:, 1]
print("identical probabilities after loading:", np.array_equal(before, after))

fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(before, after, s=12)
ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
ax.set_xlabel("P(PNEUMONIA), fitted model")
ax.set_ylabel("P(PNEUMONIA), after save and load")
ax.set_title("Same predictions after loading")
fig.tight_layout()

# %%
# A pickle is refused by ``load``
# -------------------------------
# Renaming a joblib file does not smuggle it in: ``load`` only opens the
# archive it wrote and says what the file looks like instead.
pickled = os.path.join(folder, "renamed.cxr")
joblib.dump(clf, pickled)
try:
    PretrainedCNNClassifier.load(pickled)
except ModelFileError as exc:
    print(exc)

# %%
# ``joblib.load`` would have executed whatever the pickle asked for. Here is
# a harmless demonstration of what any pickle can do: loading it *calls a
# function of the author's choice*, with arguments of their choice.


class Payload:
    def __reduce__(self):
        return (print, ("this ran while loading the file",))


evil = os.path.join(folder, "model.joblib")
joblib.dump(Payload(), evil)
joblib.load(evil)  # prints: the file chose what to run

# %%
# Instead of ``print``, a malicious file could call ``os.system``. Only
# ``joblib.load`` files that you trust; exchange models with ``save``/``load``.
shutil.rmtree(folder, ignore_errors=True)
