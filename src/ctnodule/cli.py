"""The `ctnodule` command line: a thin typer app.

Each stage module exposes `register(app)`, adding its commands; a command parses its options, calls one
public stage function and prints. `CTNoduleError`s are printed as one line and exit with code 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

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
    from ctnodule.data import commands as data_commands
    from ctnodule.explain import commands as explain_commands
    from ctnodule.preprocess import commands as preprocess_commands
    from ctnodule.train import commands as train_commands

    for module in (data_commands, explain_commands, preprocess_commands, train_commands):
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from ctnodule.runtime import tune_malloc

    tune_malloc()
    try:
        app(args=argv, standalone_mode=False)
    except CTNoduleError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
