"""CLI command of the export stage: `ctnodule export RUN --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder from `ctnodule train` (default preset: frozen backbone "
                                             "+ logistic regression).")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle folder.")] = False,
) -> None:
    """Export a run as a portable bundle: ONNX network, plain-JSON head, pipeline, metadata.json, model card."""
    from ctnodule.export.bundle import export_bundle
    from ctnodule.predict.bundle import load_bundle

    bundle = load_bundle(export_bundle(run, out, force=force))
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    typer.echo(f"bundle -> {out} ({size / 1e6:.1f} MB, {len(bundle.metadata['files']) + 1} files, "
               f"loads in {bundle.load_seconds:.2f} s)")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
