"""The run folder: the one contract between training and everything after it (nnU-Net's rule: stages meet
at files). `RunPaths` names every file; the readers and writers here check what they read, so a missing,
corrupt or foreign file is a `RunError` naming the file and the fix, never a traceback from torch or pandas.

Layout (stable names; predict/evaluate/explain need nothing outside the folder)::

    RUN/config.yaml              resolved recipe + what happened (weights loaded, seed, versions, data)
    RUN/pipeline.yaml            the final model's fitted preprocessing (fitted on all training data)
    RUN/splits/fold-K.csv        patient-grouped splits (sample_id, patient_id, split)
    RUN/history.csv              epoch, fold, train_loss, val_loss, train_acc, val_acc, lr (fold -1 = final)
    RUN/oof_predictions.csv      sample_id, patient_id, fold, y_true, proba_0..proba_{C-1}
    RUN/metrics.json             pooled out-of-fold metrics, CIs, baselines, per-fold metrics
    RUN/model.pt                 the final model (trained on all data, same recipe as each fold)
    RUN/checkpoints/fold-K.pt    each fold's model + its validation predictions (resume skips done folds)
    RUN/checkpoints/*.last.pt    the per-epoch training state (resume continues mid-fold)
    RUN/figures/, RUN/report.html

The final model is ONE network refitted on all data (not the fold ensemble): one pipeline, one set of
weights, one `nn.Module` for Grad-CAM. The out-of-fold metrics estimate how that recipe generalises.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import ctnodule
from ctnodule.atomic import atomic_path, write_text
from ctnodule.errors import DataError, RunError


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Every file of a run folder: the only place their names are spelt."""

    root: Path

    config = property(lambda self: self.root / "config.yaml")
    pipeline = property(lambda self: self.root / "pipeline.yaml")
    history = property(lambda self: self.root / "history.csv")
    oof = property(lambda self: self.root / "oof_predictions.csv")
    metrics = property(lambda self: self.root / "metrics.json")
    model = property(lambda self: self.root / "model.pt")
    report = property(lambda self: self.root / "report.html")
    figures = property(lambda self: self.root / "figures")
    checkpoints = property(lambda self: self.root / "checkpoints")
    splits = property(lambda self: self.root / "splits")

    def split_file(self, fold: int) -> Path:
        return self.splits / f"fold-{fold}.csv"

    def split_files(self) -> list[Path]:
        """The split files present, in fold order."""
        return sorted(self.splits.glob("fold-*.csv"), key=lambda p: int(p.stem.split("-")[1]))

    def fold_model(self, fold: int) -> Path:
        return self.checkpoints / f"fold-{fold}.pt"

    def fold_state(self, fold: int) -> Path:
        """Per-epoch training state of fold `fold` (-1 = the final model)."""
        name = "final" if fold < 0 else f"fold-{fold}"
        return self.checkpoints / f"{name}.last.pt"


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's `config.yaml` as a dict, checked: the folder exists, the file is a YAML mapping written by
    this run-folder format version."""
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        raise RunError(f"{paths.root}: run folder not found")
    if not paths.config.is_file():
        raise RunError(f"{paths.root}: no config.yaml; not a ctnodule run folder")
    try:
        config = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RunError(f"{paths.config}: not valid YAML ({type(exc).__name__}); restore it or retrain") from exc
    if not isinstance(config, dict):
        raise RunError(f"{paths.config}: expected a mapping of recipe fields, got {type(config).__name__}; "
                       "restore it or retrain")
    version = config.get("format_version")
    if version != ctnodule.FORMAT_VERSION:
        raise RunError(f"{paths.root}: run folder format {version}, this ctnodule reads format "
                       f"{ctnodule.FORMAT_VERSION}; use the matching ctnodule version or retrain")
    return config


def write_config(run_dir: str | Path, body: dict[str, Any]) -> Path:
    """Write `config.yaml` atomically (the recipe plus what happened)."""
    return write_text(RunPaths(Path(run_dir)).config, yaml.safe_dump(body, sort_keys=False))


def write_metrics(run_dir_or_file: str | Path, metrics: dict) -> Path:
    """Write `metrics` as `<dir>/metrics.json` (or to the given *.json path) atomically.

    NaN/inf become null (valid JSON for every reader), numpy scalars plain numbers, tuples lists.
    """
    path = Path(run_dir_or_file)
    if path.suffix != ".json":
        path = RunPaths(path).metrics
    return write_text(path, json.dumps(jsonable(metrics), indent=2, allow_nan=False) + "\n")


def read_metrics(run_dir: str | Path) -> dict:
    """`run_dir/metrics.json` as written by `write_metrics` (nulls stay None)."""
    path = RunPaths(Path(run_dir)).metrics
    if not path.is_file():
        raise RunError(f"{path}: no metrics.json; the run did not finish (write it with write_metrics)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: corrupt metrics.json ({exc})") from exc


def read_oof(run_dir: str | Path) -> pd.DataFrame:
    """`run_dir/oof_predictions.csv` with ids as strings."""
    path = RunPaths(Path(run_dir)).oof
    if not path.is_file():
        raise DataError(f"no {path.name}; the run did not finish writing its predictions", path)
    return pd.read_csv(path, dtype={"sample_id": str, "patient_id": str})


def read_training_patients(run_dir: str | Path) -> set[str]:
    """Every patient the run learnt from: the final model is refitted on all patients its split files list."""
    files = RunPaths(Path(run_dir)).split_files()
    if not files:
        raise RunError(f"{RunPaths(Path(run_dir)).splits}: no split files; the run did not finish (retrain it)")
    patients: set[str] = set()
    for path in files:
        try:
            patients |= set(pd.read_csv(path, dtype=str, usecols=["patient_id"])["patient_id"])
        except (ValueError, pd.errors.ParserError) as exc:
            raise RunError(f"{path}: unreadable split file ({exc}); restore it or retrain") from exc
    return patients


def save_checkpoint(path: Path, blob: dict[str, Any]) -> None:
    """Write a checkpoint dictionary (torch's format) atomically, stamped with the format version."""
    import torch  # only checkpoint I/O needs torch; config/metrics readers stay light

    with atomic_path(path) as tmp:
        torch.save({"format_version": ctnodule.FORMAT_VERSION, **blob}, tmp)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; bad files are `RunError`s naming the fix."""
    import torch

    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found; was the run trained completely? (retrain with "
                       "`ctnodule train ... --resume`)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RunError(f"{path}: corrupt checkpoint ({type(exc).__name__}); retrain (`--resume` redoes "
                       "only missing parts) or restore the file") from exc
    if not isinstance(blob, dict) or "format_version" not in blob:
        raise RunError(f"{path}: not a ctnodule checkpoint")
    if blob["format_version"] != ctnodule.FORMAT_VERSION:
        raise RunError(f"{path}: written by run-folder format {blob['format_version']}, this ctnodule reads "
                       f"format {ctnodule.FORMAT_VERSION}; use the matching ctnodule version or retrain")
    return blob


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars/arrays, tuples and paths turned into plain JSON types (NaN/inf -> None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
