"""`ctnodule import composite`: nodules placed into full slices inside the lungs, off annotated nodules, at
scale, reproducibly, with bad input refused or reported. Phantom data throughout; one test on the real LIDC
data (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nrrd
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from ctnodule.data.backgrounds import Background, load_backgrounds
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.importers.base import REPORT, Skips
from ctnodule.data.io import read_nrrd
from ctnodule.data.manifest import synthetic_info
from ctnodule.data.splits import patient_kfold
from ctnodule.data.writer import open_dataset
from ctnodule.errors import DataError
from ctnodule.pages import synthetic_banner
from ctnodule.preprocess.composite import (
    CompositeConfig,
    Site,
    choose_site,
    import_composite,
    make_graft,
    place,
    prepare_sites,
    sample_rng,
)
from ctnodule.preprocess.lungmask import lung_mask_array


@pytest.fixture(scope="module")
def composite(phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("composite") / "data"
    import_composite(out, nodules=phantom, full=phantom, seed=3, progress=False)
    return out


def _sites(full: Path):
    cfg = CompositeConfig()
    return {s.bg.name: s for s in prepare_sites(load_backgrounds(full), cfg, Skips())}, cfg


def test_every_nodule_sits_inside_the_lungs_and_off_annotated_nodules(composite: Path, phantom: Path):
    sites, cfg = _sites(phantom)
    ds = SliceDataset(composite)
    assert len(ds) == (SliceDataset(phantom).frame["view"] == "nodule").sum()  # every phantom nodule placed
    for i in range(len(ds)):
        s = ds[i]
        site = sites[s.meta["bg_name"]]
        mask = s.mask.astype(bool)
        px = min(site.bg.spacing)
        footprint = ndi.binary_dilation(mask, np.ones((3, 3)), iterations=math.ceil(cfg.margin_mm / px))
        assert site.lung[footprint].all(), s.meta["sample_id"]
        near = ndi.distance_transform_edt(~site.bg.avoid, sampling=site.bg.spacing) < cfg.avoid_mm
        assert not (footprint & near).any(), s.meta["sample_id"]
        # the background keeps its own pixels outside the footprint, its annotated nodule included
        stack = ds.context(i)
        assert np.array_equal(stack[:, ~footprint], site.bg.context[:, ~footprint])
        assert s.meta["patient_id"] == s.meta["nodule_patient_id"] and s.meta["source"] == "composite"


def _lungs_around_a_mediastinum() -> tuple[Background, np.ndarray, np.ndarray]:
    """A body (40 HU) whose lung (-850 HU) is one ring around a 30 mm soft-tissue mediastinum holding a 12 mm
    trachea (-1000 HU): the lung mask fills the ring's hole (as where the two lungs touch at the anterior
    junction), so it covers the mediastinum and the trachea."""
    spacing = (0.7, 0.7)
    yy, xx = (np.mgrid[:512, :512] - 255.5) * 0.7
    rr = np.hypot(yy, xx)
    hu = np.full((512, 512), -1000.0)
    hu[np.hypot(yy / 1.3, xx) < 130] = 40.0
    hu[(rr >= 15) & (rr < 80)] = -850.0
    hu += np.random.default_rng(0).normal(0, 10, hu.shape)
    hu[rr < 6] = -1000.0
    bg = Background("M z=0", "M", "", 0.0, 0, spacing, 1.0, hu.astype(np.int16)[None], np.zeros(hu.shape, bool))
    return bg, rr < 15, rr < 6


def test_placement_stays_in_aerated_lung_when_the_lung_mask_covers_the_mediastinum():
    """LIDC-IDRI-0002's slices z -129.5..-107 had nodules pasted into the mediastinum: the lung mask held it.
    Every position drawn must keep the footprint `clearance_mm` off the soft tissue and out of the trachea."""
    bg, mediastinum, trachea = _lungs_around_a_mediastinum()
    cfg = CompositeConfig()
    lung = lung_mask_array(bg.hu, bg.spacing).astype(bool)
    assert lung[mediastinum].all()  # the trap: the lung mask itself includes the soft tissue
    (site,) = prepare_sites([bg], cfg, Skips())
    assert site.lung[mediastinum].mean() < 0.01 and not site.lung[trachea].any()  # (a few rim pixels stay)
    outside_mm = ndi.distance_transform_edt(~mediastinum, sampling=bg.spacing)
    for radius in (3.5, 6.0, 10.0):
        for k in range(40):
            _, r, c = choose_site([site], radius, sample_rng(k, "n"))
            assert outside_mm[r, c] >= radius + cfg.clearance_mm - 0.01, (radius, r, c)


def test_real_lidc_0002_placement_region_is_aerated(lidc_src: Path):
    """On the real slices where LIDC-IDRI-0002's lungs touch (z -129.5..-107: one lung component, 14-16 % of
    the lung mask soft tissue), the placement region is aerated lung like on its other slices (< 5 % above
    -300 HU, vessels)."""
    backgrounds = [b for b in load_backgrounds(lidc_src / "LIDC-IDRI-0002") if -130 <= b.slice_z <= -107]
    assert len(backgrounds) >= 10
    for site in prepare_sites(backgrounds, CompositeConfig(), Skips()):
        soft = (site.bg.hu > -300)[site.lung].mean()
        assert soft < 0.05, (site.bg.name, soft)


def test_scale_is_kept_when_the_spacing_differs():
    """A 10 mm disc on a 0.5 mm grid is 10 mm on a 0.8 mm grid (and 16 px instead of 20 across)."""
    yy, xx = np.mgrid[:60, :60]
    disc = (yy - 30) ** 2 + (xx - 30) ** 2 <= 10.0**2  # radius 10 px x 0.5 mm = 5 mm
    planes = np.where(disc, 30, -850)[None].astype(np.int16)
    graft = make_graft(planes, disc, (0.5, 0.5), (0.8, 0.8), CompositeConfig())
    diameter = 2 * math.sqrt(graft.mask.sum() * 0.8 * 0.8 / math.pi)
    assert abs(diameter - 10.0) < 0.4
    rows = np.nonzero(graft.mask.any(axis=1))[0]
    assert abs((rows.max() - rows.min() + 1) * 0.8 - 10.0) <= 0.8


def test_blend_matches_the_parenchyma_and_keeps_the_nodule_hu():
    """A solid 40 HU nodule in -800 HU lung goes into -900 HU lung: the nodule stays 40 HU, its surrounding
    parenchyma becomes -900 HU, and beyond the margin the background is untouched (no halo)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 6**2
    nodule = np.where(disc, 40, -800).astype(np.int16)[None]
    hu = (-900 + rng.normal(0, 5, (200, 200))).astype(np.int16)
    bg = Background("B z=0", "B", "", 0.0, 0, (0.7, 0.7), 1.0, hu[None], np.zeros(hu.shape, bool))
    site = Site(bg, np.ones(hu.shape, bool), np.full(hu.shape, 50.0, np.float32))
    cfg = CompositeConfig()
    graft = make_graft(nodule, disc, (0.7, 0.7), (0.7, 0.7), cfg)
    stack, mask, numbers = place(site, graft, 100, 100)
    out = stack[0].astype(float)
    assert abs(np.median(out[mask.astype(bool)]) - 40) <= 1
    assert numbers["level_shift_hu"] == pytest.approx(-100, abs=3)
    dist = ndi.distance_transform_edt(~mask.astype(bool)) * 0.7
    ring = (dist > 1.0) & (dist < cfg.margin_mm)
    assert abs(np.median(out[ring]) + 900) < 10
    assert np.array_equal(stack[0][dist > cfg.margin_mm + 1], hu[dist > cfg.margin_mm + 1])


def test_composite_areas_match_the_nodules(composite: Path):
    frame = pd.read_csv(composite / "manifest.csv")
    ratio = frame["mask_area_mm2"] / frame["nodule_mask_area_mm2"]
    assert ratio.between(0.85, 1.15).all(), ratio.describe()


def test_same_seed_same_composite_other_seed_other_place(phantom: Path, composite: Path, tmp_path: Path):
    """Draws depend on (seed, sample), not on the order or the subset: a 12-nodule import repeats the first 12
    composites of the full one exactly."""
    again = tmp_path / "again"
    import_composite(again, nodules=phantom, full=phantom, seed=3, limit=12, progress=False)
    a, b = pd.read_csv(composite / "manifest.csv").head(12), pd.read_csv(again / "manifest.csv")
    pd.testing.assert_frame_equal(a, b)
    for rel in a["context_path"]:
        assert np.array_equal(read_nrrd(composite / rel)[0], read_nrrd(again / rel)[0])
    other = tmp_path / "other"
    import_composite(other, nodules=phantom, full=phantom, seed=4, limit=12, progress=False)
    c = pd.read_csv(other / "manifest.csv")
    moved = (a[["bg_name", "centre_r", "centre_c"]] != c[["bg_name", "centre_r", "centre_c"]]).any(axis=1)
    assert moved.mean() > 0.8


@pytest.mark.parametrize("patient_column", ["nodule_patient_id", "bg_patient_id"])
def test_folds_group_by_the_nodule_patient(composite: Path, patient_column: str):
    """Even a manifest whose patient_id names the background's patient is split by the nodule's."""
    frame = pd.read_csv(composite / "manifest.csv", dtype={"patient_id": str})
    frame["patient_id"] = frame[patient_column]
    seen: dict[str, int] = {}
    for k, (_, val) in enumerate(patient_kfold(frame, "binary", folds=3, seed=0)):
        for p in frame["nodule_patient_id"].iloc[val]:
            assert seen.setdefault(p, k) == k, f"nodule patient {p} in folds {seen[p]} and {k}"


def test_report_and_banner(composite: Path):
    report = json.loads((composite / REPORT).read_text())
    seam = report["details"]["seam_grad_hu_per_mm"]
    assert seam["composite"]["n"] == report["n_samples"] and seam["real_nodule_surroundings"]["n"] > 0
    assert sum(report["details"]["histogram_nodule_and_margin"]["after"]) > 0
    assert (composite / "report.html").is_file() and (composite / "figures" / "gallery.png").is_file()
    frame = pd.read_csv(composite / "manifest.csv")
    # phantom nodules in phantom slices stay synthetic; real ones get the composite banner
    assert synthetic_banner(synthetic_info(frame)).startswith("SYNTHETIC DATA")
    frame["synthetic"] = 0
    assert synthetic_banner(synthetic_info(frame)).startswith("COMPOSITE DATA (lesion insertion)")


def _one_nodule_dataset(out: Path, phantom: Path, *, grow: int = 0, drop_spacing: bool = False) -> Path:
    """The first phantom nodule crop, its mask grown by `grow` px of padding (a huge nodule), optionally
    with the spacing removed from its NRRD header."""
    ds = SliceDataset(phantom).view("nodule")
    s = ds[0]
    img, mask = s.array, s.mask
    if grow:
        img = np.pad(img, grow, constant_values=20)
        mask = np.pad(np.ones_like(mask), grow, constant_values=1)
        mask[:3], mask[-3:], mask[:, :3], mask[:, -3:] = 0, 0, 0, 0
    with open_dataset(out) as w:
        w.add(img, s.spacing, sample_id="X_N1_nodule", patient_id="X", nodule_id=1, view="nodule",
              malignancy=3, source="synthetic", mask=mask, synthetic=1)
        w.add(s.array, s.spacing, sample_id="Y_N1_nodule", patient_id="Y", nodule_id=1, view="nodule",
              malignancy=3, source="synthetic", mask=s.mask, synthetic=1)
    if drop_spacing:
        array, _ = read_nrrd(out / "slices" / "X_N1_nodule.nrrd")
        nrrd.write(str(out / "slices" / "X_N1_nodule.nrrd"), array, {}, index_order="C")
        array, _ = read_nrrd(out / "masks" / "X_N1_nodule.nrrd")
        nrrd.write(str(out / "masks" / "X_N1_nodule.nrrd"), array, {}, index_order="C")
    return out


@pytest.mark.parametrize("case, reason", [("huge", "too large for every lung region"),
                                          ("no-spacing", "no pixel spacing")])
def test_unplaceable_nodules_are_skipped_and_reported(phantom: Path, tmp_path: Path, case: str, reason: str):
    src = _one_nodule_dataset(tmp_path / "nodules", phantom, grow=250 if case == "huge" else 0,
                              drop_spacing=case == "no-spacing")
    report = import_composite(tmp_path / "out", nodules=src, full=phantom, progress=False)
    assert report.n_samples == 1
    skipped = [s for s in report.skipped if s["item"] == "X_N1_nodule"]
    assert len(skipped) == 1 and reason in skipped[0]["reason"], report.skipped
    assert json.loads((tmp_path / "out" / REPORT).read_text())["skipped"] == report.skipped


def _full_dataset(out: Path, phantom: Path, lungless: int) -> Path:
    """`lungless` full slices of soft tissue only, plus (lungless == 1) one real phantom slice."""
    ds = SliceDataset(phantom).view("full")
    with open_dataset(out) as w:
        for n in range(lungless):
            tissue = np.full((256, 256), 40, np.int16)
            tissue[:20], tissue[-20:] = -1000, -1000
            w.add(tissue, (0.7, 0.7), sample_id=f"T{n}_N1_full", patient_id=f"T{n}", nodule_id=1, view="full",
                  malignancy=2, source="synthetic", slice_z=0.0, synthetic=1)
        if lungless == 1:
            s = ds[0]
            w.add(s.array, s.spacing, sample_id="P_N1_full", patient_id="P", nodule_id=1, view="full",
                  malignancy=2, source="synthetic", mask=s.mask, slice_z=0.0, synthetic=1)
    return out


def test_a_slice_without_lungs_is_reported_and_never_used(phantom: Path, tmp_path: Path):
    full = _full_dataset(tmp_path / "full", phantom, lungless=1)
    report = import_composite(tmp_path / "out", nodules=phantom, full=full, limit=4, progress=False)
    assert any(s["item"] == "background T0 z=0.0" and "lung area" in s["reason"] for s in report.skipped)
    assert set(pd.read_csv(tmp_path / "out" / "manifest.csv")["bg_patient_id"]) == {"P"}


def test_no_background_with_lungs_is_an_error_and_writes_nothing(phantom: Path, tmp_path: Path):
    full = _full_dataset(tmp_path / "full", phantom, lungless=2)
    with pytest.raises(DataError, match="no background slice shows enough lung"):
        import_composite(tmp_path / "out", nodules=phantom, full=full, progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["full"]  # no temporary folder left behind


def test_real_nodules_in_the_real_lidc_slices(voi_src: Path, lidc_src: Path, tmp_path: Path):
    """Five real VOI nodules into the 4 real LIDC-IDRI patients' slices: all placed, in the lungs, off the
    readers' nodules, at scale, with a seam inside the real nodules' range."""
    from ctnodule.data.importers import import_voi

    backgrounds = load_backgrounds(lidc_src)
    assert len(backgrounds) == 246 and {b.patient_id for b in backgrounds} == {
        "LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003", "LIDC-IDRI-0132"}
    assert sum(b.avoid[b.avoid.shape[0] // 2].any() or b.avoid.any() for b in backgrounds) >= 20
    voi = tmp_path / "voi"
    import_voi(voi, src=voi_src, limit=5, readers=False, progress=False)
    out = tmp_path / "composite"
    report = import_composite(out, nodules=voi, full=lidc_src, progress=False)
    assert report.n_samples == 5
    frame = pd.read_csv(out / "manifest.csv")
    assert frame["mask_area_mm2"].div(frame["nodule_mask_area_mm2"]).between(0.85, 1.15).all()
    seam = report.details["seam_grad_hu_per_mm"]
    assert seam["composite"]["median"] < 1.5 * seam["real_nodule_surroundings"]["p97.5"]
    sites = {s.bg.name: s for s in prepare_sites(backgrounds, CompositeConfig(), Skips())}
    for row in frame.itertuples():
        mask = read_nrrd(out / row.mask_path)[0].astype(bool)
        site = sites[row.bg_name]
        assert site.lung[mask].all() and not (mask & site.bg.avoid).any()


def test_cli_refuses_a_dataset_without_nodule_views_in_one_line(phantom: Path, tmp_path: Path, capsys):
    from ctnodule.cli import main

    full_only = tmp_path / "full-only"
    ds = SliceDataset(phantom).view("full")
    with open_dataset(full_only) as w:
        s = ds[0]
        w.add(s.array, s.spacing, sample_id="A_N1_full", patient_id="A", nodule_id=1, view="full", malignancy=2,
              source="synthetic", mask=s.mask, synthetic=1)
    with pytest.raises(SystemExit) as exc:
        main(["import", "composite", str(full_only), str(phantom), str(tmp_path / "out")])
    assert exc.value.code == 3
    err = capsys.readouterr().err.strip()
    assert "no `nodule` samples to place" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
