"""Backbone registry: names over timm, offline weights, loud random init, close-name suggestions."""

from __future__ import annotations

import pytest
import torch

from ctnodule.errors import ConfigError
from ctnodule.models.backbones import available_backbones, create_backbone

REQUIRED = ("vgg19", "mobilenetv2_100", "efficientnet_b0", "resnet50", "efficientnet_lite0", "resnet18")


def test_required_backbones_are_registered():
    assert set(REQUIRED) <= set(available_backbones())


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ConfigError, match="resnet18"):
        create_backbone("resnet1")


def test_auto_weights_for_lite0_are_pretrained_and_give_feature_maps():
    b = create_backbone("efficientnet_lite0", "auto")
    assert b.pretrained and "ImageNet" in b.weights_status
    out = b(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, b.num_features, 2, 2)


def test_missing_weights_warn_loudly_and_are_recorded():
    with pytest.warns(UserWarning, match="NO PRETRAINED WEIGHTS"):
        b = create_backbone("resnet18", "auto")
    assert not b.pretrained and b.weights_status.startswith("random init")


def test_local_weights_file_round_trips(tmp_path):
    a = create_backbone("resnet18", "none")
    path = tmp_path / "r18.pt"
    torch.save(a.net.state_dict(), path)
    b = create_backbone("resnet18", str(path))
    assert b.pretrained and str(path) in b.weights_status
    x = torch.rand(1, 3, 64, 64)
    a.eval(), b.eval()
    assert torch.allclose(a(x), b(x))


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="not a readable"):
        create_backbone("resnet18", str(path))
    with pytest.raises(ConfigError, match="no such file"):
        create_backbone("resnet18", str(tmp_path / "missing.pt"))


def test_backbone_none_gives_no_image_features():
    net = create_backbone("none")
    assert "none" in available_backbones() and net.num_features == 0 and net.pretrained
    assert net(torch.rand(5, 3, 64, 64)).shape == (5, 0, 1, 1)
