"""Automatic nodule segmentation on phantom volumes: agreement with the drawn nodule, refusals, the sample."""

from __future__ import annotations

import numpy as np
import pytest

from ctnodule.data.phantom import PhantomPatient, place_nodules, render_volume
from ctnodule.errors import DataError
from ctnodule.preprocess.segment import nodule_sample, segment_nodule

THICKNESS = 1.25


@pytest.fixture(scope="module")
def phantom_ct():
    """Slices around one nodule of each malignancy score 2, 4, 5 (solid, lobulated, spiculated)."""
    rng = np.random.default_rng(3)
    patient = PhantomPatient(rng, 0.7, [])
    patient.nodules = place_nodules(rng, patient, [2, 4, 5])
    cases = []
    for n, spec in enumerate(patient.nodules, start=1):
        z0 = spec.centre[2] - 12 * THICKNESS
        hu, labels = render_volume(patient, z0, 25, THICKNESS)
        seed = np.array([12.0, spec.centre[0] / 0.7 + 256, spec.centre[1] / 0.7 + 256])  # (k, j, i)
        cases.append((spec, hu, labels == n, seed))
    return patient, cases


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


SP = (THICKNESS, 0.7, 0.7)


def test_segments_the_drawn_nodule_from_its_centre_and_from_an_inexact_click(phantom_ct):
    _, cases = phantom_ct
    rng = np.random.default_rng(0)
    for spec, hu, truth, seed in cases:
        assert _dice(segment_nodule(hu, SP, seed).mask, truth) > 0.75, spec
        v = rng.standard_normal(3)
        off = v / np.linalg.norm(v) * 2.0 / np.array(SP)  # 2 mm off in a random direction
        assert _dice(segment_nodule(hu, SP, seed + off).mask, truth) > 0.7, spec


def _ball(shape: tuple[int, int, int], centre: tuple[float, float, float], r_mm: float) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    return sum(((grid[a] - centre[a]) * SP[a]) ** 2 for a in range(3)) <= r_mm**2


def test_dense_noisy_lung_does_not_leak_into_the_parenchyma():
    """Dependent or expiratory lung at -680 HU with 60 HU of blotchy noise: a fixed -700 HU threshold
    takes the parenchyma (the mask grew ~200x here); the threshold is kept above the local lung's noise."""
    from scipy import ndimage as ndi

    shape = (24, 80, 80)
    rng = np.random.default_rng(0)
    noise = ndi.gaussian_filter(rng.normal(0.0, 1.0, shape), (0.5, 2.0, 2.0))
    truth = _ball(shape, (12, 40, 40), 3.0)
    hu = np.where(truth, 20.0, -680.0) + noise / noise.std() * 60.0
    mask = segment_nodule(hu, SP, (12, 40, 40)).mask
    assert _dice(mask, truth) > 0.85
    assert 0.7 < mask.sum() / truth.sum() < 1.3


def test_ground_glass_nodule_keeps_its_faint_rim():
    """A ground-glass nodule: a denser centre (-550 HU, 3 mm) in a faint rim (-740 HU, out to 5 mm) in
    -870 HU lung. The readers outline the rim; a threshold halfway from -850 HU to the centre (-700 HU)
    cut it off and kept the centre only (Dice 0.36 here)."""
    from scipy import ndimage as ndi

    shape = (24, 80, 80)
    rng = np.random.default_rng(1)
    noise = ndi.gaussian_filter(rng.normal(0.0, 1.0, shape), (0.5, 1.0, 1.0))
    truth = _ball(shape, (12, 40, 40), 5.0)
    hu = np.where(_ball(shape, (12, 40, 40), 3.0), -550.0, np.where(truth, -740.0, -870.0))
    hu = hu + noise / noise.std() * 15.0
    mask = segment_nodule(hu, SP, (12, 40, 40)).mask
    assert _dice(mask, truth) > 0.85
    assert 0.8 < mask.sum() / truth.sum() < 1.25


def test_real_vois_that_leaked_keep_their_size(voi_src):
    """Two LIDC VOIs whose automatic mask was 5-20x the readers' (dense lung beside a small solid nodule)."""
    import nibabel as nib

    for name in ("LIDC-IDRI-0039_R_3.nii.gz", "LIDC-IDRI-0043_R_1.nii.gz"):
        img = nib.load(voi_src / "image" / name)
        hu = np.transpose(np.asarray(img.dataobj), (2, 1, 0))
        truth = np.transpose(np.asarray(nib.load(voi_src / "nodule_mask" / name).dataobj) > 0, (2, 1, 0))
        sp = np.asarray(img.header.get_zooms()[:3], float)[::-1]
        mask = segment_nodule(hu, sp, np.argwhere(truth).mean(axis=0)).mask
        assert 0.5 < mask.sum() / truth.sum() < 2.0, name


def test_refuses_points_outside_in_air_and_in_bone(phantom_ct):
    patient, cases = phantom_ct
    _, hu, _, _ = cases[0]
    with pytest.raises(DataError, match="outside the volume"):
        segment_nodule(hu, SP, (12, 256, 600))
    with pytest.raises(DataError, match="in air"):
        segment_nodule(hu, SP, (12, 5, 5))  # outside the body
    spine_row = 0.62 * patient.body[0] / 0.7 + 256  # the vertebral body's centre (marrow ~250, cortex 700 HU)
    with pytest.raises(DataError, match="in bone"):
        segment_nodule(hu, SP, (12, spine_row + 13 / 0.7, 256))  # on the cortex


def test_nodule_sample_matches_the_voi_importers_cut(phantom_ct):
    _, cases = phantom_ct
    spec, hu, _, seed = cases[2]
    mask = segment_nodule(hu, SP, seed).mask
    s = nodule_sample(hu, SP, mask)
    areas = mask.sum(axis=(1, 2))
    z = s.meta["slice_index"]
    assert areas[z] == areas.max()
    assert s.array.shape[0] == 3 and s.array.dtype == np.int16 and min(s.array.shape[1:]) >= 44
    r0, c0 = s.meta["crop_r0"], s.meta["crop_c0"]
    h, w = s.array.shape[1:]
    assert np.array_equal(s.array[1], hu[z, r0:r0 + h, c0:c0 + w])
    assert np.array_equal(s.array[0], hu[z - 1, r0:r0 + h, c0:c0 + w])
    assert s.mask.sum() == areas[z]  # the whole nodule section is inside the crop
    assert s.meta["mask_diameter_mm"] == pytest.approx(2 * np.sqrt(areas[z] * 0.49 / np.pi), abs=1e-3)
    assert s.meta["mask_diameter_mm"] == pytest.approx(spec.diameter_mm, rel=0.35)
    full = nodule_sample(hu, SP, mask, view="full")
    assert full.array.shape == (3, 512, 512)
    with pytest.raises(DataError, match="empty"):
        nodule_sample(hu, SP, np.zeros_like(mask))
