"""CLI command of the preprocess stage: `ctnodule preprocess DATA --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def preprocess(
    data: Annotated[Path, typer.Argument(help="slice dataset folder (manifest.csv + NRRD), e.g. from `ctnodule import`")],
    out: Annotated[Path, typer.Option("--out", help="folder for the processed dataset")],
    config: Annotated[list[Path] | None, typer.Option(
        "--config", help="preprocess YAML (one per view; repeat for both). Default: each view's default")] = None,
    fit_on: Annotated[Path | None, typer.Option(
        "--fit-on", help="CSV with a sample_id or patient_id column: the TRAINING samples the noise threshold / "
        "learned size are fitted on. Default: all samples (leaks test statistics into the fit)")] = None,
    force: Annotated[bool, typer.Option("--force", help="recompute and replace an existing output folder")] = False,
) -> None:
    """Window, gamma, CLAHE, size standardisation, noise filter and lung masking, per view."""
    from ctnodule.preprocess.dataset import preprocess_dataset, read_id_list

    ids = read_id_list(fit_on) if fit_on is not None else None
    path = preprocess_dataset(data, out, config=config or None, force=force, fit_on=ids)
    typer.echo(f"processed dataset: {path}  (report: {path / 'report.html'})")


def register(app: typer.Typer) -> None:
    app.command("preprocess")(preprocess)
