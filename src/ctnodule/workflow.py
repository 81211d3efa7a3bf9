"""`ctnodule run`: the main job — every stage, in order, on one dataset, ending in one index page.

import (the synthetic demo phantom unless a slice dataset is given) -> explore -> preprocess (the
before/after report) -> train the classifiers the data supports ({full, nodule} x {binary, multiclass},
patient-grouped CV, default preset) -> explain (Grad-CAM + localisation) -> `report.html` linking every
stage's report with the headline metrics. Each stage writes its own folder under `out`, so any number on
the index page can be traced to the run folder that produced it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ctnodule.atomic import atomic_dir
from ctnodule.data.dataset import SliceDataset
from ctnodule.errors import CTNoduleError
from ctnodule.pages import HtmlReport
from ctnodule.recipe import TrainConfig
from ctnodule.runfolder import read_metrics
from ctnodule.vocab import TASKS

HEADLINE = ("n", "roc_auc", "accuracy", "balanced_accuracy", "f1_macro", "qwk", "within_one")


def train_and_report(data: str | Path | SliceDataset, out: str | Path, cfg: TrainConfig, resume: bool = False,
                     force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Train `cfg` on `data` into the run folder `out`, score it (metrics.json) and write its model card:
    the three stages `ctnodule train` runs. Returns the run folder."""
    from ctnodule.evaluate.summary import score_run
    from ctnodule.report.model_card import write_model_card
    from ctnodule.train.api import train

    run = train(data, out, cfg, resume=resume, force=force, log=log)
    score_run(run, data.root if isinstance(data, SliceDataset) else data)
    write_model_card(run)
    return run


def run_all(data: str | Path | None, out: str | Path, *, folds: int = 5, patients: int = 60, seed: int = 0,
            explain_n: int = 24, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Run every stage on `data` (None: a freshly generated synthetic phantom) into `out`; returns the index page."""
    from ctnodule.data.explore import explore
    from ctnodule.data.importers.synthetic import import_synthetic
    from ctnodule.explain.stage import explain_run
    from ctnodule.preprocess.dataset import preprocess_dataset
    from ctnodule.recipe import load_preset

    out = Path(out)
    with atomic_dir(out, force=force) as tmp:
        stages: list[dict] = []
        t0 = time.perf_counter()
        if data is None:
            log(f"[1/5] import: generating the synthetic demo phantom ({patients} patients)")
            import_synthetic(tmp / "data", patients=patients, seed=seed)
            data_dir, synthetic = tmp / "data", True
        else:
            data_dir, synthetic = Path(data), False
        dataset = SliceDataset(data_dir)
        stages.append(_stage("import", "data", time.perf_counter() - t0, f"{len(dataset)} samples"))

        log("[2/5] explore")
        t = time.perf_counter()
        explore(data_dir, tmp / "explore")
        stages.append(_stage("explore", "explore/report.html", time.perf_counter() - t))

        log("[3/5] preprocess")
        t = time.perf_counter()
        preprocess_dataset(data_dir, tmp / "preprocessed")
        stages.append(_stage("preprocess", "preprocessed/report.html", time.perf_counter() - t))

        views = [v for v in ("nodule", "full") if (dataset.frame["view"] == v).any()]
        results = []
        for view in views:
            for task in TASKS:
                name = f"{view}-{task}"
                log(f"[4/5] train {name}")
                t = time.perf_counter()
                cfg = load_preset("default", view=view, task=task, folds=folds, seed=seed)
                try:
                    train_and_report(dataset, tmp / "runs" / name, cfg, log=log)
                except CTNoduleError as exc:  # e.g. too few patients of a class for k folds
                    log(f"  skipped {name}: {exc}")
                    stages.append(_stage(f"train {name}", None, time.perf_counter() - t, f"skipped: {exc}"))
                    continue
                metrics = read_metrics(tmp / "runs" / name)
                results.append({"classifier": name, **{k: metrics.get(k) for k in HEADLINE},
                                "size baseline AUC": metrics.get("baselines", {}).get("size", {}).get("roc_auc")})
                stages.append(_stage(f"train {name}", f"runs/{name}/report.html", time.perf_counter() - t))
                if task == "binary":
                    log(f"[5/5] explain {name}")
                    t = time.perf_counter()
                    explain_run(tmp / "runs" / name, dataset, tmp / "explain" / name, n=explain_n, seed=seed,
                                log=log)
                    stages.append(_stage(f"explain {name}", f"explain/{name}/report.html", time.perf_counter() - t))
        page = _index(tmp, data_dir if data is not None else "synthetic phantom (generated)", synthetic,
                      stages, results, time.perf_counter() - t0)
    log(f"done in {time.perf_counter() - t0:.0f} s: {out / page.name}")
    return out / page.name


def _stage(name: str, link: str | None, seconds: float, note: str = "") -> dict:
    return {"stage": name, "report": link, "seconds": round(seconds, 1), "note": note}


def _index(root: Path, data: str | Path, synthetic: bool, stages: list[dict], results: list[dict],
           seconds: float) -> Path:
    report = HtmlReport("ctnodule run", f"data: {data} — {seconds:.0f} s on this machine")
    if synthetic:
        report.paragraph("SYNTHETIC DATA: every number below comes from a generated CT phantom, not from "
                         "patients. It shows the pipeline works; it says nothing about clinical accuracy.")
    report.heading("Classifiers (patient-grouped cross-validation, out-of-fold)")
    if results:
        report.table(pd.DataFrame(results))
    else:
        report.paragraph("No classifier could be trained on this dataset (see the stage notes).")
    report.heading("Stages")
    rows = [{**s, "report": s["report"] or ""} for s in stages]
    report.table(pd.DataFrame(rows), float_format="{:.1f}")
    links = "".join(f'<li><a href="{s["report"]}">{s["stage"]}</a></li>' for s in stages if s["report"])
    report.html(f"<ul>{links}</ul>")
    return report.save(root / "report.html")
