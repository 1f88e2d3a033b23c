"""
=====================================================
Export a model to ONNX and check it against the model
=====================================================

:func:`sklearn_cxr.export.to_onnx` writes the whole inference graph of a
fitted classifier, from the uint8 pixels that
:func:`sklearn_cxr.export.prepare` returns to the class probabilities, so
that the model runs where neither Python nor PyTorch is installed (here with
``onnxruntime``). A small feature-mode model on synthetic radiographs keeps
the example fast; the same code exports a model trained on real images. See
:ref:`deploy`.
"""

# %%
# Fit a small model
# -----------------
import json
import os
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnxruntime

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import make_chest_xrays
from sklearn_cxr.export import prepare, to_onnx

data = make_chest_xrays(n_samples=60, image_size=64, random_state=0)
X, y = data.images, data.target_names[data.target]
clf = PretrainedCNNClassifier(
    backbone="resnet18", weights=None, mode="features", image_size=48, random_state=0
).fit(X, y)
print(clf.preprocessing_)

# %%
# Export, and look at what the file says about itself
# ---------------------------------------------------
path = to_onnx(clf, os.path.join(tempfile.mkdtemp(), "pneumonia.onnx"))
model = onnx.load(path)
print("input:", model.graph.input[0].name, "output:", model.graph.output[0].name)
metadata = {prop.key: prop.value for prop in model.metadata_props}
print("classes:", json.loads(metadata["classes"]))
print(f"size: {os.path.getsize(path) / 1e6:.1f} MB")

# %%
# Run it with onnxruntime and compare with ``predict_proba``
# ----------------------------------------------------------
# :func:`~sklearn_cxr.export.prepare` reads and resizes the images as the
# model does; everything after that is inside the graph.
pixels = prepare(X, clf)
session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
start = time.perf_counter()
by_onnx = session.run(["probabilities"], {"images": pixels})[0]
print(f"onnxruntime: {len(X)} images in {time.perf_counter() - start:.3f} s")
by_model = clf.predict_proba(X)
print(f"largest difference: {np.abs(by_onnx - by_model).max():.1e}")

fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(by_model[:, 1], by_onnx[:, 1], s=12)
ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
ax.set_xlabel("P(PNEUMONIA), predict_proba")
ax.set_ylabel("P(PNEUMONIA), onnxruntime")
ax.set_title("The exported graph gives the same probabilities")
fig.tight_layout()
plt.show()
