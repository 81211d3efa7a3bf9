import pytest

from ctnodule.config import load_yaml, save_yaml
from ctnodule.errors import ConfigError
from ctnodule.preprocess import PreprocessConfig


@pytest.mark.parametrize("view", ["nodule", "full"])
@pytest.mark.parametrize("recipe", ["default", "seed"])
def test_recipes_round_trip_through_yaml(tmp_path, view, recipe):
    cfg = getattr(PreprocessConfig, recipe)(view)
    assert cfg.view == view
    path = save_yaml(cfg, tmp_path / "pre.yaml")
    assert load_yaml(PreprocessConfig, path) == cfg


def test_default_keeps_physical_scale_seed_stretches():
    size = {c: next(s for s in getattr(PreprocessConfig, c)("nodule").steps if s.name == "size")
            for c in ("default", "seed")}
    assert size["default"].params["mode"] == "resample" and size["default"].params["spacing_mm"] == 0.7
    assert size["seed"].params["mode"] == "resize" and size["seed"].params["size"] is None
    full = [s.name for s in PreprocessConfig.default("full").steps]
    assert full.index("lung_mask") < full.index("window") < full.index("clahe") < full.index("mask_background")


def test_misspelt_key_and_unknown_view_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("view: nodule\nsteps: []\nstepz: []\n")
    with pytest.raises(ConfigError, match="stepz"):
        load_yaml(PreprocessConfig, bad)
    with pytest.raises(ConfigError, match="view"):
        PreprocessConfig.default("axial")


def test_a_recipe_file_is_a_recipe_and_must_match_the_view(tmp_path):
    edited = PreprocessConfig.default("nodule").model_copy(deep=True)
    edited.steps[1].params["gamma"] = 1.0
    path = save_yaml(edited, tmp_path / "mine.yaml")
    assert PreprocessConfig.resolve(str(path), "nodule") == edited
    assert PreprocessConfig.resolve("seed", "full") == PreprocessConfig.seed("full")
    with pytest.raises(ConfigError, match="'nodule' view"):
        PreprocessConfig.resolve(str(path), "full")
    with pytest.raises(ConfigError, match="not found"):
        PreprocessConfig.resolve(str(tmp_path / "missing.yaml"), "nodule")
