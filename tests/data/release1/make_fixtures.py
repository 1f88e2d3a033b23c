"""Write the model files of the first release, for the compatibility tests.

Run it with the first release (commit 7c854b5) on the path, from a
temporary worktree, so that the files are exactly what that release wrote::

    git worktree add /tmp/rel1 7c854b5
    PYTHONPATH=/tmp/rel1 python tests/data/release1/make_fixtures.py
    git worktree remove /tmp/rel1

It fits the smallest models the release can build offline (timm's
``test_efficientnet`` with random weights for the safe format, a four-filter
``torch.nn.Sequential`` for the joblib pickles, which may hold any module),
saves them with ``save()`` and ``joblib.dump``, and records the
probabilities the release predicted on the stored images in
``expected.json``. ``tests/test_release1_files.py`` checks that the current
code loads every file and predicts the same.
"""

import json
import os
from collections import OrderedDict

import joblib
import numpy as np
import torch

import sklearn_cxr
from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures

HERE = os.path.dirname(os.path.abspath(__file__))


def tiny_module():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        OrderedDict(
            conv=torch.nn.Conv2d(3, 4, 3, stride=2),
            pool=torch.nn.AdaptiveAvgPool2d(1),
            flat=torch.nn.Flatten(),
            fc=torch.nn.Linear(4, 10),
        )
    )


def main():
    rng = np.random.RandomState(0)
    X = rng.randint(0, 255, (8, 32, 32), dtype=np.uint8)
    X[4:, 8:24, 8:24] = 255  # a bright square: something to learn
    y = np.array(["NORMAL"] * 4 + ["PNEUMONIA"] * 4)
    np.save(os.path.join(HERE, "images.npy"), X)
    common = dict(weights=None, image_size=32, batch_size=4, random_state=0)
    models = {
        "finetune.cxr": PretrainedCNNClassifier(
            backbone="timm:test_efficientnet", max_epochs=1, **common
        ),
        "features.cxr": PretrainedCNNClassifier(
            backbone="timm:test_efficientnet", mode="features", **common
        ),
        "finetune.joblib": PretrainedCNNClassifier(
            backbone=tiny_module(), max_epochs=1, hidden_units=(3,), **common
        ),
        "features.joblib": PretrainedCNNClassifier(
            backbone=tiny_module(), mode="features", **common
        ),
        "transformer.joblib": PretrainedFeatures(backbone=tiny_module(), **common),
    }
    expected = {"sklearn_cxr_version": sklearn_cxr.__version__, "outputs": {}}
    for name, model in models.items():
        model.fit(X, y)
        if isinstance(model, PretrainedFeatures):
            output = model.transform(X)
        else:
            output = model.predict_proba(X)
        expected["outputs"][name] = np.asarray(output, dtype=np.float64).tolist()
        path = os.path.join(HERE, name)
        if name.endswith(".cxr"):
            model.save(path)
        else:
            joblib.dump(model, path)
    with open(os.path.join(HERE, "expected.json"), "w") as handle:
        json.dump(expected, handle, indent=1)


if __name__ == "__main__":
    main()
