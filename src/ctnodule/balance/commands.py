"""CLI command of the balance stage: `ctnodule synthesize`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer


def synthesize_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset to learn from (its nodule view).")],
    per_class: Annotated[int, typer.Option("--per-class", min=1, help="Synthetic samples per malignancy class.")],
    out: Annotated[Path, typer.Option("--out", help="Output slice dataset folder (synthetic=1).")],
    view: Annotated[Literal["nodule"], typer.Option(help="Only 'nodule' (64 x 64 crops) is supported.")] = "nodule",
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs (on 800 crops ~3 CPU s each for "
                                                           "cgan, ~4 for diffusion); default: cgan 300, "
                                                           "diffusion 200.")] = None,
    generator: Annotated[Literal["cgan", "diffusion"], typer.Option(help="diffusion (conditional diffusion model: "
                                                                         "KID 0.11, recall 0.13 on the dev VOIs) or "
                                                                         "cgan (conditional GAN: KID 0.25, recall "
                                                                         "0.00).")] = "diffusion",
    seed: Annotated[int, typer.Option(help="Seed for training and sampling.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (only once the new dataset is "
                                                        "complete).")] = False,
) -> None:
    """Train a conditional generator on DATA and write synthetic nodule slices + masks + a quality report."""
    from ctnodule.balance.synthesize import synthesize

    s = synthesize(data, out, per_class, view=view, epochs=epochs, seed=seed, force=force,
                   generator=generator, log=typer.echo)
    typer.echo(f"wrote {s['n_written']} synthetic samples + masks to {s['out']} ({generator} {s['fit_seconds']:.0f} s, "
               f"{s['fit_cpu_seconds']:.0f} CPU s); KID {s['kid']:.4f} (real-vs-real {s['kid_reference']:.4f}), "
               f"FID {s['fid']:.1f} (real-vs-real {s['fid_reference']:.1f}), precision {s['precision']:.2f}, "
               f"recall {s['recall']:.2f}; report: {Path(s['out']) / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("synthesize")(synthesize_cmd)
