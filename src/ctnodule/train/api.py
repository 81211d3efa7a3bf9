"""`train(data, out, cfg)`: one call from a slice dataset to a finished, self-contained run folder.

Steps: split by patient (k-fold CV or holdout; split files saved first), train each fold with the same
recipe (`fold.train_fold`) and predict its validation patients (out-of-fold predictions), refit the
recipe on all data as the final model. Every finished fold is checkpointed with its predictions, so
`resume=True` redoes only what is missing. Scoring the run (`ctnodule.evaluate.summary.score_run`) and its
model card (`ctnodule.report.model_card.write_model_card`) are later stages that read the folder;
`ctnodule.workflow.train_and_report` chains the three.
"""

from __future__ import annotations

import platform
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import ctnodule
from ctnodule.atomic import atomic_dir, atomic_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import ConfigError, DataError, RunError
from ctnodule.models.fitted import FittedModel
from ctnodule.preprocess.inputs import load_slices
from ctnodule.recipe import TrainConfig
from ctnodule.runfolder import RunPaths, read_checkpoint, read_config, write_config
from ctnodule.train.engine import distributed
from ctnodule.train.fold import train_fold
from ctnodule.vocab import N_CLASSES, class_names, task_labels


def train(data: str | Path | SliceDataset, out: str | Path, cfg: TrainConfig, resume: bool = False,
          force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Train `cfg` on dataset `data` into run folder `out`; returns `out`.

    Everything that can be checked is checked before the run folder is touched (options, device, output
    and cache paths, the dataset). With `force` an existing run is replaced only once the new one is
    complete: it is built in a temporary sibling folder and renamed into place.
    """
    out = Path(out)
    dataset, weights_status = check_before_training(data, out, cfg, resume, force, log)
    if force and _has_content(out) and distributed()[1] == 1:
        with atomic_dir(out, force=True) as tmp:
            _train(dataset, RunPaths(tmp), cfg, weights_status, False, log)
        return out
    if distributed()[0] == 0:
        _prepare_folder(RunPaths(out), cfg, resume, force)
    return _train(dataset, RunPaths(out), cfg, weights_status, resume, log)


def check_before_training(data: str | Path | SliceDataset, out: Path, cfg: TrainConfig, resume: bool,
                          force: bool, log: Callable[[str], None] = print) -> tuple[SliceDataset, str]:
    """Every check that needs no training, before anything is written (issue 11: a typo must not leave a
    half run folder that blocks the corrected rerun, nor cost the old run under `--force`).

    Returns the run's view of the dataset and the backbone's weights status."""
    from ctnodule.atomic import check_writable
    from ctnodule.balance import resolve
    from ctnodule.models.features import check_cache
    from ctnodule.runtime import check_device
    from ctnodule.train.strategies import strategy_for

    if resume and force:
        raise ConfigError("--resume and --force contradict each other: resume keeps the run, force replaces it")
    check_device(cfg.device)
    strategy_for(cfg)
    resolve(cfg.imbalance, **cfg.imbalance_params)
    with warnings.catch_warnings(record=True) as caught:  # the backbone exists, its weights load
        warnings.simplefilter("always", UserWarning)
        weights_status = _weights_status(cfg)
    for w in caught:
        log(f"WARNING: {w.message}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; --out must be a run folder")
    check_writable(out, "run folder")
    if cfg.freeze_backbone:
        check_cache()
    if resume and _has_content(out):
        _check_resumable(RunPaths(out), cfg)
    elif _has_content(out) and not force:
        raise RunError(f"{out}: run folder exists; pass --resume to continue it or --force to replace it")
    dataset = data if isinstance(data, SliceDataset) else SliceDataset(data)
    dataset = dataset.view(cfg.view)
    if len(dataset) == 0:
        raise DataError(f"the dataset has no {cfg.view!r}-view samples; pick --view "
                        f"{'nodule' if cfg.view == 'full' else 'full'} or import that view", dataset.root)
    frame = dataset.frame
    y = task_labels(frame, cfg.task)
    n_patients = frame["patient_id"].nunique()
    if n_patients < 2:
        raise DataError(f"the {cfg.view}-view samples come from one patient only: patient-grouped evaluation "
                        "needs at least 2 patients (k-fold CV at least k); add patients", dataset.root)
    missing = [class_names(cfg.task)[c] for c in range(N_CLASSES[cfg.task]) if not (y == c).any()]
    if missing:
        hint = "add data, or use --task binary" if cfg.task == "multiclass" else "add data"
        raise DataError(f"no {cfg.view}-view samples of class {missing} for the {cfg.task} task: a model cannot "
                        f"learn a class it never sees ({hint})", dataset.root)
    return dataset, weights_status


def _train(dataset: SliceDataset, paths: RunPaths, cfg: TrainConfig, weights_status: str, resume: bool,
           log: Callable[[str], None]) -> Path:
    from ctnodule.data.splits import patient_holdout, patient_kfold, save_splits
    from ctnodule.runtime import tune_malloc

    tune_malloc()
    # under torchrun every rank runs this function (training is DDP-synchronised); only rank 0 writes
    main = distributed()[0] == 0
    frame = dataset.frame
    y = task_labels(frame, cfg.task)
    if cfg.holdout is not None:
        splits = [patient_holdout(frame, cfg.task, cfg.holdout, cfg.seed)]
    else:
        splits = patient_kfold(frame, cfg.task, cfg.folds, cfg.seed)
    if main:
        save_splits(paths.root, frame, splits)
    t0 = time.perf_counter()
    log(f"loading {len(dataset)} {cfg.view} samples from {dataset.root}")
    slices = load_slices(dataset, cfg.channels)
    used_context = any(s.array.ndim == 3 for s in slices)
    if main:
        _write_config(paths, cfg, dataset, weights_status, used_context, len(splits))
    inputs = slices  # what each fold trains on: the samples, or for find-then-classify their finds
    if cfg.find != "none":  # find-then-classify: every full slice searched once, its crops reused per fold
        from ctnodule.train.find_crop import find_inputs

        inputs = find_inputs(cfg, slices, log)
    copies = None
    if cfg.mask_augment and cfg.find == "none":  # every sample's automatic-mask copy made once, reused per fold
        from ctnodule.train.mask_augment import automatic_mask_copies

        copies = automatic_mask_copies(slices)
        log(f"mask augmentation: {sum(c is not None for c in copies)} of {len(slices)} samples segmented automatically")

    oof_parts, history = [], []
    for k, (tr, va) in enumerate(splits):
        part, hist = _fold(paths, cfg, inputs, frame, y, tr, va, k, resume, log, copies)
        oof_parts.append(part)
        history += hist
    if cfg.find != "none" and main:  # after the folds: a learned ranking's finds are each fold's held-out picks
        with atomic_path(paths.root / "found.csv") as tmp:
            inputs.table(frame).to_csv(tmp, index=False)
    final, hist = _final(paths, cfg, inputs, frame, y, resume, log, copies)
    history += hist
    if not main:
        return paths.root
    final.pipeline.save(paths.pipeline)
    if final.has_sklearn_head and final.scaler is not None and cfg.find == "none":
        _write_attributions(paths, final, slices, frame, y)
    train_seconds = time.perf_counter() - t0
    oof = pd.concat(oof_parts).sort_values("sample_id", kind="stable").reset_index(drop=True)
    with atomic_path(paths.oof) as tmp:
        oof.to_csv(tmp, index=False)
    hist_frame = pd.DataFrame(history, columns=["epoch", "fold", "train_loss", "val_loss", "train_acc",
                                                "val_acc", "lr"])
    if len(hist_frame):  # scikit-learn heads fit in one step: no epochs, no history.csv
        with atomic_path(paths.history) as tmp:
            hist_frame.to_csv(tmp, index=False)
    write_config(paths.root, {**read_config(paths.root), "train_seconds": round(train_seconds, 1)})
    log(f"training done in {train_seconds:.0f} s")
    return paths.root


def _fold(paths: RunPaths, cfg: TrainConfig, inputs, frame: pd.DataFrame, y: np.ndarray, tr: np.ndarray,
          va: np.ndarray, k: int, resume: bool, log, copies=None) -> tuple[pd.DataFrame, list[dict]]:
    """Out-of-fold predictions of fold k (and its history), from its checkpoint when resuming."""
    if resume and paths.fold_model(k).is_file():
        try:
            blob = read_checkpoint(paths.fold_model(k))
            part, hist = blob["oof"], blob["history"]
        except (RunError, KeyError) as exc:  # e.g. truncated by a full disk: the fold is retrained
            log(f"fold {k}: corrupt checkpoint {paths.fold_model(k)} ({exc}); retraining this fold")
        else:
            log(f"fold {k}: done earlier, reusing its checkpoint")
            return part, hist
    log(f"fold {k}: training on {len(tr)} samples, validating on {len(va)}")
    model, hist, proba = _train_fold(cfg, inputs, frame, y, tr, k, paths.fold_state(k), resume, log, va, copies)
    part = pd.DataFrame({"sample_id": frame["sample_id"].astype(str).to_numpy()[va],
                         "patient_id": frame["patient_id"].astype(str).to_numpy()[va], "fold": k,
                         "y_true": y[va]})
    for c in range(proba.shape[1]):
        part[f"proba_{c}"] = proba[:, c]
    if distributed()[0] == 0:
        model.save(paths.fold_model(k), {"oof": part, "history": hist})
        paths.fold_state(k).unlink(missing_ok=True)
    return part, hist


def _final(paths: RunPaths, cfg: TrainConfig, inputs, frame, y, resume: bool, log, copies=None):
    if resume and paths.model.is_file():
        try:
            model, blob = FittedModel.load(paths.model)
            return model, blob["history"]
        except (RunError, KeyError) as exc:
            log(f"final model: corrupt checkpoint {paths.model} ({exc}); retraining it")
    log(f"final model: training on all {len(frame)} samples")
    model, hist, _ = _train_fold(cfg, inputs, frame, y, np.arange(len(frame)), -1, paths.fold_state(-1), resume,
                                 log, copies=copies)
    if distributed()[0] == 0:
        model.save(paths.model, {"history": hist, **model.info})
        paths.fold_state(-1).unlink(missing_ok=True)
    return model, hist


def _train_fold(cfg: TrainConfig, inputs, frame: pd.DataFrame, y: np.ndarray, tr: np.ndarray, k: int,
                checkpoint: Path, resume: bool, log, predict_idx: np.ndarray | None = None, copies=None):
    """`train_fold` on the samples `inputs`, or for a find-then-classify recipe (`inputs` are then its
    `FindInputs`) the same on the nodule crops. `copies`: `mask_augment`'s automatic-mask copy of every sample."""
    if cfg.find != "none":
        from ctnodule.train.find_crop import train_found_fold

        return train_found_fold(cfg, inputs, frame, y, tr, k, checkpoint, resume, log, predict_idx)
    return train_fold(cfg, inputs, frame, y, tr, k, checkpoint, resume, log, predict_idx=predict_idx,
                      mask_copies=copies)


def _write_attributions(paths: RunPaths, model, slices, frame: pd.DataFrame, y: np.ndarray) -> None:
    """The final model's attributions on its own training nodules (`attributions.csv`, with each nodule's
    diameter): the model card's global view of what the model relies on."""
    from ctnodule.models.attribution import attribute, to_frame
    from ctnodule.models.descriptors import diameter_mm, feature_names

    attr = attribute(model.sk_head, model.head_inputs(slices, model.cfg.device, use_cache=True),
                     feature_names(model.cfg.tabular), model.info.get("feature_groups"))
    table = to_frame(attr)
    table.insert(0, "sample_id", frame["sample_id"].astype(str).to_numpy())
    table.insert(1, "y_true", y)
    table.insert(2, "diameter_mm", [diameter_mm(s) for s in slices])
    with atomic_path(paths.attributions) as tmp:
        table.to_csv(tmp, index=False)


def _weights_status(cfg: TrainConfig) -> str:
    from ctnodule.models.backbones import create_backbone

    return create_backbone(cfg.backbone, cfg.weights).weights_status


def _write_config(paths: RunPaths, cfg: TrainConfig, dataset: SliceDataset, weights_status: str,
                  used_context: bool, n_splits: int) -> None:
    import torch

    body = {
        "format_version": ctnodule.FORMAT_VERSION, "ctnodule_version": ctnodule.__version__,
        "data": str(Path(dataset.root).resolve()), "n_samples": len(dataset),
        "n_patients": int(dataset.frame["patient_id"].nunique()),
        "class_names": class_names(cfg.task), "n_classes": N_CLASSES[cfg.task],
        "weights_source": weights_status, "pretrained": not weights_status.startswith("random"),
        "used_context": used_context, "n_splits": n_splits,
        "final_model": "refit on all data with the same recipe (model.pt)",
        "torch": str(torch.__version__), "python": platform.python_version(),
        **cfg.model_dump(mode="json"),
    }
    write_config(paths.root, body)


def _has_content(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _check_resumable(paths: RunPaths, cfg: TrainConfig) -> None:
    """The run at `paths` was trained with the same recipe (the device may differ)."""
    if not paths.config.is_file():
        raise RunError(f"{paths.root}: nothing to resume (no config.yaml); train without --resume")
    old = read_config(paths.root)
    defaults = TrainConfig().model_dump(mode="json")  # a field added since the run was written had its default
    changed = [k for k, v in cfg.model_dump(mode="json").items() if k != "device" and old.get(k, defaults[k]) != v]
    if changed:
        raise RunError(f"{paths.root}: cannot resume with a different recipe (changed: {changed}); "
                       "use the same options or --force to start over")


def _prepare_folder(paths: RunPaths, cfg: TrainConfig, resume: bool, force: bool) -> None:
    """Create the run folder (checked by `check_before_training`); under torchrun `--force` clears it."""
    if force and not resume and _has_content(paths.root):
        shutil.rmtree(paths.root)  # only with several ranks, which all write into one folder
    paths.root.mkdir(parents=True, exist_ok=True)
