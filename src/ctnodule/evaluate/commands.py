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
) -> None:
    """Apply a trained run (with its own preprocessing) to another dataset and score it."""
    from ctnodule.evaluate.run import evaluate_run
    from ctnodule.runtime import check_device

    m = evaluate_run(run, data, out, device=check_device(device) if device else "cpu")
    typer.echo(f"n={m['n']} accuracy={m['accuracy']:.3f} roc_auc={m['roc_auc']:.3f}"
               + (f" qwk={m['qwk']:.3f}" if "qwk" in m else "") + f" -> {out / 'metrics.json'}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
