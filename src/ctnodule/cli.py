"""The `ctnodule` command line: a thin typer app.

Each stage module exposes `register(app)`, adding its commands; a command parses its options, calls one
public stage function and prints. `CTNoduleError`s are printed as one line and exit with code 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ctnodule.errors import CTNoduleError

app = typer.Typer(
    name="ctnodule",
    help="Lung-nodule malignancy from CT slices: import, explore, preprocess, train, evaluate, explain.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print patient paths/ids held in locals
    add_completion=False,
)


def _register_commands() -> None:
    from ctnodule.balance import commands as balance_commands
    from ctnodule.data import commands as data_commands
    from ctnodule.explain import commands as explain_commands
    from ctnodule.export import commands as export_commands
    from ctnodule.preprocess import commands as preprocess_commands
    from ctnodule.train import commands as train_commands

    for module in (data_commands, explain_commands, preprocess_commands, train_commands, balance_commands,
                   export_commands):
        module.register(app)


_register_commands()


@app.command("run")
def run_cmd(
    data: Annotated[Path | None, typer.Argument(help="Slice dataset folder; default: a generated synthetic "
                                                     "phantom.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for every stage's output and the index report.html.")] = Path(
        "runs/demo"),
    folds: Annotated[int, typer.Option(min=2, help="k of the patient-grouped cross-validation.")] = 5,
    patients: Annotated[int, typer.Option(min=5, help="Phantom patients to generate when no DATA is given.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed for the phantom, splits and training; recorded in every run.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT (only once the new run has finished).")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N for training and Grad-CAM (checked first).")] = "cpu",
) -> None:
    """The main job: import -> explore -> preprocess -> train every classifier -> explain -> one report."""
    from ctnodule.workflow import run_all

    page = run_all(data, out, folds=folds, patients=patients, seed=seed, force=force, log=typer.echo,
                   device=device)
    typer.echo(f"open {page}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from ctnodule.runtime import tune_malloc

    tune_malloc()
    try:
        # standalone: click prints usage errors (exit 2) and --help itself; our errors come through here
        app(args=argv)
    except CTNoduleError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except SystemExit as exc:  # click ends even a success with sys.exit(0); return instead, so callers can go on
        if exc.code not in (0, None):
            raise


if __name__ == "__main__":
    main()
