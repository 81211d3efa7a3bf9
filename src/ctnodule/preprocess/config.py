"""`PreprocessConfig`: a view's preprocessing as an ordered list of `{name, params}` steps.

The same model is the user's YAML config (`params` only) and the saved `pipeline.yaml` (each step also
carries `state`, what `fit` learned, and the file carries the pipeline `hash`). Two recipes per view:
`seed(view)` is the original report's (stretch every nodule crop to the learned majority size) and
`default(view)` is ours (resample nodule crops to 0.7 mm/px and crop/pad 64 x 64 around the nodule, so
physical size survives).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from ctnodule.config import StrictModel
from ctnodule.errors import ConfigError

View = Literal["full", "nodule"]

#: The lung window every view starts from (HU level / width).
LUNG_WINDOW = {"level": -600.0, "width": 1500.0}


class StepSpec(StrictModel):
    """One step: its registered name, constructor params and (in a saved pipeline) fitted state."""

    name: str
    params: dict[str, Any] = pydantic.Field(default_factory=dict)
    state: dict[str, Any] = pydantic.Field(default_factory=dict)


class PreprocessConfig(StrictModel):
    """The preprocessing of one view. `hash` is only set in saved, fitted pipelines."""

    view: View = "nodule"
    steps: list[StepSpec]
    hash: str | None = None

    @classmethod
    def default(cls, view: str) -> PreprocessConfig:
        """Our recipe: the seed's intensity steps, then physical-scale size standardisation for nodules
        (resample to 0.7 mm/px, crop/pad 64 x 64 around the nodule mask)."""
        return cls._build(view, {"mode": "resample", "size": [64, 64], "spacing_mm": 0.7, "centre": "mask"})

    @classmethod
    def nodule_cnn(cls, view: str, size: int = 32, spacing_mm: float = 1.0) -> PreprocessConfig:
        """The nodule-scale CNN's input: HU window [-1000, 400] to [0, 1] (air = 0, so the padding of a crop
        at the image edge is air, not "darker than air"), resampled to `spacing_mm` mm/px and cropped
        `size` x `size` around the mask centroid. No gamma/CLAHE: a network trained from scratch learns its
        own contrast, and CLAHE would make a pixel's value depend on its neighbourhood."""
        if view != "nodule":
            raise ConfigError(f"the nodule_cnn preprocessing is for nodule crops; got view {view!r}")
        return cls(view="nodule", steps=[
            StepSpec(name="window", params={"level": -300.0, "width": 1400.0}),
            StepSpec(name="size", params={"mode": "resample", "size": [size, size], "spacing_mm": spacing_mm,
                                          "centre": "mask", "fill": 0.0}),
        ])

    @classmethod
    def seed(cls, view: str) -> PreprocessConfig:
        """The seed report's recipe: the same intensity steps, then stretch every nodule crop to the
        standard size learned from the training data (mean of the majority shapes)."""
        return cls._build(view, {"mode": "resize", "size": None, "aspect": "stretch"})

    @classmethod
    def _build(cls, view: str, nodule_size: dict[str, Any]) -> PreprocessConfig:
        """Intensity steps on the native pixels (CLAHE and the noise measure see the real image, not
        padding), size standardisation last, padding with 0 = "no data". Full slices get the lung mask
        on HU first and lose their background after CLAHE, and stay 512 x 512."""
        _check_view(view)
        steps: list[tuple[str, dict[str, Any]]] = [("lung_mask", {"closing_mm": 20.0})] if view == "full" else []
        steps += [("window", dict(LUNG_WINDOW)), ("gamma", {"gamma": 1.35}),
                  ("clahe", {"clip_limit": 2.5, "tiles": [8, 8]})]
        if view == "full":
            steps.append(("mask_background", {}))
        steps.append(("noise", {"percentile": 98.0}))
        size = nodule_size if view == "nodule" else {"mode": "resize", "size": [512, 512], "aspect": "pad"}
        steps.append(("size", {**size, "fill": 0.0}))
        return cls(view=view, steps=[StepSpec(name=n, params=p) for n, p in steps])


def _check_view(view: str) -> None:
    if view not in ("full", "nodule"):
        raise ConfigError(f"unknown view {view!r}; expected 'full' or 'nodule'")
