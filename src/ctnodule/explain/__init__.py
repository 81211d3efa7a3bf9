"""explain stage: class activation maps (pytorch-grad-cam), how much of them falls on the nodule, overlays
and the gallery.

Public API::

    from ctnodule.explain import CamExplainer, explain_run, explain_slices, cam_mass_in_mask, pointing_game
    with CamExplainer(model, "gradcam") as cam:      # hooks removed and model modes restored on exit
        maps, probs, targets = cam(x)                # (N, H, W) in [0, 1] at the input's resolution
    explain_run("runs/r1", "data/voi", "out/explain")  # PNGs, localization.json, report.html

Names are imported lazily, so `ctnodule --help` does not pay for torch and grad-cam.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "explain_slices": "core", "explain_run": "stage",
    "CAM_METHODS": "gradcam", "CamExplainer": "gradcam", "available_methods": "gradcam",
    "find_target_layer": "gradcam",
    "area_fraction": "localization", "bbox_mask": "localization", "cam_mass_in_mask": "localization",
    "pointing_game": "localization", "region_mask": "localization",
}

__all__ = [
    "CAM_METHODS", "CamExplainer", "area_fraction", "available_methods", "bbox_mask", "cam_mass_in_mask",
    "explain_run", "explain_slices", "find_target_layer", "pointing_game", "region_mask",
]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ctnodule.explain.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ctnodule.explain' has no attribute {name!r}")
