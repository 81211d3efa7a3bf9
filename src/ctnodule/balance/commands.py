"""CLI commands of the balance stage: `ctnodule synthesize` (and `ctnodule balance-benchmark`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def synthesize_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset to learn from (its nodule view).")],
    per_class: Annotated[int, typer.Option("--per-class", min=1, help="Synthetic samples per malignancy class.")],
    out: Annotated[Path, typer.Option("--out", help="Output slice dataset folder (synthetic=1).")],
    view: Annotated[str, typer.Option(help="Only 'nodule' (64 x 64 crops) is supported.")] = "nodule",
    epochs: Annotated[int, typer.Option(min=1, help="GAN training epochs (~7 s each on 800 crops, 2 cores).")] = 30,
    seed: Annotated[int, typer.Option(help="Seed for training and sampling.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing OUT folder.")] = False,
) -> None:
    """Train a conditional GAN on DATA and write synthetic nodule slices + a quality report (KID/FID)."""
    from ctnodule.balance.synthesize import synthesize

    s = synthesize(data, out, per_class, view=view, epochs=epochs, seed=seed, force=force, log=typer.echo)
    typer.echo(f"wrote {s['n_written']} synthetic samples to {s['out']} (cGAN {s['fit_seconds']:.0f} s); "
               f"KID {s['kid']:.4f} (real-vs-real {s['kid_reference']:.4f}), FID {s['fid']:.1f} "
               f"(real-vs-real {s['fid_reference']:.1f}); report: {Path(s['out']) / 'report.html'}")




def balance_benchmark_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset (nodule view used by the preset).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (runs/, balance.html, balance.csv).")],
    methods: Annotated[str, typer.Option(help="Comma-separated balancers, or 'all'.")] = "all",
    tasks: Annotated[str, typer.Option(help="Comma-separated: binary,multiclass.")] = "binary,multiclass",
    preset: Annotated[str, typer.Option(help="Training preset (seed or default).")] = "default",
    folds: Annotated[int, typer.Option(min=2, help="Patient-grouped CV folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Split and training seed.")] = 0,
    head: Annotated[str | None, typer.Option(help="Override the preset's head. A scikit-learn head (logreg, "
                                             "svm) takes class weights but no loss, so focal/logit_adjusted act only "
                                             "with a torch head (linear, mlp, seed).")] = None,
    engine: Annotated[bool, typer.Option(help="Run each method through `ctnodule train` (minutes per run).")] = True,
    feature_path: Annotated[bool, typer.Option(help="Also the fast frozen-feature path (all methods incl. "
                                                    "pixel SMOTE and cGAN).")] = True,
    cgan_epochs: Annotated[int, typer.Option(min=1, help="cGAN epochs per fold (feature path).")] = 15,
) -> None:
    """Compare the class-imbalance methods on DATA with patient-grouped CV (one table per task)."""
    from ctnodule.balance.benchmark import ALL, balance_benchmark

    chosen = list(ALL) if methods == "all" else [m.strip() for m in methods.split(",") if m.strip()]
    overrides = {} if head is None else {"head": head, "head_params": {}}
    balance_benchmark(data, out, chosen, [t.strip() for t in tasks.split(",")], preset, folds, seed, overrides,
                      engine, feature_path, {"epochs": cgan_epochs, "width": 16, "num_threads": 1}, log=typer.echo)
    typer.echo(f"wrote {out / 'balance.html'} and {out / 'balance.md'}")


def register(app: typer.Typer) -> None:
    app.command("synthesize")(synthesize_cmd)
    app.command("balance-benchmark")(balance_benchmark_cmd)
