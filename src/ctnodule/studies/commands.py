"""CLI commands of the studies: `ctnodule benchmark` (backbones) and `ctnodule balance-benchmark`."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from ctnodule.vocab import IMBALANCE, TASKS, VIEWS, Head

# typer checks the values of a repeated option only through an Enum (a list of Literal is not supported)
ViewName = enum.Enum("ViewName", {v: v for v in VIEWS}, type=str)
TaskName = enum.Enum("TaskName", {t: t for t in TASKS}, type=str)
ImbalanceName = enum.Enum("ImbalanceName", {m: m for m in IMBALANCE}, type=str)

Device = Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (default: the preset's, cpu).")]


def benchmark_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset folder.")],
    out: Annotated[Path, typer.Option(help="Folder for runs/, benchmark.md and benchmark.html.")],
    backbones: Annotated[list[str] | None, typer.Option("--backbones", help="Backbones to compare (repeat).")] = None,
    views: Annotated[list[ViewName] | None, typer.Option("--views", help="Views to include (repeat; default: all "
                                                                     "present).")] = None,
    preset: Annotated[str, typer.Option(help="Recipe: 'default' or 'seed'.")] = "default",
    folds: Annotated[int, typer.Option(min=2, help="k of patient-grouped k-fold CV.")] = 5,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum epochs (default: the preset's).")] = None,
    device: Device = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs that already exist.")] = False,
) -> None:
    """Backbones x views x tasks with patient-grouped CV: mean ± sd tables (Markdown + HTML)."""
    from ctnodule.runtime import check_device
    from ctnodule.studies.backbones import DEFAULT_BACKBONES, benchmark

    if device is not None:
        check_device(device)
    folder, _ = benchmark(data, out, backbones or DEFAULT_BACKBONES, preset=preset, folds=folds, force=force,
                          views=[v.value for v in views or ()] or None, log=typer.echo, epochs=epochs, device=device)
    typer.echo((folder / "benchmark.md").read_text(encoding="utf-8"))


def balance_benchmark_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset (nodule view used by the preset).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (runs/, balance.html, balance.csv).")],
    methods: Annotated[list[ImbalanceName] | None, typer.Option("--methods", help="Balancers to compare (repeat; "
                                                                             "default: all).")] = None,
    tasks: Annotated[list[TaskName] | None, typer.Option("--tasks", help="Tasks (repeat; default: binary and "
                                                                     "multiclass).")] = None,
    preset: Annotated[str, typer.Option(help="Recipe: 'default' or 'seed'.")] = "default",
    folds: Annotated[int, typer.Option(min=2, help="k of patient-grouped k-fold CV.")] = 5,
    seed: Annotated[int, typer.Option(help="Split and training seed.")] = 0,
    head: Annotated[Head | None, typer.Option(help="Override the preset's head. A scikit-learn head (logreg, "
                                              "svm) takes class weights but no loss, so focal/logit_adjusted act "
                                              "only with a torch head (linear, mlp, seed).")] = None,
    engine: Annotated[bool, typer.Option(help="Run each method through `ctnodule train` (minutes per run).")] = True,
    feature_path: Annotated[bool, typer.Option(help="Also the fast frozen-feature path (all methods incl. "
                                                    "pixel SMOTE and cGAN).")] = True,
    cgan_epochs: Annotated[int, typer.Option(min=1, help="cGAN epochs per fold (feature path).")] = 150,
    diffusion_epochs: Annotated[int, typer.Option(min=1, help="Diffusion model epochs per fold (feature "
                                                              "path).")] = 60,
    device: Device = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs that already exist.")] = False,
) -> None:
    """Compare the class-imbalance methods on DATA with patient-grouped CV (one table per task)."""
    from ctnodule.runtime import check_device
    from ctnodule.studies.balancing import ALL, balance_benchmark

    if device is not None:
        check_device(device)
    overrides = {"device": device} if head is None else {"head": head, "head_params": {}, "device": device}
    balance_benchmark(data, out, [m.value for m in methods or ()] or list(ALL), [t.value for t in tasks or ()] or list(TASKS), preset, folds, seed, overrides,
                      engine, feature_path, {"cgan": {"epochs": cgan_epochs, "width": 16, "num_threads": 1},
                                             "diffusion": {"epochs": diffusion_epochs, "num_threads": 1}},
                      log=typer.echo, force=force)
    typer.echo(f"wrote {out / 'balance.html'} and {out / 'balance.md'}")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark_cmd)
    app.command("balance-benchmark")(balance_benchmark_cmd)
