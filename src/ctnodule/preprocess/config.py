"""`PreprocessConfig`: a view's preprocessing as an ordered list of `{name, params}` steps.

The same model is the user's YAML config (`params` only) and the saved `pipeline.yaml` (each step also
carries `state`, what `fit` learned, and the file carries the pipeline `hash`). Two shipped recipes per
view, as YAML files in `ctnodule/configs/` (the only place they are written down): `seed` is the original
report's (stretch every nodule crop to the learned majority size) and `default` is ours (resample nodule
crops to 0.7 mm/px and crop/pad 64 x 64 around the nodule, so physical size survives); `nodule_cnn`
(nodule view only) is the nodule-scale CNN's input (1 mm/px, 32 x 32, HU window only).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pydantic
import yaml

from ctnodule.config import StrictModel
from ctnodule.errors import ConfigError
from ctnodule.recipe import PREPROCESS_RECIPES  # one YAML file per recipe and view in ctnodule/configs/
from ctnodule.vocab import VIEWS, View


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
        return cls.named("default", view)

    @classmethod
    def seed(cls, view: str) -> PreprocessConfig:
        """The seed report's recipe: the same intensity steps, then stretch every nodule crop to the
        standard size learned from the training data (mean of the majority shapes)."""
        return cls.named("seed", view)

    @classmethod
    def named(cls, name: str, view: str) -> PreprocessConfig:
        """A shipped recipe, `configs/preprocess-{name}-{view}.yaml`: those files ARE the recipes (copy one,
        edit it, pass it with `--config`/`--preprocess`)."""
        _check_view(view)
        if name not in PREPROCESS_RECIPES:
            raise ConfigError(f"unknown preprocessing recipe {name!r}; use one of {PREPROCESS_RECIPES} or a YAML file")
        path = resources.files("ctnodule").joinpath("configs", f"preprocess-{name}-{view}.yaml")
        if not path.is_file():
            raise ConfigError(f"preprocessing recipe {name!r} has no {view!r}-view version")
        text = path.read_text("utf-8")
        return cls.model_validate(yaml.safe_load(text))

    @classmethod
    def resolve(cls, recipe: str, view: str) -> PreprocessConfig:
        """`recipe` = a shipped recipe's name ("default", "seed") or the path of a recipe YAML file, whose
        view must be `view`."""
        if recipe in PREPROCESS_RECIPES:
            return cls.named(recipe, view)
        from ctnodule.config import load_yaml

        cfg = load_yaml(cls, recipe)
        if cfg.view != view:
            raise ConfigError(f"{recipe}: a recipe for the {cfg.view!r} view, but this model is trained on the "
                              f"{view!r} view")
        return cfg


def _check_view(view: str) -> None:
    if view not in VIEWS:
        raise ConfigError(f"unknown view {view!r}; expected one of {VIEWS}")
