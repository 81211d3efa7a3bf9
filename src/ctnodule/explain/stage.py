"""`explain_run(run_dir, data, out)`: heat maps of a trained run on a slice dataset, a PNG per sample,
`localization.json` (how much of each map falls on the nodule, and whether it is faithful: occlusion and
the deletion test on the first `faithfulness` samples), `attributions.csv` + `waterfalls/` (why each
nodule got its answer, scikit-learn heads) and `report.html` (the gallery).

The output folder appears only when complete (written in a temporary sibling, then renamed), and an
existing one is replaced only with `force`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ctnodule.atomic import atomic_dir, final_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import synthetic_info
from ctnodule.errors import ConfigError, CTNoduleError, DataError
from ctnodule.explain.core import (
    CHUNK,
    explain_batch,
    gallery_tile,
    safe_name,
    sample_png,
    score,
    summarise,
    write_json,
)
from ctnodule.explain.faithfulness import deletion_summary
from ctnodule.explain.gallery import write_report
from ctnodule.explain.gradcam import CamExplainer
from ctnodule.explain.localization import cam_mass_in_mask
from ctnodule.explain.overlay import write_png
from ctnodule.explain.why import attribution_outputs, faithfulness_curves
from ctnodule.models.attribution import to_frame
from ctnodule.pages import shown_path
from ctnodule.runfolder import RunPaths

#: a map with fewer cells a side than this cannot point at a nodule inside the image; say so
COARSE = 4


def select_samples(labels: np.ndarray, n: int | None, seed: int = 0) -> np.ndarray:
    """Positions of the samples to explain: all, or `n` drawn class by class in turn (seeded), so every
    class appears in the gallery even when one dominates; returned in dataset order."""
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < n:
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(int(pool.pop()))
    return np.sort(np.asarray(picked))


def explain_run(run_dir: str | Path, data: str | Path | SliceDataset, out: str | Path, method: str = "gradcam",
                n: int | None = None, layer: str | None = None, target: int | None = None,
                tolerance: float = 0.0, seed: int = 0, force: bool = False, faithfulness: int = 40,
                log: Callable[[str], None] = print, device: str = "cpu", index: Path | None = None) -> Path:
    """Explain run `run_dir` on dataset `data` (its samples of the run's view) into folder `out`.
    The page links back to `index` (the `ctnodule run` index) when given, and to the run's model card."""
    from tqdm import tqdm

    from ctnodule.predict.run import load_run
    from ctnodule.preprocess.inputs import load_slices
    from ctnodule.runtime import check_device

    check_device(device)

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:  # fail before minutes of work, not after
        raise CTNoduleError(f"{out}: output folder exists and is not empty; pass --force to replace it")
    predictor = load_run(run_dir)
    predictor.device = device
    dataset = data if isinstance(data, SliceDataset) else SliceDataset(data)
    dataset = dataset.view(predictor.view)
    if len(dataset) == 0:
        raise DataError(f"the dataset has no {predictor.view!r}-view samples, the view this run was trained "
                        "on; import that view or explain a run of the other view", dataset.root)
    names = predictor.class_names or [str(i) for i in range(predictor.config.get("n_classes", 2))]
    if target is not None and not 0 <= target < len(names):
        raise ConfigError(f"--target {target} is not a class of this run (0..{len(names) - 1}: {names})")
    labels = dataset.labels(predictor.task)
    chosen = select_samples(labels, n, seed)
    dataset = dataset.subset(chosen)
    labels = labels[chosen]
    slices = load_slices(dataset, predictor.config.get("channels", "grey"))
    log(f"explaining {len(slices)} {predictor.view} samples of {dataset.root} with {method}")
    records: list[dict[str, Any]] = []
    tiles: dict[str, np.ndarray] = {}
    curves: list[dict[str, np.ndarray]] = []
    with atomic_dir(out, force=force) as tmp, CamExplainer(predictor.model, method, layer) as cam:
        bar = tqdm(total=len(slices), desc=f"explain ({method})", unit="slice")
        for start in range(0, len(slices), CHUNK):
            chunk = slices[start:start + CHUNK]
            explained = explain_batch(predictor, chunk, cam, target)
            checked = max(0, min(len(chunk), faithfulness - start))
            new_curves, occlusions = faithfulness_curves(predictor, chunk[:checked], [e.cam for e in explained],
                                                         [e.target for e in explained], method, seed + start)
            curves += new_curves
            for k, e in enumerate(explained):
                meta = chunk[k].meta
                sid = str(meta.get("sample_id", start + k))
                png = Path("samples") / f"{safe_name(sid)}.png"
                pred = int(np.argmax(e.probs))
                rec = {
                    "sample_id": sid, "patient_id": str(meta.get("patient_id", "")),
                    "true": int(labels[start + k]), "pred": pred, "prob": float(e.probs[pred]),
                    "probs": [float(p) for p in e.probs], "explained_class": e.target,
                    "region": e.region_source, **score(e, tolerance), "png": png.as_posix(),
                }
                if k < checked:
                    rec.update(_faithful(new_curves[k], occlusions[k], e, method))
                records.append(rec)
                write_png(tmp / png, sample_png(e, _caption(rec, names)))
                tiles[sid] = gallery_tile(e)
            bar.update(len(chunk))
        bar.close()
        grid = list(cam.grid_) if cam.grid_ else None
        finer = _finer_layer(predictor, slices) if grid and min(grid) < COARSE and layer is None else None
        generated = synthetic_info(dataset.frame)
        summary = {
            "method": method, "layers": cam.layers_ or [], "grid": grid, "finer_layer": finer,
            "run": str(final_path(run_dir)), "data": str(final_path(dataset.root)),
            "view": predictor.view, "task": predictor.task, "class_names": names,
            "target": "predicted class" if target is None else names[target],
            "synthetic": generated is not None, "data_synthetic": generated,
            **summarise(records, tolerance),
            "faithfulness": deletion_summary(curves, seed=seed),
        }
        attr = None
        if predictor.has_sklearn_head:
            ids = [r["sample_id"] for r in records]
            attr, words, pngs = attribution_outputs(predictor, slices, ids, tmp)
            table = to_frame(attr)
            table.insert(0, "sample_id", ids)
            table.insert(1, "reasons", words)
            table.to_csv(tmp / "attributions.csv", index=False)
            for rec, w, png in zip(records, words, pngs):
                rec.update(reasons=w, waterfall=png)
            summary["attribution"] = {"method": attr.method, "space": attr.space,
                                      "mean_abs": dict(zip(attr.names, np.abs(attr.values).mean(0).tolist()))}
        write_json(tmp / "localization.json", {**summary, "per_sample": records})
        nav = [("index", index)] if index else []
        if RunPaths(Path(run_dir)).report.is_file():
            nav.append(("model card of the explained run", RunPaths(Path(run_dir)).report))
        write_report(tmp / "report.html", summary, records, tiles, names, attr, nav=nav,
                     run=shown_path(run_dir, tmp), data=shown_path(dataset.root, tmp))
    return out


def _faithful(curves: dict[str, np.ndarray], occlusion: np.ndarray, e: Any, method: str) -> dict[str, Any]:
    """Per-sample faithfulness numbers: area between the random and each method's deletion curve, and the
    occlusion map's heat share on the nodule (comparable with the CAM's `cam_in_mask`)."""
    mass = cam_mass_in_mask(occlusion, e.region) if e.region is not None else float("nan")
    return {f"deletion_area_{method}": float(np.mean(curves["random"] - curves[method])),
            "deletion_area_occlusion": float(np.mean(curves["random"] - curves["occlusion"])),
            "occlusion_in_mask": float(mass) if np.isfinite(mass) else None}


def _finer_layer(predictor: Any, slices: list) -> str | None:
    """The last layer whose map has >= COARSE cells a side, to suggest when the default one is coarser."""
    from torch import nn

    from ctnodule.explain.gradcam import find_target_layer

    model = predictor.model
    members = getattr(model, "members", None)
    net = members[0] if isinstance(members, nn.ModuleList) and len(members) else model
    try:
        return find_target_layer(net, predictor.prepare(slices[:2]), min_side=COARSE)
    except CTNoduleError:
        return None


def _caption(rec: dict[str, Any], names: list[str]) -> str:
    mass = "no outline" if rec["cam_in_mask"] is None else f"heat on nodule {rec['cam_in_mask']:.2f}"
    hit = "" if rec["pointing_game"] is None else (", max on nodule" if rec["pointing_game"] else ", max off nodule")
    return (f"{rec['sample_id']}  true {names[rec['true']]}  pred {names[rec['pred']]} ({rec['prob']:.2f})  "
            f"{mass}{hit}")
