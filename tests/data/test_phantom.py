"""The CT phantom: HU ranges of its tissues, nodule size/margin following malignancy, determinism."""

from __future__ import annotations

import itertools

import numpy as np

from ctnodule.data.phantom import PhantomPatient, draw_nodule, place_nodules


def _patient(seed: int = 3, scores: tuple[int, ...] = (1, 5)) -> PhantomPatient:
    rng = np.random.default_rng(seed)
    patient = PhantomPatient(rng, 0.7, [])
    patient.nodules = place_nodules(rng, patient, list(scores))
    return patient


def test_tissues_have_ct_values():
    patient = _patient()
    z = patient.nodules[0].centre[2]
    img, masks = patient.render(z, 1.25)
    assert img.dtype == np.int16 and img.shape == (512, 512)
    lungs = patient.lung_masks(z) & ~masks[0]
    assert -900 < np.median(img[lungs]) < -780  # parenchyma ~-850 (vessels raise it a little)
    assert np.median(img[:20, :20]) < -950  # air outside the body
    assert img.max() > 500  # ribs / spine cortex
    body_soft = img[(img > -200) & (img < 200)]
    assert body_soft.size > 10_000


def test_nodule_mask_marks_dense_pixels_inside_the_lung():
    patient = _patient()
    spec = patient.nodules[1]
    img, masks = patient.render(spec.centre[2], 1.25)
    mask = masks[1]
    assert mask.sum() > 20 and not masks[1][:50].any()
    assert np.median(img[mask]) > -300 > np.median(img[patient.lung_masks(spec.centre[2]) & ~mask])


def test_slice_far_from_nodule_has_empty_mask():
    patient = _patient()
    spec = patient.nodules[0]
    _, masks = patient.render(spec.centre[2] + spec.radius_z + 5, 1.25)
    assert not masks[0].any()


def test_size_and_spicules_grow_with_malignancy():
    rng = np.random.default_rng(0)
    specs = {m: [draw_nodule(rng, m, (0, 0, 0)) for _ in range(40)] for m in range(1, 6)}
    diam = [np.median([s.diameter_mm for s in specs[m]]) for m in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(diam))
    spic = [np.mean([len(s.spicules) for s in specs[m]]) for m in range(1, 6)]
    assert spic[0] == spic[1] == 0 and spic[4] > spic[3] > 0


def test_render_is_deterministic():
    a, _ = _patient(7).render(100.0, 2.0)
    b, _ = _patient(7).render(100.0, 2.0)
    c, _ = _patient(8).render(100.0, 2.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
