"""`Pipeline`: a view's preprocessing steps, fitted on training slices, saved with every model.

Built from a `PreprocessConfig` through the step registry, so `save` writes a list of
`{name, params, state}` and `load` rebuilds exactly the same steps with exactly the same fitted state.
`hash` is a content hash of that list: the same recipe fitted to the same numbers gives the same hash,
which names cached outputs. `transform_many` spreads slices over worker processes (see
`bench/bench_preprocess.py` for when that pays).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ctnodule.atomic import write_text
from ctnodule.config import load_yaml
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.slice import Slice
from ctnodule.errors import ConfigError, DataError
from ctnodule.preprocess.base import Step, check_slice, create_step
from ctnodule.preprocess.config import PreprocessConfig, StepSpec

Slices = SliceDataset | Sequence[Slice]


class Pipeline:
    """An ordered list of steps for one view (`full` or `nodule`)."""

    def __init__(self, steps: Sequence[Step], view: str = "nodule"):
        self.steps = list(steps)
        self.view = view

    # -- construction / serialisation ---------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: PreprocessConfig) -> Pipeline:
        """Rebuild every step through the registry; saved `state` restores what `fit` learned."""
        steps = []
        for spec in cfg.steps:
            step = create_step(spec.name, spec.params)
            if spec.state:
                step.set_fitted_state(spec.state)
            steps.append(step)
        pipe = cls(steps, cfg.view)
        if cfg.hash is not None and cfg.hash != pipe.hash:
            raise ConfigError(f"pipeline hash {cfg.hash} does not match its steps ({pipe.hash}); the file was "
                              "edited after saving: refit it, or drop the 'hash' line to accept the edit")
        return pipe

    def to_config(self) -> PreprocessConfig:
        specs = [StepSpec(name=s.name, params=s.get_params(), state=s.fitted_state()) for s in self.steps]
        return PreprocessConfig(view=self.view, steps=specs,
                                hash=self.hash if self.is_fitted() else None)

    @property
    def hash(self) -> str:
        """sha256 (16 hex digits) of view + every step's name, params and fitted state."""
        body = {"view": self.view,
                "steps": [[s.name, s.get_params(), s.fitted_state()] for s in self.steps]}
        text = json.dumps(body, sort_keys=True, default=float)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write `pipeline.yaml` (one view) atomically."""
        return write_text(path, yaml.safe_dump(self.to_config().model_dump(mode="json"), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path, view: str | None = None) -> Pipeline:
        """Read a saved pipeline. A multi-view file (`{full: ..., nodule: ...}`, as written by
        `preprocess_dataset`) needs `view` unless it holds one view only."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: pipeline file not found")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, dict) and "steps" not in data and set(data) <= {"full", "nodule"} and data:
            if view is None and len(data) > 1:
                raise ConfigError(f"{path}: holds pipelines for {sorted(data)}; say which view to load")
            view = view or next(iter(data))
            if view not in data:
                raise ConfigError(f"{path}: no pipeline for view {view!r}; it has {sorted(data)}")
            return cls.from_config(_validate(data[view], path))
        pipe = cls.from_config(load_yaml(PreprocessConfig, path))
        if view is not None and pipe.view != view:
            raise ConfigError(f"{path}: pipeline is for view {pipe.view!r}, not {view!r}")
        return pipe

    # -- fitting ------------------------------------------------------------------------------------
    def is_fitted(self) -> bool:
        return all(s.is_fitted() for s in self.steps)

    def fit(self, dataset: Slices) -> Pipeline:
        """Fit each learning step on the TRAINING slices, as transformed by the steps before it."""
        self._check_view(dataset)
        if len(dataset) == 0:
            raise DataError("Pipeline.fit: the training set is empty")
        for i, step in enumerate(self.steps):
            if step.needs_fit:
                step.fit(_apply(self.steps[:i], s) for s in _iter(dataset))
        return self

    # -- application --------------------------------------------------------------------------------
    def transform(self, s: Slice) -> Slice:
        """All steps on one slice; the result is float32 in [0, 1] (anything else is an error)."""
        out = _apply(self.steps, s)
        a = out.array
        if a.dtype != np.float32 or not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
            raise ConfigError(
                f"pipeline output for sample {s.meta.get('sample_id', '?')!r} is not float32 in [0, 1] "
                f"(dtype {a.dtype}, range {np.nanmin(a):g}..{np.nanmax(a):g}); the 'window' step is missing "
                "or a step after it works in HU"
            )
        return out

    def __call__(self, s: Slice) -> Slice:
        return self.transform(s)

    def transform_many(self, slices: Iterable[Slice], workers: int | None = None,
                       chunksize: int = 64) -> Iterator[Slice]:
        """Transform slices lazily and in order over `workers` processes (default: the usable cores;
        1 = in this process). Results stream back, so a dataset need not fit in memory."""
        from ctnodule.preprocess.parallel import parallel_map

        yield from parallel_map(self.transform, slices, workers=workers, chunksize=chunksize)

    def filter_report(self, dataset: Slices, workers: int | None = None) -> pd.DataFrame:
        """One row per sample: sample_id, laplacian_variance, keep, reason (noise filter decision)."""
        self._check_view(dataset)
        rows = []
        for i, out in enumerate(self.transform_many(_iter(dataset), workers=workers)):
            rows.append({"sample_id": str(out.meta.get("sample_id", i)),
                         "laplacian_variance": out.meta.get("laplacian_variance", np.nan),
                         "keep": bool(out.meta.get("noise_keep", True)),
                         "reason": out.meta.get("noise_reason", "")})
        return pd.DataFrame(rows, columns=["sample_id", "laplacian_variance", "keep", "reason"])

    def keep_mask(self, dataset: Slices, workers: int | None = None) -> np.ndarray:
        """bool per sample: False where the noise filter drops it (all True without a noise step)."""
        return self.filter_report(dataset, workers=workers)["keep"].to_numpy(dtype=bool)

    def _check_view(self, dataset: Slices) -> None:
        if isinstance(dataset, SliceDataset) and "view" in dataset.frame:
            other = sorted(set(dataset.frame["view"]) - {self.view})
            if other:
                raise DataError(f"this pipeline is for the {self.view!r} view but the dataset also holds "
                                f"{other} samples; pass dataset.view({self.view!r})")

    def __repr__(self) -> str:
        inner = ",\n  ".join(map(repr, self.steps))
        return f"Pipeline(view={self.view!r}, steps=[\n  {inner}\n])"


def _apply(steps: Sequence[Step], s: Slice) -> Slice:
    """Check the input once, then run each step's `apply` (each step alone checks on every call)."""
    if steps:
        check_slice(s, "pipeline input")
    for step in steps:
        step.check_is_fitted()
        s = step.apply(s)
    return s


def _iter(dataset: Slices) -> Iterator[Slice]:
    return iter(dataset)


def _validate(data: Any, path: Path) -> PreprocessConfig:
    import pydantic

    try:
        return PreprocessConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc

