"""The run-folder predictor's device: setting it moves the whole network, head included."""

from __future__ import annotations

from ctnodule.predict.run import load_run


def test_setting_the_device_moves_backbone_and_head(phantom_default_run):
    """Grad-CAM runs its own forward pass through `predictor.model`: a head left on the CPU while the input
    goes to another device fails there. PyTorch's 'meta' device stands in for a GPU on a CPU-only machine."""
    predictor = load_run(phantom_default_run)
    assert {p.device.type for p in predictor.model.parameters()} == {"cpu"}
    predictor.device = "meta"
    assert predictor.device == "meta"
    assert {p.device.type for p in predictor.model.backbone.parameters()} == {"meta"}
    assert {p.device.type for p in predictor.model.head.parameters()} == {"meta"}
