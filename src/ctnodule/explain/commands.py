"""CLI command of the explain stage: `ctnodule explain RUN DATA --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

_RUN = typer.Argument(..., help="Trained run folder (from `ctnodule train`).")
_DATA = typer.Argument(..., help="Slice dataset to explain (its samples of the run's view).")
_OUT = typer.Option(..., "--out", help="Output folder: samples/*.png, localization.json, report.html.")


def explain_cmd(
    run: Path = _RUN,
    data: Path = _DATA,
    out: Path = _OUT,
    method: str = typer.Option("gradcam", help="CAM method: gradcam, gradcam++, hirescam, xgradcam, layercam, "
                               "eigencam, eigengradcam, scorecam (slow on CPU)."),
    n: int | None = typer.Option(None, min=1, help="Explain N samples, drawn class by class (default: all)."),
    layer: str | None = typer.Option(None, help="Layer to explain by module name (default: the last "
                                        "convolutional layer, found automatically)."),
    target: int | None = typer.Option(None, min=0, help="Class index to explain (default: the predicted one)."),
    tolerance: float = typer.Option(0.0, min=0.0, help="Pointing game: pixels the maximum may miss the nodule by."),
    faithfulness: int = typer.Option(40, min=0, help="Check the first N maps for faithfulness: occlusion "
                                     "sensitivity and the deletion test against random pixels (0: skip)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists (only once the new one is complete)."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N (checked before any work)."),
) -> None:
    """Grad-CAM heat maps, how much of each falls on the nodule, and a gallery of correct vs wrong."""
    import json

    from ctnodule.explain.stage import explain_run

    folder = explain_run(run, data, out, method=method, n=n, layer=layer, target=target, tolerance=tolerance,
                         force=force, device=device, faithfulness=faithfulness)
    loc = json.loads((folder / "localization.json").read_text(encoding="utf-8"))
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    typer.echo(f"{loc['n']} samples ({loc['n_scored']} with a nodule outline): heat on nodule "
               f"{fmt(loc['mean_cam_in_mask'])} (flat map {fmt(loc['mean_area_fraction'])}, lift "
               f"{fmt(loc['mean_lift'])}x), pointing game "
               f"{fmt(loc['pointing_game'])}; nodule grown by 3 mm: heat {fmt(loc.get('mean_cam_in_mask_3mm'))} "
               f"(flat map {fmt(loc.get('mean_area_fraction_3mm'))}), pointing game "
               f"{fmt(loc.get('pointing_game_3mm'))}; layer {', '.join(loc['layers'])}")
    for name, f in (loc.get("faithfulness") or {}).items():
        if isinstance(f, dict):
            typer.echo(f"deletion test, {name}: area between random and map curves {f['area_between_random']:+.3f} "
                       f"[{f['ci'][0]:+.3f}, {f['ci'][1]:+.3f}] over {f['n']} maps: {f['verdict']}")
    if loc.get("finer_layer"):
        typer.echo(f"note: the map is only {loc['grid'][0]} x {loc['grid'][1]} cells; for a finer one try "
                   f"--layer {loc['finer_layer']}")
    typer.echo(f"report: {folder / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_cmd)
