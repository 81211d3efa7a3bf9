"""`ctnodule run`: the main job — every stage, in order, on one dataset, ending in one index page.

import (the synthetic demo phantom unless a slice dataset is given) -> explore -> preprocess (the
before/after report) -> train the classifiers the data supports ({full, nodule} x {binary, multiclass},
patient-grouped CV, default preset) -> explain each classifier (Grad-CAM + localisation) -> `report.html`
linking every stage's report with the headline metrics. Each stage writes its own folder under `out`, so
any number on the index page can be traced to the run folder that produced it; every page links back to
the index and carries the synthetic-data banner when the data is generated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ctnodule.atomic import atomic_dir, final_path
from ctnodule.data.dataset import SliceDataset
from ctnodule.data.manifest import synthetic_info
from ctnodule.errors import CTNoduleError
from ctnodule.pages import MISSING, HtmlReport, shown_path, synthetic_banner
from ctnodule.recipe import TrainConfig
from ctnodule.runfolder import read_config, read_metrics, write_config
from ctnodule.vocab import TASKS

#: the index's columns (every metric is on each model card)
HEADLINE = ("roc_auc", "accuracy", "qwk", "within_one")
INDEX = "report.html"


def train_and_report(data: str | Path | SliceDataset, out: str | Path, cfg: TrainConfig, resume: bool = False,
                     force: bool = False, log: Callable[[str], None] = print, index: Path | None = None) -> Path:
    """Train `cfg` on `data` into the run folder `out`, score it (metrics.json) and write its model card:
    the three stages `ctnodule train` runs. Returns the run folder.

    With `force` an existing run is replaced only when the new one is complete, model card included: the
    three stages write into a temporary sibling folder that is renamed into place at the end.

    config.yaml gets `data_synthetic` (how much of the data was generated; the model card's banner) and
    the data's final location when it sits in a folder still being built. `index`: the page the model
    card links back to."""
    from ctnodule.evaluate.summary import score_run
    from ctnodule.report.model_card import write_model_card
    from ctnodule.train.api import check_before_training, train

    out = Path(out)
    if force and out.is_dir() and any(out.iterdir()):
        check_before_training(data, out, cfg, resume, force, log=lambda m: None)  # before the temp folder
        with atomic_dir(out, force=True) as tmp:
            train_and_report(data, tmp, cfg, log=log, index=index)
        return out
    run = train(data, out, cfg, resume=resume, force=force, log=log)
    dataset = data if isinstance(data, SliceDataset) else SliceDataset(data)
    config = read_config(run)
    write_config(run, {**config, "data": str(final_path(config["data"])),
                       "data_synthetic": synthetic_info(dataset.view(cfg.view).frame)})
    score_run(run, dataset.root)
    write_model_card(run, index=index)
    return run


def run_all(data: str | Path | None, out: str | Path, *, folds: int = 5, patients: int = 60, seed: int = 0,
            explain_n: int = 24, force: bool = False, log: Callable[[str], None] = print,
            device: str = "cpu") -> Path:
    """Run every stage on `data` (None: a freshly generated synthetic phantom) into `out`; returns the index page.
    `device` (cpu | cuda | cuda:N) runs training and Grad-CAM; it is checked before any work."""
    from ctnodule.data.explore import explore
    from ctnodule.data.importers.synthetic import import_synthetic
    from ctnodule.explain.stage import explain_run
    from ctnodule.preprocess.dataset import preprocess_dataset
    from ctnodule.recipe import load_preset
    from ctnodule.runtime import check_device

    check_device(device)
    out = Path(out)
    with atomic_dir(out, force=force) as tmp:
        index = tmp / INDEX  # written last; every stage's page links back to it
        stages: list[dict] = []
        t0 = time.perf_counter()
        if data is None:
            log(f"[1/5] import: generating the synthetic demo phantom ({patients} patients)")
            import_synthetic(tmp / "data", patients=patients, seed=seed)
            data_dir = tmp / "data"
        else:
            data_dir = Path(data)
        dataset = SliceDataset(data_dir)
        stages.append(_stage("import", "data/manifest.csv" if data is None else None, time.perf_counter() - t0,
                             f"{len(dataset)} samples"))

        log("[2/5] explore")
        t = time.perf_counter()
        explore(data_dir, tmp / "explore", index=index)
        stages.append(_stage("explore", "explore/report.html", time.perf_counter() - t))

        log("[3/5] preprocess")
        t = time.perf_counter()
        preprocess_dataset(data_dir, tmp / "preprocessed", index=index)
        stages.append(_stage("preprocess", "preprocessed/report.html", time.perf_counter() - t))

        views = [v for v in ("nodule", "full") if (dataset.frame["view"] == v).any()]
        results = []
        for view in views:
            for task in TASKS:
                name = f"{view}-{task}"
                log(f"[4/5] train {name}")
                t = time.perf_counter()
                cfg = load_preset("default", view=view, task=task, folds=folds, seed=seed, device=device)
                try:
                    train_and_report(dataset, tmp / "runs" / name, cfg, log=log, index=index)
                except CTNoduleError as exc:  # e.g. too few patients of a class for k folds
                    log(f"  skipped {name}: {exc}")
                    stages.append(_stage(f"train {name}", None, time.perf_counter() - t, f"skipped: {exc}"))
                    continue
                results.append(_headline(name, read_metrics(tmp / "runs" / name)))
                stages.append(_stage(f"train {name}", f"runs/{name}/report.html", time.perf_counter() - t))
                log(f"[5/5] explain {name}")
                t = time.perf_counter()
                # the deletion test costs hundreds of forward passes per map: 8 nodule crops show the verdict;
                # on 512 x 512 full slices it is left to `ctnodule explain --faithfulness N`
                explain_run(tmp / "runs" / name, dataset, tmp / "explain" / name, n=explain_n, seed=seed,
                            device=device, log=log, index=index, faithfulness=8 if view == "nodule" else 0)
                stages.append(_stage(f"explain {name}", f"explain/{name}/report.html", time.perf_counter() - t))
        shown = f"{shown_path(data_dir, tmp)}/ (a CT phantom generated for this run)" if data is None else str(data)
        page = _index(index, shown, synthetic_info(dataset.frame), stages, results, time.perf_counter() - t0)
    log(f"done in {time.perf_counter() - t0:.0f} s: {out / page.name}")
    return out / page.name


def _stage(name: str, link: str | None, seconds: float, note: str = "") -> dict:
    return {"stage": name, "report": link, "seconds": round(seconds, 1), "note": note}


def _headline(name: str, metrics: dict) -> dict:
    """One index row: each headline metric with its 95 % patient-bootstrap CI where one was computed, and
    the report that explains it. Metrics a task does not define stay None (shown as "—")."""
    ci = metrics.get("ci", {})
    row: dict = {"classifier": name, "n": metrics.get("n")}
    for key in HEADLINE:
        value, (lo, hi) = metrics.get(key), ci.get(key) or (None, None)
        # no-break spaces: a value and its CI stay on one line
        row[key] = None if value is None else f"{value:.3f}" + ("" if lo is None else f"\u00a0[{lo:.3f},\u00a0{hi:.3f}]")
    size = metrics.get("baselines", {}).get("size", {}).get("roc_auc")
    row["size baseline AUC"] = None if size is None else f"{size:.3f}"
    row["report"] = f"runs/{name}/report.html"
    return row


def _index(path: Path, data: str, synthetic: dict | None, stages: list[dict], results: list[dict],
           seconds: float) -> Path:
    report = HtmlReport("ctnodule run", f"data: {data} — {seconds:.0f} s on this machine",
                        banner=synthetic_banner(synthetic))
    report.heading("Classifiers (patient-grouped cross-validation, out-of-fold)")
    if results:
        report.table(pd.DataFrame(results), links={"report": "model\u00a0card"},
                     caption=f"Pooled out-of-fold metrics with 95 % patient-bootstrap CIs. {MISSING}: not "
                     "defined for that classifier — QWK and within-one measure ordinal agreement on the 5 "
                     "malignancy grades and have no meaning for the binary task; a CI is missing where the "
                     "bootstrap could not compute one.")
    else:
        report.paragraph("No classifier could be trained on this dataset (see the stage notes).")
    report.heading("Stages")
    report.table(pd.DataFrame(stages), float_format="{:.1f}", links={"report": None},
                 caption="Each stage's own report (import: the generated dataset's manifest).")
    return report.save(path)
