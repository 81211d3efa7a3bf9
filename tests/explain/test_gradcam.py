"""CamExplainer over pytorch-grad-cam: target layer per backbone, map shape/range, restored state."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from torch import nn

from ctnodule.errors import ConfigError
from ctnodule.explain.gradcam import CamExplainer, available_methods, find_target_layer, resolve_target_layers
from ctnodule.explain.localization import cam_mass_in_mask, pointing_game

#: the layer each supported backbone's map is taken from (activated output of its last convolution)
EXPECTED = {
    "vgg19": "features.35", "mobilenetv2_100": "bn2", "efficientnet_b0": "bn2",
    "efficientnet_lite0": "bn2", "resnet18": "layer4", "resnet50": "layer4",
}


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=2)


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_backbone_layer_found_and_map_shape_range(name):
    model = _model(name)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert find_target_layer(model, x) == EXPECTED[name]
    with CamExplainer(model, "gradcam") as cam:
        maps, probs, targets = cam(x)
    assert cam.layers_ == [EXPECTED[name]]
    assert maps.shape == (2, 64, 64) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(targets, probs.argmax(1))  # default target: the predicted class


def test_modes_grads_and_hooks_restored_after_each_use():
    model = _model("resnet18")
    model.train()
    model.layer1.eval()  # a mixed state must come back exactly, not just model.training
    modes = {n: m.training for n, m in model.named_modules()}
    marker = torch.full_like(model.fc.weight, 7.0)
    model.fc.weight.grad = marker
    hooks = _hooks(model)
    x = torch.rand(2, 3, 32, 32)
    for _ in range(3):
        with CamExplainer(model, "gradcam++") as cam:
            cam(x)
            assert not model.training  # explained in eval mode (BatchNorm running stats, no dropout)
        assert {n: m.training for n, m in model.named_modules()} == modes
        assert _hooks(model) == hooks
        assert model.fc.weight.grad is marker
        assert all(p.requires_grad for p in model.parameters())
        assert model.layer2[0].conv1.weight.grad is None


def test_errors_inside_the_block_propagate_and_still_clean_up():
    model = _model("resnet18")
    hooks = _hooks(model)
    model.train()
    # the package's own __exit__ would swallow this one
    with pytest.raises(IndexError), CamExplainer(model) as cam:
        cam(torch.rand(1, 3, 32, 32))
        raise IndexError("boom")
    assert _hooks(model) == hooks and model.training


def test_target_class_layer_override_and_bad_names():
    model = _model("resnet18")
    x = torch.rand(3, 3, 32, 32)
    with CamExplainer(model, "gradcam", layer="layer3") as cam:
        maps, _, targets = cam(x, target=1)
    assert cam.layers_ == ["layer3"] and maps.shape == (3, 32, 32) and (targets == 1).all()
    with pytest.raises(ConfigError, match="Did you mean 'layer3'"), CamExplainer(model, layer="layer33"):
        pass
    with pytest.raises(ConfigError, match="gradcam"), CamExplainer(model, "gradcamm"):
        pass
    with pytest.raises(ConfigError, match="out of range"), CamExplainer(model) as cam:
        cam(x, target=5)
    assert set(available_methods()) >= {"gradcam", "gradcam++", "scorecam", "eigencam"}


class _BrightSpot(nn.Module):
    """Class 0 score = mean of a ReLU'd local-average filter: it is driven only by bright pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        nn.init.constant_(self.conv.weight, 1 / 27)
        nn.init.zeros_(self.conv.bias)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam", "scorecam"])
def test_map_falls_on_the_evidence(method):
    x = torch.zeros(1, 3, 48, 48)
    x[:, :, 30:40, 8:18] = 1.0
    mask = np.zeros((48, 48), bool)
    mask[29:41, 7:19] = True  # the spot plus the 3x3 filter's reach
    model = _BrightSpot()
    for p in model.parameters():  # a frozen network still gets a map (the input carries the gradient)
        p.requires_grad_(False)
    with CamExplainer(model, method) as cam:
        maps, _, _ = cam(x, target=0)
    assert cam.layers_ == ["act"]
    assert cam_mass_in_mask(maps[0], mask) > 0.9
    assert pointing_game(maps[0], mask)


def test_fold_ensemble_explains_every_member():
    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList([_model("resnet18"), _model("resnet18")])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([m(x).softmax(1) for m in self.members]).mean(0).log()

    ens = Ensemble()
    x = torch.rand(1, 3, 64, 64)  # (at 32 px layer4 is 1x1: the search would fall back to layer3)
    assert resolve_target_layers(ens, None, x) == ["members.0.layer4", "members.1.layer4"]
    assert resolve_target_layers(ens, "layer3", x) == ["members.0.layer3", "members.1.layer3"]
    with CamExplainer(ens) as cam:
        maps, _, _ = cam(x)
    assert maps.shape == (1, 64, 64) and 0.0 <= maps.min() and maps.max() <= 1.0


def test_grid_is_reported_and_a_finer_layer_can_be_asked_for():
    model = _model("efficientnet_lite0")
    x = torch.rand(2, 3, 64, 64)
    with CamExplainer(model) as cam:
        cam(x)
    assert cam.grid_ == (2, 2)  # stride 32: a 64-px crop leaves 2x2 cells
    finer = find_target_layer(model, x, min_side=4)
    assert finer == "blocks.4"
    with CamExplainer(model, layer=finer) as cam:
        maps, _, _ = cam(x)
    assert cam.grid_ == (4, 4) and maps.shape == (2, 64, 64)
    with pytest.raises(ConfigError, match=">= 64 cells"):
        find_target_layer(model, x, min_side=64)
