"""pyradiomics IBSI features: known shapes give the geometry they must, on any voxel spacing."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from ctnodule.data.radiomics import feature_names, features_2d, features_3d


def _ball(tmp_path, spacing, radius_mm=6.0, name="b"):
    """A 6 mm-radius sphere of +40 HU with noise in -800 HU lung, saved as NIfTI image + mask."""
    shape = [round(30 / s) for s in spacing]
    grid = np.meshgrid(*[(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij")
    inside = np.sqrt(sum(g**2 for g in grid)) <= radius_mm
    rng = np.random.default_rng(0)
    image = np.where(inside, 40, -800) + rng.normal(0, 20, shape)
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(image.astype(np.int16), affine), tmp_path / f"{name}-img.nii.gz")
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), tmp_path / f"{name}-mask.nii.gz")
    return tmp_path / f"{name}-img.nii.gz", tmp_path / f"{name}-mask.nii.gz"


def test_3d_features_of_a_sphere_on_isotropic_and_thick_slices(tmp_path):
    fine = features_3d(*_ball(tmp_path, (0.7, 0.7, 0.7), name="fine"))
    thick = features_3d(*_ball(tmp_path, (0.7, 0.7, 2.5), name="thick"))
    assert list(fine) == feature_names(two_d=False) and len(fine) == 107
    volume = 4 / 3 * math.pi * 6.0**3
    for f in (fine, thick):
        assert f["radiomics_shape_MeshVolume"] == pytest.approx(volume, rel=0.15)
        assert f["radiomics_shape_Sphericity"] > 0.85
        assert f["radiomics_firstorder_Median"] == pytest.approx(40, abs=15)
    # resampled to 1 mm, the thick-slice scan is described like the fine one
    assert thick["radiomics_shape_Maximum3DDiameter"] == pytest.approx(fine["radiomics_shape_Maximum3DDiameter"], rel=0.15)


def test_2d_features_of_a_disc_and_an_unusable_mask(tmp_path):
    r, c = np.mgrid[:64, :64]
    disc = np.hypot(r - 32, c - 32) <= 10  # 10 px = 7 mm radius at 0.7 mm/px
    hu = np.where(disc, 30.0, -850.0)
    got = features_2d(hu, disc, (0.7, 0.7))
    assert list(got) == feature_names(two_d=True) and len(got) == 102
    assert got["radiomics_shape2D_PixelSurface"] == pytest.approx(math.pi * 7.0**2, rel=0.1)
    assert got["radiomics_shape2D_MaximumDiameter"] == pytest.approx(14.0, rel=0.1)
    assert features_2d(hu, np.zeros_like(disc), (0.7, 0.7)) == {}


def test_a_two_slice_voi_gives_the_same_plausible_features_every_time(tmp_path):
    # many real VOIs are 2 slices thick: B-spline resampling turned them into garbage intensities
    rng = np.random.default_rng(0)
    r, c = np.mgrid[:44, :44]
    disc = np.hypot(r - 22, c - 22) <= 7
    image = np.where(disc, 20, -800)[:, :, None] + rng.normal(0, 30, (44, 44, 2))
    affine = np.diag([0.65, 0.65, 2.0, 1.0])
    nib.save(nib.Nifti1Image(image.astype(np.int16), affine), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(np.repeat(disc[:, :, None], 2, axis=2).astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    first = features_3d(tmp_path / "img.nii.gz", tmp_path / "mask.nii.gz")
    assert len(first) == 107 and first == features_3d(tmp_path / "img.nii.gz", tmp_path / "mask.nii.gz")
    assert image.min() <= first["radiomics_firstorder_Minimum"] <= first["radiomics_firstorder_Maximum"] <= image.max()
