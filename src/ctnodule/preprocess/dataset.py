"""`preprocess_dataset`: a slice dataset in, a processed slice dataset out (same manifest format).

Per view present in the input, a `Pipeline` is built (the given config or the view's default), fitted
on the training samples (`fit_on`; default all, which the report says plainly), and applied to every
sample, its 2.5D context stack and its nodule mask. Kept samples are written as float32 NRRD; the
output folder also holds `pipeline.yaml` (every view's fitted pipeline, with hashes), `dropped.csv`
(sample_id, view, laplacian_variance, reason) and `report.html`. The output is cached: when `out`
already holds the result of the same input manifest and the same configs, it is returned as is unless
`force`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ctnodule.atomic import final_path, write_text
from ctnodule.config import load_yaml
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.io import write_nrrd
from ctnodule.data.manifest import MANIFEST
from ctnodule.data.slice import Slice
from ctnodule.data.writer import open_dataset
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.base import LUNG_MASK
from ctnodule.preprocess.config import PreprocessConfig
from ctnodule.preprocess.parallel import parallel_map
from ctnodule.preprocess.pipeline import Pipeline

PIPELINE_FILE = "pipeline.yaml"
DROPPED_FILE = "dropped.csv"
CACHE_FILE = "preprocess.json"
#: manifest columns the writer fills in itself
_WRITER_COLS = {"path", "context_path", "mask_path", "label_binary", "spacing_row", "spacing_col"}

ConfigArg = PreprocessConfig | str | Path | Sequence[PreprocessConfig | str | Path] | None


def resolve_configs(config: ConfigArg, views: Iterable[str]) -> dict[str, PreprocessConfig]:
    """One config per view: given ones (objects or YAML paths) win, the view's default fills the rest."""
    given = [] if config is None else list(config) if isinstance(config, (list, tuple)) else [config]
    out: dict[str, PreprocessConfig] = {}
    for c in given:
        cfg = c if isinstance(c, PreprocessConfig) else load_yaml(PreprocessConfig, c)
        if cfg.view in out:
            raise ConfigError(f"two preprocessing configs for view {cfg.view!r}; give one per view")
        out[cfg.view] = cfg
    return {v: out.get(v) or PreprocessConfig.default(v) for v in views}


def preprocess_dataset(data: str | Path | SliceDataset, out: str | Path, config: ConfigArg = None, force: bool = False,
                       fit_on: Sequence[str] | None = None, workers: int | None = None,
                       report: bool = True, index: Path | None = None) -> Path:
    """Preprocess the slice dataset `data` (a folder, or a `SliceDataset` such as `ds.subset(...)`) into
    `out`; returns `out`.

    `config`: a `PreprocessConfig`, a YAML path, or a list of those (one per view); missing views use
    `PreprocessConfig.default(view)`. `fit_on`: the sample_ids or patient_ids of the training samples
    the learning steps (noise threshold, learned standard size) are fitted on; None = all samples.
    `index`: the page the report belongs to (the `ctnodule run` index), linked from it.
    """
    ds = data if isinstance(data, SliceDataset) else SliceDataset(data)
    views = [v for v in ("nodule", "full") if (ds.frame["view"] == v).any()]
    configs = resolve_configs(config, views)
    key = _cache_key(ds, configs, fit_on)
    out = Path(out)
    if not force and _cached(out, key):
        return out
    pipes, train_sel = {}, _fit_selection(ds, fit_on)
    for v in views:
        in_view = ds.frame["view"].to_numpy() == v
        train = ds.subset(in_view & train_sel)
        if len(train) == 0:
            raise DataError(f"fit_on selects no {v!r} samples to fit the pipeline on", ds.root / MANIFEST)
        pipes[v] = Pipeline.from_config(configs[v]).fit(train)
    with open_dataset(out, force=force) as writer:
        work = _Worker(ds, pipes, writer.folder)
        results = list(_progress(parallel_map(work, range(len(ds)), workers=workers, chunksize=8), len(ds)))
        writer.rows.extend(r["row"] for r in results if r["row"] is not None)
        if not writer.rows:
            raise DataError("every sample was dropped by the noise filter; nothing to write", ds.root)
        decisions = pd.DataFrame([r["decision"] for r in results])
        dropped = decisions[~decisions["keep"]].drop(columns="keep")
        write_text(writer.folder / DROPPED_FILE, dropped.to_csv(index=False))
        dump = {v: p.to_config().model_dump(mode="json") for v, p in pipes.items()}
        write_text(writer.folder / PIPELINE_FILE, yaml.safe_dump(dump, sort_keys=False))
        write_text(writer.folder / CACHE_FILE, json.dumps(
            {"key": key, "source": str(final_path(ds.root.resolve())), "fit_on_all": fit_on is None,
             "hashes": {v: p.hash for v, p in pipes.items()}}, indent=2))
        if report:
            from ctnodule.preprocess.report import write_report

            write_report(writer.folder, ds, pipes, decisions, writer.frame(), fit_on_all=fit_on is None,
                         index=index)
    return out


class _Worker:
    """Read, transform and write one sample (picklable: runs in worker processes)."""

    def __init__(self, ds: SliceDataset, pipes: dict[str, Pipeline], folder: Path):
        self.ds, self.pipes, self.folder = ds, pipes, folder

    def __call__(self, i: int) -> dict[str, Any]:
        s = self.ds[i]
        pipe = self.pipes[s.meta["view"]]
        out = pipe.transform(s)
        sid = str(s.meta["sample_id"])
        decision = {"sample_id": sid, "view": s.meta["view"], "keep": bool(out.meta.get("noise_keep", True)),
                    "laplacian_variance": out.meta.get("laplacian_variance", np.nan),
                    "reason": out.meta.get("noise_reason", "")}
        if not decision["keep"]:
            return {"row": None, "decision": decision}
        row = {k: v for k, v in out.meta.items() if k in self.ds.frame.columns and k not in _WRITER_COLS}
        row.update(path=f"slices/{sid}.nrrd", spacing_row=float(out.spacing[0]),
                   spacing_col=float(out.spacing[1]), label_binary=int(s.meta["malignancy"] >= 4),
                   laplacian_variance=decision["laplacian_variance"], pipeline_hash=pipe.hash)
        write_nrrd(self.folder / row["path"], out.array, out.spacing)
        if out.mask is not None:
            row["mask_path"] = f"masks/{sid}.nrrd"
            write_nrrd(self.folder / row["mask_path"], out.mask.astype(np.uint8), out.spacing)
        if out.meta.get(LUNG_MASK) is not None:
            row["lung_mask_path"] = f"lung_masks/{sid}.nrrd"
            write_nrrd(self.folder / row["lung_mask_path"], out.meta[LUNG_MASK].astype(np.uint8), out.spacing)
        context = self.ds.context(i)
        if context is not None:
            ctx_meta = dict(s.meta)
            if out.meta.get(LUNG_MASK) is not None and _same_grid(pipe, s, out):
                # the stack's centre is this slice: hand over its lung mask instead of segmenting it again
                ctx_meta[LUNG_MASK] = out.meta[LUNG_MASK]
            ctx = pipe.transform(Slice(context, s.spacing, ctx_meta, s.mask))
            row["context_path"] = f"context/{sid}.nrrd"
            write_nrrd(self.folder / row["context_path"], ctx.array, ctx.spacing)
        return {"row": row, "decision": decision}


def _same_grid(pipe: Pipeline, s: Slice, out: Slice) -> bool:
    """True when `out` lies on `s`'s pixel grid (no size step moved it), so masks carry over as they are."""
    return out.array.shape[-2:] == s.array.shape[-2:] and all(
        step.name != "size" or getattr(step, "mode", "") == "resize" for step in pipe.steps)


def read_id_list(path: str | Path) -> list[str]:
    """The ids of a `--fit-on` CSV: its `sample_id` column, else its `patient_id` column."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the --fit-on CSV ({exc})") from exc
    for col in ("sample_id", "patient_id"):
        if col in frame:
            return frame[col].dropna().tolist()
    raise ConfigError(f"{path}: needs a sample_id or patient_id column; found {list(frame.columns)}")


def _fit_selection(ds: SliceDataset, fit_on: Sequence[str] | None) -> np.ndarray:
    if fit_on is None:
        return np.ones(len(ds), dtype=bool)
    ids = {str(x) for x in fit_on}
    sel = ds.frame["sample_id"].astype(str).isin(ids) | ds.frame["patient_id"].astype(str).isin(ids)
    if not sel.any():
        raise ConfigError(f"fit_on: none of the {len(ids)} given ids is a sample_id or patient_id of the dataset")
    return sel.to_numpy()


def _cache_key(ds: SliceDataset, configs: dict[str, PreprocessConfig], fit_on: Sequence[str] | None) -> str:
    h = hashlib.sha256(str(ds.root.resolve()).encode())
    h.update(ds.frame.to_csv(index=False).encode())
    h.update(json.dumps({v: c.model_dump(mode="json") for v, c in sorted(configs.items())},
                        sort_keys=True).encode())
    h.update(json.dumps(sorted(map(str, fit_on)) if fit_on is not None else None).encode())
    return h.hexdigest()[:16]


def _cached(out: Path, key: str) -> bool:
    try:
        return json.loads((out / CACHE_FILE).read_text())["key"] == key and (out / MANIFEST).is_file()
    except (OSError, ValueError, KeyError):
        return False


def _progress(it: Iterable[Any], total: int) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(it, total=total, desc="preprocess", unit="slice", disable=total < 200, leave=False)

