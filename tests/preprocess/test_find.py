"""preprocess/find.py: the nodule is found on full phantom slices without their mask or position (a faint
ground-glass one among the ground-glass candidates), and a slice without lungs or without any candidate is a
reported error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage as ndi

from ctnodule.data import phantom
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.preprocess.find import (
    FEATURES,
    FOUND_KEY,
    NoduleFinder,
    candidates,
    find_nodule,
    survey,
    truth_sample,
    without_truth,
)
from ctnodule.preprocess.inputs import load_slices
from ctnodule.preprocess.lungmask import lung_mask_array


@pytest.fixture(scope="module")
def full_slices(phantom) -> list[Slice]:
    return load_slices(SliceDataset(phantom).view("full"), "context")


def _blind(s: Slice) -> Slice:
    """`s` with its mask and every manifest column about the nodule's place or size removed."""
    return s.replace(mask=None, meta=without_truth(s.meta))


def test_finds_the_nodule_on_most_phantom_slices_without_mask_or_position(full_slices):
    found = NoduleFinder().try_each([_blind(s) for s in full_slices])
    hits = []
    for s, f in zip(full_slices, found):
        assert not isinstance(f, str), f
        mask = np.asarray(s.mask).astype(bool)
        dist = ndi.distance_transform_edt(~mask, sampling=s.spacing)[f.meta["found_r"], f.meta["found_c"]]
        hits.append(dist <= 3.0)
    # measured 0.36 on this phantom (its ribs run inside the lung ellipses and its vessels are bright):
    # far above chance (a nodule covers ~0.3 % of the lungs), and the test fails if detection breaks
    assert np.mean(hits) >= 0.3


def test_found_sample_is_a_nodule_crop_with_the_found_geometry(full_slices):
    s = next(s for s in full_slices if s.meta.get("mask_diameter_mm", 0) > 15)
    f = find_nodule(_blind(s))
    assert f.array.shape[0] == 3 and f.array.shape[1] < s.array.shape[1]
    assert f.mask is not None and f.mask.any() and f.meta["view"] == "nodule"
    assert FOUND_KEY in f.meta and f.meta["mask_diameter_mm"] > 3.0
    r0, c0 = f.meta["found_crop_r0"], f.meta["found_crop_c0"]
    np.testing.assert_array_equal(f.array[1], s.array[1, r0:r0 + f.array.shape[1], c0:c0 + f.array.shape[2]])


def test_same_result_with_or_without_the_manifest_mask(full_slices):
    s = full_slices[0]
    a, b = find_nodule(s), find_nodule(_blind(s))
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.meta["mask_diameter_mm"] == b.meta["mask_diameter_mm"]


def test_truth_sample_is_cut_around_the_true_mask(full_slices):
    s = full_slices[0]
    t = truth_sample(s)
    assert t.mask.sum() == np.asarray(s.mask).astype(bool).sum()
    with pytest.raises(DataError, match="no nodule mask"):
        truth_sample(_blind(s))


def test_slice_without_lungs_is_refused():
    body = np.full((3, 128, 128), -1000, np.int16)
    body[:, 20:108, 20:108] = 40  # soft tissue, no lung
    with pytest.raises(DataError, match="no lungs"):
        find_nodule(Slice(body, (0.7, 0.7), {"sample_id": "tissue"}))


def test_lungs_without_any_nodule_report_none_found():
    img = np.full((3, 200, 200), -1000, np.int16)
    img[:, 10:190, 10:190] = 40
    img[:, 40:160, 30:95] = -850  # two empty lungs
    img[:, 40:160, 105:170] = -850
    with pytest.raises(DataError, match="empty-lungs.*no nodule"):
        NoduleFinder()([Slice(img, (1.0, 1.0), {"sample_id": "empty-lungs"})])
    assert "no nodule" in NoduleFinder().try_each([Slice(img, (1.0, 1.0), {"sample_id": "x"})])[0]


def _ground_glass_phantom(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A phantom patient's 2.5D stack (3 planes 2 mm apart, 0.7 mm pixels) through a pure ground-glass
    nodule (-720 HU, 12 mm, round) in open lung, and the nodule's mask on the centre plane."""
    rng = np.random.default_rng(seed)
    patient = phantom.PhantomPatient(rng, 0.7, [])
    spec = phantom.draw_nodule(rng, 3, (0.0, 0.0, 100.0))
    centre = phantom.place_nodules(np.random.default_rng(seed + 100), patient, [3])[0].centre
    patient.nodules = [dataclasses.replace(spec, centre=centre, density=-720.0, radius=6.0, radius_z=6.0, lobes=(),
                                           spicules=(), halo=0.0)]
    hu, labels = phantom.render_volume(patient, centre[2] - 2.0, 3, 2.0)
    return hu, labels[1] == 1


def _first_inside(found, mask: np.ndarray) -> int | None:
    return next((k for k, c in enumerate(found) if mask[c.r, c.c]), None)


def test_a_faint_ground_glass_nodule_is_among_the_candidates_by_the_ground_glass_source():
    solid_only, both = [], []
    for seed in range(4):
        hu, mask = _ground_glass_phantom(seed)
        lung = lung_mask_array(hu[1], (0.7, 0.7)).astype(bool)
        solid_only.append(_first_inside(candidates(hu, (0.7, 0.7), lung, max_candidates=15, n_ground_glass=0), mask))
        found = candidates(hu, (0.7, 0.7), lung, max_candidates=15, n_ground_glass=10)
        k = _first_inside(found, mask)
        both.append(k)
        sources = [c.source for c in found]
        assert sources == sorted(sources, key=lambda x: x != "solid") and sources.count("solid") <= 15
        assert sources.count("ground_glass") <= 10
    # measured: the solid window's 15 best hold it on 1 of these 4 patients (the vessels' cross-sections are
    # stronger there), with the ground-glass candidates on all 4
    assert all(k is not None for k in both), both
    assert sum(k is not None for k in solid_only) <= 2, solid_only


def test_a_ground_glass_candidate_segments_as_a_nodule():
    hu, mask = _ground_glass_phantom(0)
    probes = survey(Slice(hu, (0.7, 0.7), {"sample_id": "ggo", "slice_thickness": 2.0}))
    on = [p for p in probes if p.inside(mask)]
    assert on and on[0].cand.source == "ground_glass"
    assert on[0].mask is not None  # the seed-point segmentation takes a -720 HU nodule, 12 mm across
    assert on[0].features[FEATURES.index("diameter_mm")] > 8.0



def test_a_finder_saved_before_the_ground_glass_source_keeps_its_solid_candidates_only():
    params = NoduleFinder(top=3).get_params()
    assert NoduleFinder.from_params(params) == NoduleFinder(top=3)  # what a checkpoint stores comes back
    del params["n_ground_glass"]  # a checkpoint written before the ground-glass candidates existed
    assert NoduleFinder.from_params(params).n_ground_glass == 0
