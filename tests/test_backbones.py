"""Backbone registry, head swap and weights loading."""

import os

import pytest
import torch
from torch import nn

from sklearn_cxr import PretrainedFeatures, WeightsUnavailableError, list_backbones
from sklearn_cxr._backbones import (
    CXRNetwork,
    build_head,
    load_backbone,
    probe_features,
)


def test_list_backbones_sorted_and_complete():
    import torchvision

    names = list_backbones()
    assert names == sorted(names)
    assert set(names) == set(torchvision.models.list_models(module=torchvision.models))
    assert "resnet18" in names and "densenet121" in names


def test_list_backbones_timm_prefixed():
    pytest.importorskip("timm")
    names = list_backbones("timm")
    assert "timm:tf_efficientnet_lite0" in names
    assert all(n.startswith("timm:") for n in names)
    with pytest.raises(ValueError, match="source must be"):
        list_backbones("keras")


def test_unknown_backbone_suggests_closest():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet181'.*'resnet18'"):
        load_backbone("resnet181", None)


def test_unknown_weights_lists_valid_names():
    with pytest.raises(ValueError, match=r"IMAGENET1K_V1.*DEFAULT|DEFAULT.*IMAGENET1K"):
        load_backbone("resnet18", "IMAGENET_V9")


@pytest.mark.parametrize(
    "name, width",
    [
        ("resnet18", 512),
        ("mobilenet_v3_small", 1024),
        ("squeezenet1_1", 512),
        ("shufflenet_v2_x0_5", 1024),
        ("googlenet", 1024),
        ("efficientnet_b0", 1280),
    ],
)
def test_head_is_replaced(name, width):
    spec = load_backbone(name, None)
    assert probe_features(spec.body, 64, 3) == width
    net = CXRNetwork(spec.body, build_head(width, 3, hidden_units=(16,), dropout=0.2))
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 3)


def test_timm_backbone_reset_classifier():
    pytest.importorskip("timm")
    spec = load_backbone("timm:tf_efficientnet_lite0", None)
    assert probe_features(spec.body, 64, 3) == 1280
    # the weights' own preprocessing, not ImageNet's torchvision statistics
    assert spec.mean == (0.5, 0.5, 0.5) and spec.interpolation == "bicubic"


def test_module_backbone_is_copied_not_mutated():
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    spec = load_backbone(model, "DEFAULT")
    assert isinstance(model.fc, nn.Linear)  # the user's module keeps its head
    assert isinstance(spec.body.fc, nn.Identity)


def test_build_head_layers():
    head = build_head(8, 2, hidden_units=(4, 3), dropout=0.5)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert head[-1].out_features == 2


def test_weights_from_state_dict_file(tmp_path):
    import torchvision

    torch.manual_seed(3)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    spec = load_backbone("resnet18", str(path))
    assert torch.equal(spec.body.conv1.weight, source.conv1.weight)
    # os.PathLike works too
    spec = load_backbone("resnet18", path)
    assert torch.equal(spec.body.layer4[0].conv1.weight, source.layer4[0].conv1.weight)


def test_weights_file_with_wrong_keys_reports_them(tmp_path):
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["layer1.0.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing keys: layer1.0.conv1.weight") as err:
        load_backbone("resnet18", path)
    assert "unexpected keys: extra.weight" in str(err.value)


def test_missing_weights_file():
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_backbone("resnet18", "/nonexistent/resnet.pth")


def test_torchvision_weights_load_from_prefilled_cache(tmp_path, monkeypatch):
    """The real download path: a pre-filled $TORCH_HOME cache works offline."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(7)
    reference = torchvision.models.resnet18(weights=None)
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / "resnet18-f37072fd.pth")
    features = PretrainedFeatures(backbone="resnet18", weights="DEFAULT", image_size=32)
    features.fit()
    assert torch.equal(features.backbone_.conv1.weight, reference.conv1.weight)
    # IMAGENET1K_V1 is the same file
    spec = load_backbone("resnet18", "IMAGENET1K_V1")
    assert torch.equal(spec.body.conv1.weight, reference.conv1.weight)


def test_missing_download_is_a_clear_error_never_random(tmp_path, monkeypatch):
    """Without network or cache: an error naming the file, no silent random init."""
    from urllib.error import URLError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        PretrainedFeatures(backbone="resnet18", weights="DEFAULT").fit()
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message
    assert os.path.join(str(tmp_path), "hub", "checkpoints") in message
    assert "weights=<path" in message
    assert not (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_grayscale_stem_equals_replicated_rgb():
    torch.manual_seed(0)
    rgb = load_backbone("resnet18", None)
    torch.manual_seed(0)
    gray = load_backbone("resnet18", None, in_chans=1)
    assert gray.body.conv1.in_channels == 1
    x = torch.rand(2, 1, 64, 64)
    rgb.body.eval()
    gray.body.eval()
    with torch.no_grad():
        expected = rgb.body(x.expand(2, 3, 64, 64))
        actual = gray.body(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_grayscale_stem_timm():
    pytest.importorskip("timm")
    spec = load_backbone("timm:tf_efficientnet_lite0", None, in_chans=1)
    assert probe_features(spec.body, 64, 1) == 1280


# ------------------------------------------- names checked before anything runs
def test_check_backbone_name_suggests_timm_names():
    pytest.importorskip("timm", reason="timm is an optional dependency")
    from sklearn_cxr._backbones import check_backbone_name

    with pytest.raises(ValueError, match=r"Did you mean 'timm:efficientnet_lite0'\?"):
        check_backbone_name("efficientnet_lite0")
    with pytest.raises(ValueError, match=r"Did you mean 'resnet18' or 'timm:"):
        check_backbone_name("resnt18")
    with pytest.raises(ValueError, match=r"'IMAGENET1K_V1'"):
        check_backbone_name("resnet18", "IMAGENET1K_V11")
    with pytest.raises(ValueError, match=r"offline only for 'timm:tf_efficientnet"):
        check_backbone_name("resnet18", "IMAGENET")
    with pytest.raises(ValueError, match=r"offline only for 'timm:tf_efficientnet"):
        check_backbone_name("timm:resnet18", "IMAGENET")
    with pytest.raises(FileNotFoundError, match=r"weights file not found: /no/"):
        check_backbone_name("resnet18", "/no/such.pth")
    # valid names pass without building or reading anything
    check_backbone_name("resnet18", "DEFAULT")
    check_backbone_name("timm:tf_efficientnet_lite0", None)


# ----------------------------------------- backbones that take one channel
def _one_channel_resnet():
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    return model


class _OneChannelNet(nn.Module):
    """Like torchxrayvision's models: a 1-channel stem and its own scaling."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(4, 18)
        self.pretrained_cfg = {"mean": (0.5,), "std": (1 / 2048,)}

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.mark.parametrize("make", [_one_channel_resnet, _OneChannelNet])
def test_one_channel_stem_is_used_as_it_is(make):
    import numpy as np

    module = make()
    stem = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    spec = load_backbone(module, None, in_chans=1)
    new_stem = next(m for m in spec.body.modules() if isinstance(m, nn.Conv2d))
    assert new_stem.in_channels == 1
    assert torch.equal(new_stem.weight, stem.weight)  # not summed, not changed
    X = np.random.RandomState(0).randint(0, 255, (3, 32, 32), dtype=np.uint8)
    features = PretrainedFeatures(backbone=module, weights=None, image_size=32,
                                  in_chans=1).fit(X)
    assert features.transform(X).shape[0] == 3
    with pytest.raises(ValueError, match=r"first convolution of the backbone "
                       r".*takes 1 channel\(s\), but in_chans=3; pass in_chans=1"):
        load_backbone(module, None, in_chans=3)


def test_module_backbone_declares_its_input_scaling():
    import numpy as np

    X = np.random.RandomState(0).randint(0, 255, (3, 32, 32), dtype=np.uint8)
    features = PretrainedFeatures(backbone=_OneChannelNet(), weights=None,
                                  image_size=32, in_chans=1).fit(X)
    assert features.mean_ == (0.5,) and features.std_ == (1 / 2048,)
    bad = _OneChannelNet()
    bad.pretrained_cfg = {"mean": (0.5,), "std": (0.0,)}
    with pytest.raises(ValueError, match=r"_OneChannelNet declares pretrained_cfg "
                       r"mean=\(0\.5,\), std=\(0\.0,\).*std above 0"):
        load_backbone(bad, None, in_chans=1)
