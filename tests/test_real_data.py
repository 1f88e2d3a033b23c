"""Real transfer learning on real chest X-rays with offline ImageNet weights.

Skipped where ``../shared`` (data and weights) is absent; CI has them.
"""

import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit

from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures

BACKBONE = "timm:tf_efficientnet_lite0"


def _patient(name):
    match = re.match(r"(person\d+|NORMAL2-IM-\d+|IM-\d+)", name)
    return match.group(1)


@pytest.fixture(scope="module")
def subset(shared_data_dir):
    """160 real images, half normal, with their patient ids."""
    paths, labels = [], []
    for label in ("NORMAL", "PNEUMONIA"):
        files = sorted((shared_data_dir / "train" / label).glob("*.jpeg"))
        rng = np.random.RandomState(0)
        chosen = rng.choice(len(files), 80, replace=False)
        paths += [str(files[i]) for i in sorted(chosen)]
        labels += [label] * 80
    paths, labels = np.array(paths), np.array(labels)
    groups = np.array([_patient(p.rsplit("/", 1)[-1]) for p in paths])
    train, test = next(
        GroupShuffleSplit(1, test_size=0.3, random_state=0).split(paths, labels, groups)
    )
    return paths, labels, train, test


def _auc(clf, paths, labels, test):
    proba = clf.predict_proba(list(paths[test]))
    column = list(clf.classes_).index("PNEUMONIA")
    return roc_auc_score(labels[test] == "PNEUMONIA", proba[:, column])


# 224 px: the default detail_size caps the detail at 128 px there
@pytest.mark.parametrize("image_size", [160, 224])
def test_feature_mode_transfers_imagenet_knowledge(
    subset, imagenet_weights, image_size
):
    paths, labels, train, test = subset
    common = dict(
        backbone=BACKBONE, mode="features", image_size=image_size, random_state=0
    )
    pretrained = PretrainedCNNClassifier(weights=imagenet_weights, **common)
    pretrained.fit(list(paths[train]), labels[train])
    auc = _auc(pretrained, paths, labels, test)
    assert auc >= 0.93, auc
    # the embedding is the pretrained network's, not a random one's
    scratch = PretrainedFeatures(
        backbone=BACKBONE, weights=None, image_size=image_size
    )
    image = list(paths[test][:2])
    assert not np.allclose(
        pretrained.features_.transform(image), scratch.fit().transform(image)
    )


def test_finetune_mode_learns_real_images(subset, imagenet_weights):
    paths, labels, train, test = subset
    clf = PretrainedCNNClassifier(
        backbone=BACKBONE,
        weights=imagenet_weights,
        image_size=96,
        max_epochs=3,
        batch_size=16,
        random_state=0,
    ).fit(list(paths[train]), labels[train])
    assert _auc(clf, paths, labels, test) >= 0.85
