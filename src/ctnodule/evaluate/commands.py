"""CLI command of the evaluate stage: `ctnodule evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder from `ctnodule train`.")],
    data: Annotated[Path, typer.Argument(help="Labelled slice dataset to score the run's final model on.")],
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, predictions.csv, figures, report.html.")],
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (default: cpu).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (never a run folder).")] = False,
) -> None:
    """Apply a trained run (with its own preprocessing) to another dataset and score it."""
    from ctnodule.evaluate.run import evaluate_run, seen_in_training
    from ctnodule.runtime import check_device

    m = evaluate_run(run, data, out, force=force, device=check_device(device) if device else "cpu")
    seen = m["patients_seen_in_training"]["count"]
    if seen:
        typer.secho(seen_in_training(seen, m["n_patients"]), fg=typer.colors.YELLOW, err=True)
    typer.echo(f"n={m['n']} accuracy={m['accuracy']:.3f} roc_auc={m['roc_auc']:.3f}"
               + (f" qwk={m['qwk']:.3f}" if "qwk" in m else "") + f" -> {out / 'metrics.json'}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
