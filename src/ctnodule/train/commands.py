"""CLI commands of the train stage: `ctnodule train`, `evaluate`, `predict`, `benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Preset = Annotated[str, typer.Option(help="Recipe: 'default' (ours, tuned by patient-grouped CV) or 'seed' "
                                          "(the original report's).")]
Run = Annotated[Path, typer.Argument(help="Run folder from `ctnodule train`.")]


def train_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset folder (manifest.csv).")],
    out: Annotated[Path, typer.Option(help="Run folder to write.")],
    view: Annotated[str, typer.Option(help="full | nodule")] = "nodule",
    task: Annotated[str, typer.Option(help="binary (1-3 vs 4-5) | multiclass (1..5)")] = "binary",
    preset: Preset = "default",
    backbone: Annotated[str | None, typer.Option(help="timm backbone name (default: the preset's).")] = None,
    head: Annotated[str | None, typer.Option(help="seed | mlp | linear | svm | logreg (svm/logreg: frozen).")] = None,
    freeze: Annotated[bool | None, typer.Option("--frozen/--finetune",
                                                help="Frozen backbone (cached features) or fine-tune it.")] = None,
    tabular: Annotated[str | None, typer.Option(help="Tabular inputs: none | size | descriptors.")] = None,
    folds: Annotated[int | None, typer.Option(min=2, help="k of patient-grouped k-fold CV (default 5).")] = None,
    holdout: Annotated[float | None, typer.Option(help="Instead of CV: one patient-grouped split with this share "
                                                       "held out (e.g. 0.2).")] = None,
    weights: Annotated[str | None, typer.Option(help="auto | none | PATH to a state dict. 'none' = random init "
                                                     "(DANGER: weak on LIDC-sized data).")] = None,
    imbalance: Annotated[str | None, typer.Option(help="none, weights, oversample, undersample, smote, "
                                                       "smote_embed, cgan, focal, logit_adjusted.")] = None,
    calibration: Annotated[str | None, typer.Option(help="svm/logreg heads: none | platt | isotonic, fitted on "
                                                         "patient-grouped inner folds of each training fold.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum epochs (default: the preset's).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (splits, init, augmentation); recorded.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run folder.")] = False,
) -> None:
    """Train a classifier with patient-grouped CV and write a self-contained run folder."""
    from ctnodule.train.api import train
    from ctnodule.train.config import load_preset

    cfg = load_preset(preset, view=view, task=task, backbone=backbone, head=head, freeze_backbone=freeze,
                      tabular=tabular, folds=folds, holdout=holdout, weights=weights, imbalance=imbalance,
                      calibration=calibration, epochs=epochs, device=device, seed=seed)
    run = train(data, out, cfg, resume=resume, force=force, log=typer.echo)
    typer.echo(f"model card: {run / 'report.html'}")


def evaluate_cmd(
    run: Run,
    data: Annotated[Path, typer.Argument(help="Labelled slice dataset to score the run's final model on.")],
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, predictions.csv, figures, report.html.")],
) -> None:
    """Apply a trained run (with its own preprocessing) to another dataset and score it."""
    from ctnodule.train.apply import evaluate_run

    m = evaluate_run(run, data, out)
    typer.echo(f"n={m['n']} accuracy={m['accuracy']:.3f} roc_auc={m['roc_auc']:.3f}"
               + (f" qwk={m['qwk']:.3f}" if "qwk" in m else "") + f" -> {out / 'metrics.json'}")


def predict_cmd(
    run: Run,
    inputs: Annotated[list[Path], typer.Argument(help="NRRD/NIfTI/DICOM files in HU, or slice-dataset folders.")],
    out: Annotated[Path, typer.Option(help="CSV to write.")] = Path("predictions.csv"),
    mask: Annotated[list[Path] | None, typer.Option(help="Nodule mask per image file (gives the size and "
                                                         "shape to models that use them).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add a Grad-CAM heat map per prediction "
                                                            "(PNG overlay + NRRD map beside the CSV).")] = False,
    method: Annotated[str, typer.Option(help="CAM method for --explain (gradcam, gradcam++, ...).")] = "gradcam",
) -> None:
    """Predict class probabilities and a malignancy score for each input."""
    from ctnodule.train.apply import predict_files

    frame = predict_files(run, inputs, out, masks=mask or None, explain=method if explain else None)
    typer.echo(f"{len(frame)} prediction(s) -> {out}")


def benchmark_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset folder.")],
    out: Annotated[Path, typer.Option(help="Folder for runs/, benchmark.md and benchmark.html.")],
    backbones: Annotated[list[str] | None, typer.Option("--backbones", help="Backbones to compare (repeat).")] = None,
    views: Annotated[list[str] | None, typer.Option("--views", help="Views to include (default: all present).")] = None,
    preset: Preset = "default",
    folds: Annotated[int, typer.Option(min=2)] = 5,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs that already exist.")] = False,
) -> None:
    """Backbones x views x tasks with patient-grouped CV: mean ± sd tables (Markdown + HTML)."""
    from ctnodule.train.benchmark import DEFAULT_BACKBONES, benchmark

    folder, _ = benchmark(data, out, backbones or DEFAULT_BACKBONES, preset=preset, folds=folds, force=force,
                          views=views or None, log=typer.echo, epochs=epochs)
    typer.echo((folder / "benchmark.md").read_text(encoding="utf-8"))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)
    app.command("benchmark")(benchmark_cmd)
