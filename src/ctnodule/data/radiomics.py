"""IBSI radiomics features of a nodule (pyradiomics): the standard a radiomics researcher would compare to.

pyradiomics' default feature classes on the original image — shape, first order, GLCM, GLRLM, GLSZM,
GLDM, NGTDM: 107 features in 3D — with its default fixed bin width of 25 HU, after resampling to 1 mm
isotropic voxels as IBSI recommends, so VOIs cut from scans of different slice thickness are described on
one grid. The image is resampled with linear interpolation (IBSI's reference choice), not pyradiomics'
default B-spline: many VOIs are only 2 slices thick, and B-spline on 2 slices returned garbage (overflowing
bin ranges, different on every run); the mask with nearest neighbour.

- `features_3d(image_path, mask_path)`: the whole VOI (NIfTI image + mask); the VOI importer stores them as
  manifest columns `radiomics_<class>_<feature>` (`ctnodule import voi --radiomics`).
- `features_2d(hu, mask, spacing)`: one slice (a dataset row has no 3D volume), resampled in-plane to
  1 mm, 2D shape instead of 3D shape (`--tabular radiomics2d`, computed at train and predict time).
A mask pyradiomics cannot use (empty, or a single voxel after resampling) gives NaN features.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ctnodule.errors import DataError

PREFIX = "radiomics_"
CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
BIN_WIDTH = 25.0
SPACING_MM = 1.0


def feature_names(two_d: bool) -> list[str]:
    """The column names `features_3d` (107) or `features_2d` (102) return, in pyradiomics' order."""
    import radiomics

    classes = radiomics.getFeatureClasses()
    return [f"{PREFIX}{c}_{name}" for c in ("shape2D" if two_d else "shape", *CLASSES)
            for name, deprecated in classes[c].getFeatureNames().items() if not deprecated]


def _extractor(two_d: bool):
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)  # its INFO lines otherwise reach the root logger
    spacing = [SPACING_MM, SPACING_MM, 0] if two_d else [SPACING_MM] * 3
    ext = featureextractor.RadiomicsFeatureExtractor(
        binWidth=BIN_WIDTH, resampledPixelSpacing=spacing, interpolator="sitkLinear", force2D=two_d,
        force2Ddimension=0, label=1, geometryTolerance=1e-3)
    ext.disableAllImageTypes()
    ext.enableImageTypeByName("Original")
    ext.disableAllFeatures()
    for name in ("shape2D" if two_d else "shape", *CLASSES):
        ext.enableFeatureClassByName(name)
    return ext


_EXTRACTORS: dict[bool, object] = {}


def _execute(image, mask, two_d: bool) -> dict[str, float]:
    if two_d not in _EXTRACTORS:
        _EXTRACTORS[two_d] = _extractor(two_d)
    try:
        result = _EXTRACTORS[two_d].execute(image, mask)
    except (ValueError, RuntimeError) as exc:  # empty / one-voxel mask after resampling
        return {"error": str(exc)}
    return {PREFIX + k[len("original_"):]: float(v) for k, v in result.items() if k.startswith("original_")}


def features_3d(image_path: str | Path, mask_path: str | Path) -> dict[str, float]:
    """{radiomics_<class>_<feature>: value} of a NIfTI VOI and its 0/1 mask (107 keys; {} on failure)."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(image_path), sitk.sitkFloat32)
        mask = sitk.ReadImage(str(mask_path), sitk.sitkUInt8)
    except RuntimeError as exc:
        raise DataError(f"unreadable NIfTI ({exc})", image_path) from exc
    mask.CopyInformation(image)
    out = _execute(image, mask, two_d=False)
    return {} if "error" in out else out


def features_2d(hu: np.ndarray, mask: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    """The 2D features of one slice (rows, cols) with pixel `spacing` (row_mm, col_mm); {} on failure."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(hu, np.float32)[None])  # (z=1, y=rows, x=cols)
    image.SetSpacing((float(spacing[1]), float(spacing[0]), 1.0))
    label = sitk.GetImageFromArray((np.asarray(mask) > 0).astype(np.uint8)[None])
    label.CopyInformation(image)
    out = _execute(image, label, two_d=True)
    return {} if "error" in out else out
