"""CLI commands of the studies: `ctnodule benchmark` (backbones) and `ctnodule balance-benchmark`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctnodule.vocab import Head


def benchmark_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset folder.")],
    out: Annotated[Path, typer.Option(help="Folder for runs/, benchmark.md and benchmark.html.")],
    backbones: Annotated[list[str] | None, typer.Option("--backbones", help="Backbones to compare (repeat).")] = None,
    views: Annotated[list[str] | None, typer.Option("--views", help="Views to include (default: all present).")] = None,
    preset: Annotated[str, typer.Option(help="Recipe: 'default' or 'seed'.")] = "default",
    folds: Annotated[int, typer.Option(min=2)] = 5,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs that already exist.")] = False,
) -> None:
    """Backbones x views x tasks with patient-grouped CV: mean ± sd tables (Markdown + HTML)."""
    from ctnodule.studies.backbones import DEFAULT_BACKBONES, benchmark

    folder, _ = benchmark(data, out, backbones or DEFAULT_BACKBONES, preset=preset, folds=folds, force=force,
                          views=views or None, log=typer.echo, epochs=epochs)
    typer.echo((folder / "benchmark.md").read_text(encoding="utf-8"))


def balance_benchmark_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset (nodule view used by the preset).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (runs/, balance.html, balance.csv).")],
    methods: Annotated[str, typer.Option(help="Comma-separated balancers, or 'all'.")] = "all",
    tasks: Annotated[str, typer.Option(help="Comma-separated: binary,multiclass.")] = "binary,multiclass",
    preset: Annotated[str, typer.Option(help="Training preset (seed or default).")] = "default",
    folds: Annotated[int, typer.Option(min=2, help="Patient-grouped CV folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Split and training seed.")] = 0,
    head: Annotated[Head | None, typer.Option(help="Override the preset's head. A scikit-learn head (logreg, "
                                             "svm) takes class weights but no loss, so focal/logit_adjusted act only "
                                             "with a torch head (linear, mlp, seed).")] = None,
    engine: Annotated[bool, typer.Option(help="Run each method through `ctnodule train` (minutes per run).")] = True,
    feature_path: Annotated[bool, typer.Option(help="Also the fast frozen-feature path (all methods incl. "
                                                    "pixel SMOTE and cGAN).")] = True,
    cgan_epochs: Annotated[int, typer.Option(min=1, help="cGAN epochs per fold (feature path).")] = 15,
) -> None:
    """Compare the class-imbalance methods on DATA with patient-grouped CV (one table per task)."""
    from ctnodule.studies.balancing import ALL, balance_benchmark

    chosen = list(ALL) if methods == "all" else [m.strip() for m in methods.split(",") if m.strip()]
    overrides = {} if head is None else {"head": head, "head_params": {}}
    balance_benchmark(data, out, chosen, [t.strip() for t in tasks.split(",")], preset, folds, seed, overrides,
                      engine, feature_path, {"epochs": cgan_epochs, "width": 16, "num_threads": 1}, log=typer.echo)
    typer.echo(f"wrote {out / 'balance.html'} and {out / 'balance.md'}")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_cmd)
    app.command("balance-benchmark")(balance_benchmark_cmd)
