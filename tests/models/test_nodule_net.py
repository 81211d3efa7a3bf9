"""The nodule-scale network: built by name through the backbone registry, ends on a map >= 8x8."""

from __future__ import annotations

import warnings

import pytest
import torch

from ctnodule.models.backbones import available_backbones, create_backbone


@pytest.mark.parametrize("name", ["nodule_resnet", "nodule_resnet_wide"])
def test_last_feature_map_is_at_least_8x8_on_a_32px_crop(name):
    assert name in available_backbones()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a from-scratch architecture is not a "missing weights" warning
        backbone = create_backbone(name, "auto")
    assert not backbone.pretrained and "from-scratch" in backbone.weights_status
    maps = backbone(torch.rand(2, 3, 32, 32))
    assert maps.shape[0] == 2 and maps.shape[1] == backbone.num_features
    assert min(maps.shape[2:]) >= 8


def test_map_keeps_a_quarter_of_the_input_side():
    backbone = create_backbone("nodule_resnet", "none")
    assert tuple(backbone(torch.rand(1, 3, 64, 48)).shape[2:]) == (16, 12)


def test_gradients_reach_the_input_through_the_map():
    backbone = create_backbone("nodule_resnet", "none")
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    backbone(x)[:, :, 4, 4].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_roi_net_reads_the_mask_and_keeps_its_map_on_the_nodule():
    backbone = create_backbone("nodule_resnet_roi", "auto")
    assert backbone.takes_mask
    x = torch.rand(2, 4, 32, 32)
    x[:, 3] = 0.0
    x[0, 3, 12:16, 12:16] = 1.0  # a 4-px nodule: cell (3, 3) of the 8x8 map, grown by one cell -> 3x3 cells
    maps = backbone(x)
    kept = maps.abs().sum(1) > 0
    assert kept[0].sum() <= 9 and not kept[0, 0, 0] and kept[0, 3, 3]
    assert kept[1].all()  # no mask: the whole map (nothing to restrict it to)
