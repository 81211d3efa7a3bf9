"""The `ctnodule` command line: a thin typer app, the top floor of the house.

Each stage module exposes `register(app)`, adding its own commands; the commands that chain several stages
live here: `train` (train -> score -> model card), `predict` (predict, + explain with --explain) and `run`
(every stage). A command parses its options, calls public stage functions and prints. Stage modules are
imported inside the commands, so `ctnodule --help` never pays for torch.

Exit codes: 0 done; 2 usage error (an unknown option or a bad option value, printed by click); 3 a
`CTNoduleError` (bad data, config or run folder), printed as one line; 130 interrupted (Ctrl-C or SIGTERM,
after the temporary folders are removed). Any other exception is a bug and keeps its traceback. Warnings
are printed as one line each ("warning: ..."), each text once.
"""

from __future__ import annotations

import re
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

import ctnodule
from ctnodule.errors import CTNoduleError
from ctnodule.vocab import Head, Imbalance, LabelMode, Task, View

#: the order `ctnodule --help` lists the commands in: the order data walks through them
PIPELINE = ("import", "explore", "preprocess", "synthesize", "train", "export", "predict", "evaluate", "explain",
            "benchmark", "balance-benchmark", "run", "serve")


class _PipelineOrder(TyperGroup):
    """typer lists sub-apps (`import`) after plain commands; list every command in pipeline order instead."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: PIPELINE.index(n) if n in PIPELINE else len(PIPELINE))


app = typer.Typer(
    name="ctnodule",
    cls=_PipelineOrder,
    help="Lung-nodule malignancy from CT slices: import, explore, preprocess, train, evaluate, explain.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print patient paths/ids held in locals
    add_completion=False,
)

Run = Annotated[Path, typer.Argument(help="Run folder from `ctnodule train`, or a bundle from `ctnodule export` "
                                          "(runs with onnxruntime, without torch).")]
Device = Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (default: the preset's, cpu).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctnodule {ctnodule.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Lung-nodule malignancy from CT slices: import, explore, preprocess, train, evaluate, explain."""


def train_cmd(
    data: Annotated[Path, typer.Argument(help="Slice dataset folder (manifest.csv).")],
    out: Annotated[Path, typer.Option(help="Run folder to write.")],
    view: Annotated[View, typer.Option(help="Which samples: the full slice or the nodule crop.")] = "nodule",
    task: Annotated[Task, typer.Option(help="binary (1-3 vs 4-5) or multiclass (1..5).")] = "binary",
    preset: Annotated[str | None, typer.Option(help="Recipe: 'default' (ours, tuned by patient-grouped CV), 'fast' "
                                                    "(default without the image network: descriptors only), "
                                                    "'nodule-cnn' (nodule-scale CNN + descriptors), 'find-crop' "
                                                    "(full slices: find the nodule, judge its crop) or 'seed' "
                                                    "(the original report's). Default: 'default' for the "
                                                    "nodule view, the best measured for the full view.")] = None,
    preprocess: Annotated[str | None, typer.Option(help="Preprocessing recipe: default | seed | PATH to a recipe "
                                                        "YAML (e.g. an edited configs/preprocess-*.yaml).")] = None,
    backbone: Annotated[str | None, typer.Option(help="timm backbone name (default: the preset's).")] = None,
    head: Annotated[Head | None, typer.Option(help="Classifier head (svm/logreg need --frozen).")] = None,
    freeze: Annotated[bool | None, typer.Option("--frozen/--finetune",
                                                help="Frozen backbone (cached features) or fine-tune it.")] = None,
    tabular: Annotated[str | None, typer.Option(
        help="Tabular inputs: none | size | descriptors | radiomics (3D, import voi --radiomics) | radiomics2d.")] = None,
    folds: Annotated[int | None, typer.Option(min=2, help="k of patient-grouped k-fold CV (default 5).")] = None,
    holdout: Annotated[float | None, typer.Option(help="Instead of CV: one patient-grouped split with this share "
                                                       "held out (e.g. 0.2).")] = None,
    weights: Annotated[str | None, typer.Option(help="auto | none | PATH to a state dict. 'none' = random init "
                                                     "(DANGER: weak on LIDC-sized data).")] = None,
    imbalance: Annotated[Imbalance | None, typer.Option(help="Class-imbalance method.")] = None,
    calibration: Annotated[str | None, typer.Option(help="svm/logreg heads: none | platt | isotonic, fitted on "
                                                         "patient-grouped inner folds of each training fold.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum epochs (default: the preset's).")] = None,
    labels: Annotated[LabelMode | None, typer.Option(help="Training targets of the ordinal image model (preset "
                                                          "nodule-cnn) or the logistic head (default): the max-vote "
                                                          "label, the readers' mean or their distribution. "
                                                          "Evaluation always uses the max-vote label.")] = None,
    mask_augment: Annotated[bool | None, typer.Option("--mask-augment/--no-mask-augment",
                                                      help="svm/logreg heads: train also on each sample outlined by "
                                                           "the automatic segmentation (default: the preset's).")] = None,
    segmenter: Annotated[str | None, typer.Option(help="How predict outlines a nodule located in a CT: classical | "
                                                       "learned (a U-Net fitted per fold on the training "
                                                       "nodules). Default: the preset's.")] = None,
    device: Device = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (splits, init, augmentation); recorded.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run folder.")] = False,
) -> None:
    """Train a classifier with patient-grouped CV and write a self-contained run folder + model card."""
    from ctnodule.recipe import default_preset, load_preset
    from ctnodule.workflow import train_and_report

    cfg = load_preset(preset or default_preset(view), view=view, task=task, backbone=backbone, head=head, freeze_backbone=freeze,
                      tabular=tabular, folds=folds, holdout=holdout, weights=weights, imbalance=imbalance,
                      calibration=calibration, epochs=epochs, labels=labels, device=device, seed=seed,
                      preprocess=preprocess, mask_augment=mask_augment, segmenter=segmenter)
    try:
        run = train_and_report(data, out, cfg, resume=resume, force=force, log=typer.echo)
    except KeyboardInterrupt as exc:
        if force:
            raise KeyboardInterrupt(f"{out} is unchanged (the new run was not complete)") from exc
        raise KeyboardInterrupt(f"{out} keeps the finished folds and the last epoch's checkpoint; run the same "
                                "command with --resume to continue") from exc
    typer.echo(f"model card: {run / 'report.html'}")


def predict_cmd(
    run: Run,
    inputs: Annotated[list[Path], typer.Argument(help="A CT volume (DICOM series folder, 3D NIfTI/NRRD) with "
                                                      "nodule locations, or NRRD/NIfTI/DICOM slices in HU, or "
                                                      "slice-dataset folders.")],
    out: Annotated[Path, typer.Option(help="CSV to write.")] = Path("predictions.csv"),
    at: Annotated[list[str] | None, typer.Option("--at", help="Nodule location X,Y,Z in world mm (DICOM/LUNA16 "
                                                              "patient coordinates); repeatable.")] = None,
    at_voxel: Annotated[list[str] | None, typer.Option("--at-voxel", help="Nodule location as voxel i,j,k "
                                                                          "(column, row, slice); repeatable.")] = None,
    candidates: Annotated[Path | None, typer.Option(help="LUNA16-layout CSV (seriesuid,coordX,coordY,coordZ) of "
                                                         "nodule locations.")] = None,
    series: Annotated[str | None, typer.Option("--series", help="SeriesInstanceUID to read when the folder holds "
                                                                "several series.")] = None,
    mask: Annotated[list[Path] | None, typer.Option(help="Nodule mask: one per image file, or one 3D mask on the "
                                                         "volume's grid (replaces automatic segmentation).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add a Grad-CAM heat map per prediction "
                                                            "(PNG overlay + NRRD map beside the CSV).")] = False,
    method: Annotated[str, typer.Option(help="CAM method for --explain (gradcam, gradcam++, ...).")] = "gradcam",
    spacing: Annotated[float | None, typer.Option(min=0.001, help="Pixel size in mm for files whose header gives "
                                                                  "none (otherwise such a file is refused).")] = None,
    allow: Annotated[list[str] | None, typer.Option(help="Accept an input the checks refuse: 'volume' (use a 3D "
                                                         "volume's middle slice), '0-255' (values in 0..255 that "
                                                         "really are HU).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N (checked before any work).")] = "cpu",
) -> None:
    """Predict class probabilities and a malignancy score for each input, or for each nodule of a CT
    volume (segmented automatically from its location unless --mask is given)."""
    from ctnodule.errors import ConfigError
    from ctnodule.predict.volume import check_location_options, is_volume

    located = bool(at or at_voxel or candidates)
    if any(is_volume(p) for p in inputs) and (located or "volume" not in (allow or ())):
        from ctnodule.explain.ct import predict_ct

        if len(inputs) != 1 or (mask and len(mask) != 1):
            raise ConfigError("give one CT volume per call (and at most one --mask, on its grid)")
        frame = predict_ct(run, inputs[0], out, at=at or [], at_voxels=at_voxel or [], candidates=candidates,
                           series_uid=series, mask=mask[0] if mask else None, method=method if explain else None,
                           force=force, device=device)
    else:
        check_location_options(at or [], at_voxel or [], candidates)
        options = {"masks": mask or None, "spacing": spacing, "allow": tuple(allow or ()), "force": force,
                   "device": device}
        if explain:
            from ctnodule.explain.heatmaps import predict_with_heatmaps

            frame = predict_with_heatmaps(run, inputs, out, method=method, **options)
        else:
            from ctnodule.predict.apply import predict_files

            frame = predict_files(run, inputs, out, **options)
    typer.echo(f"{len(frame)} prediction(s) -> {out}")


def run_cmd(
    data: Annotated[Path | None, typer.Argument(help="Slice dataset folder; default: a generated synthetic "
                                                     "phantom.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for every stage's output and the index report.html "
                                                  "(default: runs/<DATA's folder name>, runs/phantom without "
                                                  "DATA).")] = None,
    folds: Annotated[int, typer.Option(min=2, help="k of the patient-grouped cross-validation.")] = 5,
    patients: Annotated[int, typer.Option(min=5, help="Phantom patients to generate when no DATA is given.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed for the phantom, splits and training; recorded in every run.")] = 0,
    device: Device = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT (only once the new run has finished).")] = False,
) -> None:
    """The main job: import -> explore -> preprocess -> train every classifier -> explain -> one report."""
    from ctnodule.workflow import run_all

    if out is None:
        out = Path("runs") / (data.resolve().name if data is not None else "phantom")
    page = run_all(data, out, folds=folds, patients=patients, seed=seed, device=device or "cpu", force=force,
                   log=typer.echo)
    typer.echo(f"open {page}")


def _register_commands() -> None:
    """Every stage's commands (`--help` lists them in `PIPELINE` order)."""
    from ctnodule.balance import commands as balance_commands
    from ctnodule.data import commands as data_commands
    from ctnodule.evaluate import commands as evaluate_commands
    from ctnodule.explain import commands as explain_commands
    from ctnodule.export import commands as export_commands
    from ctnodule.preprocess import commands as preprocess_commands
    from ctnodule.serve import commands as serve_commands
    from ctnodule.studies import commands as studies_commands

    data_commands.register(app)
    preprocess_commands.register(app)
    balance_commands.register(app)
    app.command("train")(train_cmd)
    app.command("predict")(predict_cmd)
    evaluate_commands.register(app)
    explain_commands.register(app)
    export_commands.register(app)
    studies_commands.register(app)
    app.command("run")(run_cmd)
    serve_commands.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (exit codes in the module docstring)."""
    from ctnodule.runtime import tune_malloc

    tune_malloc()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("once", category=UserWarning)
            warnings.showwarning = _show_warning
            # standalone: click prints usage errors (exit 2) and --help itself, typer turns Ctrl-C into exit 130
            app(args=argv)
    except CTNoduleError as exc:
        typer.secho(f"error: {plain(str(exc))}", fg=typer.colors.RED, err=True)
        sys.exit(3)
    except SystemExit as exc:  # click ends even a success with sys.exit(0); return instead, so callers can go on
        if exc.code == 130:
            typer.secho(f"interrupted{_interruption(exc)}", fg=typer.colors.YELLOW, err=True)
        if exc.code not in (0, None):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def plain(text: str) -> str:
    """`text` with numpy's scalar reprs (`np.int64(6)`, `np.float64(0.5)`) shown as the plain numbers."""
    return re.sub(r"np\.(?:u?int|float|bool_?)\d*\(([^()]*)\)", r"\1", text)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C: temporary folders are removed, finished checkpoints kept."""
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.secho(f"warning: {plain(' '.join(str(message).split()))}", fg=typer.colors.YELLOW, err=True)


def _interruption(exc: BaseException) -> str:
    """': <what to do>' from the KeyboardInterrupt behind typer's exit 130, if it says anything."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt) and str(seen):
            return f": {plain(str(seen))}"
        seen = seen.__cause__ or seen.__context__
    return ""


if __name__ == "__main__":
    main()
