"""CLI command of the preprocess stage: `ctnodule preprocess DATA --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def preprocess(
    data: Path = typer.Argument(..., help="slice dataset folder (manifest.csv + NRRD), e.g. from `ctnodule import`"),
    out: Path = typer.Option(..., "--out", help="folder for the processed dataset"),
    config: Optional[list[Path]] = typer.Option(
        None, "--config", help="preprocess YAML (one per view; repeat for both). Default: each view's default"),
    fit_on: Optional[Path] = typer.Option(
        None, "--fit-on", help="CSV with a sample_id or patient_id column: the TRAINING samples the noise "
        "threshold / learned size are fitted on. Default: all samples (leaks test statistics into the fit)"),
    force: bool = typer.Option(False, "--force", help="recompute and replace an existing output folder"),
) -> None:
    """Window, gamma, CLAHE, size standardisation, noise filter and lung masking, per view."""
    from ctnodule.preprocess.dataset import preprocess_dataset, read_id_list

    ids = read_id_list(fit_on) if fit_on is not None else None
    path = preprocess_dataset(data, out, config=config or None, force=force, fit_on=ids)
    typer.echo(f"processed dataset: {path}  (report: {path / 'report.html'})")


def register(app: typer.Typer) -> None:
    app.command("preprocess")(preprocess)
