"""CLI commands of the data stage: `ctnodule import KIND ...` and `ctnodule explore`."""

from __future__ import annotations

import typer

import_app = typer.Typer(help="Import real or synthetic data into a slice dataset (manifest.csv + NRRD).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
