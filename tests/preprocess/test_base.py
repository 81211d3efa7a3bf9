"""Contract tests over every registered step (sklearn's check_estimators_overwrite_params, TorchIO #1115)."""

import copy

import numpy as np
import pytest

from ctnodule.errors import ConfigError
from ctnodule.preprocess import STEPS, create_step
from ctnodule.preprocess.base import LUNG_MASK
from ctnodule.preprocess.window import window_array

from .synth import chest_slice, nodule_crop


def _input_for(name: str, rng: np.random.Generator, variant: int):
    """A valid input for step `name`: HU for the HU steps, windowed [0, 1] for the rest."""
    if name == "lung_mask":
        return chest_slice(rng, size=128, spacing=2.8, juxta=bool(variant))[0]
    s = nodule_crop(rng, size=40 + 8 * variant, spacing=0.6 + 0.2 * variant, radius_mm=3 + 3 * variant,
                    sid=f"v{variant}")
    if name in ("window", "size"):
        return s
    s = s.replace(array=window_array(s.array, -600, 1500))
    if name == "mask_background":
        s = s.replace(meta={**s.meta, LUNG_MASK: (s.array > 0.3).astype(np.uint8)})
    return s


def _fitted(name: str, rng: np.random.Generator):
    step = create_step(name, {"mode": "resize", "size": None} if name == "size" else {})
    if step.needs_fit:
        step.fit([_input_for(name, rng, v) for v in (0, 1, 1)])
    return step


@pytest.mark.parametrize("name", STEPS.available())
def test_applying_never_changes_params_state_or_input(name, rng):
    step = _fitted(name, rng)
    params, state = copy.deepcopy(step.get_params()), copy.deepcopy(step.fitted_state())
    outs = []
    for variant in (0, 1):
        s = _input_for(name, rng, variant)
        before = (s.array.copy(), None if s.mask is None else s.mask.copy(), dict(s.meta), s.spacing)
        out = step(s)
        assert out is not s or name == "size"  # `size` may return an already-standard slice as is
        np.testing.assert_array_equal(s.array, before[0])
        if s.mask is not None:
            np.testing.assert_array_equal(s.mask, before[1])
        assert s.meta.keys() == before[2].keys() and s.spacing == before[3]
        outs.append(out)
    assert step.get_params() == params and step.fitted_state() == state


@pytest.mark.parametrize("name", STEPS.available())
def test_params_are_stored_under_their_own_names(name):
    step = create_step(name)
    assert set(step.get_params()) == set(step._param_names())
    assert not any(k.endswith("_") for k in vars(step))  # nothing learned before fit


@pytest.mark.parametrize("name", STEPS.available())
def test_rebuilt_from_name_and_params_gives_identical_output(name, rng):
    step = _fitted(name, rng)
    twin = create_step(name, step.get_params()).set_fitted_state(step.fitted_state())
    s = _input_for(name, rng, 1)
    a, b = step(s), twin(s)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.spacing == b.spacing


def test_unknown_step_or_param_is_a_config_error_with_suggestions():
    with pytest.raises(ConfigError, match="Did you mean 'clahe'"):
        create_step("clahee")
    with pytest.raises(ConfigError, match="accepted"):
        create_step("gamma", {"gama": 1.2})
