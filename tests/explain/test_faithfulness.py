"""Deletion test and occlusion on a synthetic model that reads one known square of the image."""

from __future__ import annotations

import numpy as np

from ctnodule.explain.faithfulness import deletion_curves, deletion_summary, occlusion_map
from ctnodule.explain.localization import cam_mass_in_mask

SQUARE = (slice(20, 30), slice(34, 44))


def _forward(x: np.ndarray) -> np.ndarray:
    """P(class) rises with the brightness of SQUARE and ignores every other pixel."""
    return 1 / (1 + np.exp(-12 * (x[:, :, SQUARE[0], SQUARE[1]].mean(axis=(1, 2, 3)) - 0.6)))


def _image(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.1, 0.4, (3, 64, 64)).astype(np.float32)
    img[:, SQUARE[0], SQUARE[1]] += 0.6
    truth = np.zeros((64, 64), bool)
    truth[SQUARE] = True
    return img, truth


def test_a_perfect_map_beats_random_and_a_wrong_one_does_not():
    curves = []
    for seed in range(8):
        img, truth = _image(seed)
        wrong = np.roll(truth, 25, axis=0).astype(float)
        curves.append(deletion_curves(_forward, img, {"perfect": truth.astype(float), "wrong": wrong}, seed=seed))
    summary = deletion_summary(curves)
    assert summary["perfect"]["ci"][0] > 0.1
    assert summary["perfect"]["share_better_than_random"] == 1.0
    assert summary["wrong"]["ci"][0] <= 0 and "no better than random" in summary["wrong"]["verdict"]
    # every curve starts at the untouched image and ends with everything removed
    for c in curves:
        assert np.allclose(c["perfect"][0], c["random"][0]) and np.allclose(c["perfect"][-1], c["random"][-1])


def test_occlusion_finds_the_square():
    img, truth = _image(0)
    heat = occlusion_map(_forward, img, window=6, stride=3)
    assert heat.shape == (64, 64) and heat.max() == 1.0
    assert cam_mass_in_mask(heat, truth) > 0.6


def test_a_chunk_with_nothing_to_check_asks_no_model():
    from ctnodule.explain.why import faithfulness_curves

    assert faithfulness_curves(None, [], [], []) == ([], [])  # no predictor call: it would fail on 0 slices
