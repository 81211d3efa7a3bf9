"""The diffusion model's own parts: its noise schedule and the size conditioning (what it
shares with the cGAN is tested in test_generators.py)."""

import numpy as np
import pytest
import torch

from ctnodule.balance.diffusion import ConditionalDiffusion, alpha_bar, equivalent_diameter
from ctnodule.errors import ConfigError


def test_schedule_runs_from_signal_to_noise():
    a = alpha_bar(torch.linspace(0, 1, 11))
    assert a[0] > 0.999 and a[-1] < 1e-6 and (a[1:] < a[:-1]).all()


def test_equivalent_diameter_is_the_discs_share_of_the_side():
    rr, cc = np.mgrid[:64, :64] - 31.5
    discs = np.stack([np.hypot(rr, cc) < r for r in (4, 10, 20)] + [np.zeros((64, 64), bool)])
    np.testing.assert_allclose(equivalent_diameter(discs), [8 / 64, 20 / 64, 40 / 64, 0], atol=0.01)


def _sized_blobs(n=96, size=16, seed=0):
    """Two classes (brightness 0.5 / 0.9) whose disc radius (2 or 5 px) is drawn independently of the class:
    only the size condition can tell the model which radius to draw."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    radius = rng.choice([2.0, 5.0], n)[:, None, None]
    rr, cc = np.mgrid[:size, :size] - (size - 1) / 2
    masks = (np.hypot(rr, cc)[None] < radius).astype(np.uint8)
    x = masks * (0.5 + 0.4 * y)[:, None, None] + rng.random((n, size, size)) * 0.05
    return x.astype(np.float32), y, masks


TINY = {"batch_size": 16, "width": 8, "mults": (1, 2), "train_size": 16, "sample_steps": 10}


def test_size_condition_sets_the_generated_nodules_size():
    x, y, masks = _sized_blobs()
    model = ConditionalDiffusion(epochs=40, size_condition=True, seed=0, **TINY).fit(x, y, masks)
    small, large = equivalent_diameter(masks[masks.sum((1, 2)) < 30][:1])[0], equivalent_diameter(masks).max()
    labels_sizes = np.array([small] * 8 + [large] * 8 + [small] * 8 + [large] * 8, np.float32)
    s = model.sample(16, seed=1, sizes=labels_sizes)
    area = s.masks.sum(axis=(1, 2))
    big = labels_sizes == large
    assert area[big].mean() > 2 * area[~big].mean(), f"mask areas small {area[~big].mean()}, large {area[big].mean()}"
    drawn = model._sample_sizes(np.repeat([0, 1], 50), None, seed=3)  # default: the class's training sizes
    assert set(np.unique(drawn)) <= set(np.unique(model.sizes_)) and len(np.unique(drawn)) == 2


def test_size_conditioned_model_round_trips_and_checks_sizes(tmp_path):
    x, y, masks = _sized_blobs(n=32)
    model = ConditionalDiffusion(epochs=1, size_condition=True, **TINY).fit(x, y, masks)
    loaded = ConditionalDiffusion.load(model.save(tmp_path / "d.pt"))
    np.testing.assert_array_equal(loaded.sizes_, model.sizes_)
    np.testing.assert_allclose(loaded.sample(3, seed=2).images, model.sample(3, seed=2).images, atol=1e-5)
    with pytest.raises(ConfigError, match="one value per sample"):
        model.sample(3, sizes=np.ones(2))
    unsized = ConditionalDiffusion(epochs=1, size_condition=True, **TINY).fit(x, y)  # no masks: no size either
    with pytest.raises(ConfigError, match="not size-conditioned"):
        unsized.sample(3, sizes=np.ones(6))



def test_files_from_before_size_conditioning_load_as_class_only(tmp_path):
    x, y, masks = _sized_blobs(n=32)
    model = ConditionalDiffusion(epochs=1, size_condition=False, **TINY).fit(x, y, masks)
    blob = torch.load(model.save(tmp_path / "d.pt"), weights_only=True)
    for key in ("sizes", "size_labels"):
        del blob[key]
    del blob["params"]["size_condition"]
    torch.save(blob, tmp_path / "old.pt")
    old = ConditionalDiffusion.load(tmp_path / "old.pt")
    assert old.get_params()["size_condition"] is False and old.sizes_ is None
    np.testing.assert_allclose(old.sample(2, seed=4).images, model.sample(2, seed=4).images, atol=1e-5)
