"""CLI commands of the train stage: `ctnodule train`, `evaluate`, `predict`, `benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

_PRESET = typer.Option("default", help="Recipe: 'default' (ours, tuned by patient-grouped CV) or 'seed' "
                                       "(the original report's).")


def train_cmd(
    data: Path = typer.Argument(..., help="Slice dataset folder (manifest.csv)."),
    view: str = typer.Option("nodule", help="full | nodule"),
    task: str = typer.Option("binary", help="binary (1-3 vs 4-5) | multiclass (1..5)"),
    out: Path = typer.Option(..., help="Run folder to write."),
    preset: str = _PRESET,
    backbone: Optional[str] = typer.Option(None, help="timm backbone name (default: the preset's)."),
    head: Optional[str] = typer.Option(None, help="seed | mlp | linear | svm | logreg (svm/logreg: frozen backbone)"),
    freeze: Optional[bool] = typer.Option(None, "--frozen/--finetune", help="Frozen backbone (cached features, head only) or fine-tune it all."),
    tabular: Optional[str] = typer.Option(None, help="Tabular features into the head: none | size | descriptors."),
    folds: Optional[int] = typer.Option(None, min=2, help="k of patient-grouped k-fold CV (default 5)."),
    holdout: Optional[float] = typer.Option(None, help="Instead of CV: one patient-grouped split, this share held out (e.g. 0.2)."),
    weights: Optional[str] = typer.Option(None, help="auto | none | PATH to a state dict. 'none' = random init (DANGER: weak on LIDC-sized data)."),
    imbalance: Optional[str] = typer.Option(None, help="Class-imbalance method: none, weights, oversample, undersample, smote, smote_embed, cgan, focal, logit_adjusted."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Maximum epochs (default: the preset's)."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda | cuda:N"),
    seed: Optional[int] = typer.Option(None, help="Random seed (splits, init, augmentation); recorded in the run."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run folder."),
) -> None:
    """Train a classifier with patient-grouped CV and write a self-contained run folder."""
    from ctnodule.train.api import train
    from ctnodule.train.config import load_preset

    cfg = load_preset(preset, view=view, task=task, backbone=backbone, head=head, freeze_backbone=freeze,
                      tabular=tabular, folds=folds, holdout=holdout, weights=weights, imbalance=imbalance,
                      epochs=epochs, device=device, seed=seed)
    run = train(data, out, cfg, resume=resume, force=force, log=typer.echo)
    typer.echo(f"model card: {run / 'report.html'}")


def evaluate_cmd(
    run: Path = typer.Argument(..., help="Run folder from `ctnodule train`."),
    data: Path = typer.Argument(..., help="Labelled slice dataset to score the run's final model on."),
    out: Path = typer.Option(..., help="Folder for metrics.json, predictions.csv, figures, report.html."),
) -> None:
    """Apply a trained run (with its own preprocessing) to another dataset and score it."""
    from ctnodule.train.apply import evaluate_run

    m = evaluate_run(run, data, out)
    typer.echo(f"n={m['n']} accuracy={m['accuracy']:.3f} roc_auc={m['roc_auc']:.3f}"
               + (f" qwk={m['qwk']:.3f}" if "qwk" in m else "") + f" -> {out / 'metrics.json'}")


def predict_cmd(
    run: Path = typer.Argument(..., help="Run folder from `ctnodule train`."),
    inputs: list[Path] = typer.Argument(..., help="NRRD/NIfTI/DICOM files in HU, or slice-dataset folders."),
    out: Path = typer.Option(Path("predictions.csv"), help="CSV to write."),
    mask: Optional[list[Path]] = typer.Option(None, help="Nodule mask per image file (gives the size to models that use it)."),
) -> None:
    """Predict class probabilities and a malignancy score for each input."""
    from ctnodule.train.apply import predict_files

    frame = predict_files(run, inputs, out, masks=mask or None)
    typer.echo(f"{len(frame)} prediction(s) -> {out}")


def benchmark_cmd(
    data: Path = typer.Argument(..., help="Slice dataset folder."),
    out: Path = typer.Option(..., help="Folder for runs/, benchmark.md and benchmark.html."),
    backbones: Optional[list[str]] = typer.Option(None, "--backbones", help="Backbones to compare (repeat the option)."),
    preset: str = _PRESET,
    folds: int = typer.Option(5, min=2),
    epochs: Optional[int] = typer.Option(None, min=1),
    force: bool = typer.Option(False, "--force", help="Retrain runs that already exist."),
) -> None:
    """Backbones x views x tasks with patient-grouped CV: mean ± sd tables (Markdown + HTML)."""
    from ctnodule.train.benchmark import DEFAULT_BACKBONES, benchmark

    folder, _ = benchmark(data, out, backbones or DEFAULT_BACKBONES, preset=preset, folds=folds, force=force,
                          log=typer.echo, epochs=epochs)
    typer.echo((folder / "benchmark.md").read_text(encoding="utf-8"))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)
    app.command("benchmark")(benchmark_cmd)
