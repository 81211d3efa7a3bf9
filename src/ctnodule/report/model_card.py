"""The model card: `report.html` of a run folder, written from the files the run left there.

Reads (run folder layout; only metrics.json and oof_predictions.csv are required):

    config.yaml            dataset path (`data`/`dataset`), view, task, backbone, head, preset, folds or
                           holdout test_size, seed, weights (requested) and weights_source (what was loaded:
                           a file / package, or "random"); keys may sit at top level or one level nested
    pipeline.yaml          the preprocessing steps, a list of {name, params} (or {steps: [...]})
    splits/fold-*.csv      sample_id, patient_id, split (train/val)
    history.csv            epoch, fold, train_loss, val_loss, train_acc, val_acc, lr
    oof_predictions.csv    sample_id, patient_id, fold, y_true, proba_0..proba_{C-1}
    metrics.json           see `ctnodule.evaluate.summary.evaluate_oof`

and writes `report.html` with figures under `figures/`. Random (not pretrained) weights are said loudly:
a from-scratch CNN on 800 nodules is a different claim from a fine-tuned ImageNet one. A run trained on
generated data (config.yaml's `data_synthetic`, written by `workflow.train_and_report`) gets the synthetic
banner. The card ends with what the model is for and not for, and the data's licence.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ctnodule.atomic import final_path
from ctnodule.errors import RunError
from ctnodule.evaluate.metrics import metric_keys
from ctnodule.pages import MISSING, HtmlReport, shown_path, synthetic_banner
from ctnodule.runfolder import RunPaths, read_metrics, read_oof
from ctnodule.vocab import class_names

RANDOM_WEIGHTS = {"", "none", "random", "scratch", "null"}


#: recipe rows every card shows, and those that exist only for a head trained by gradient descent
RECIPE_ROWS = ("view", "task", "preset", "preprocess", "backbone", "weights", "freeze_backbone", "channels",
               "tabular", "head", "head_params", "imbalance", "folds", "holdout", "seed", "tta")
TORCH_ROWS = ("optimizer", "lr", "backbone_lr", "weight_decay", "batch_size", "epochs", "patience",
              "label_smoothing")

INTENDED_USE = (
    "For research on lung-nodule malignancy from CT and for teaching: it ranks nodules the way LIDC-IDRI "
    "radiologists rated their suspicion. Not a medical device; not for diagnosis, triage or any decision "
    "about a patient.")
LIMITATIONS = [
    ("The labels are radiologists' suspicion scores (1-5, majority vote of up to 4 readers), not pathology: "
    "the model learns what readers found suspicious, not what biopsy or follow-up proved."),
    ("Readers disagree: two LIDC readers agree with each other only at QWK ≈ 0.43 (binary AUC ≈ 0.69 reader vs "
    "reader), and the other readers' consensus agrees with a held-out reader at QWK ≈ 0.54 (measured on the "
    "LIDC ratings, ctnodule issue 9). A model's QWK against the majority vote must be read against that."),
    ("Cross-validated on one public collection (LIDC-IDRI: scanners and protocols of 2000-2010); accuracy on "
    "another hospital's scans is unknown until measured there (ctnodule evaluate)."),
    "The nodule must already be found and outlined: the model classifies a given nodule, it does not detect one.",
]
LICENCE = (
    "LIDC-IDRI is published by The Cancer Imaging Archive (TCIA) under the Creative Commons Attribution 3.0 "
    "licence (CC BY 3.0). Cite: Armato SG III et al., \"The Lung Image Database Consortium (LIDC) and Image "
    "Database Resource Initiative (IDRI): a completed reference database of lung nodules on CT scans\", "
    "Medical Physics 38(2):915-931, 2011, and the TCIA data citation (doi:10.7937/K9/TCIA.2015.LO9QL9SX). "
    "This run folder holds no image data, only predictions keyed by sample id.")


def write_model_card(run_dir: str | Path, index: Path | None = None) -> Path:
    """Write `run_dir/report.html` (data, split, recipe, metrics with CIs beside the baselines, figures,
    intended use, licence). `index`: the page this run belongs to (the `ctnodule run` index), linked at the
    top."""
    from ctnodule.evaluate.summary import oof_arrays

    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"{run}: run folder not found")
    cfg = _read_yaml(RunPaths(run).config) or {}
    metrics = read_metrics(run)
    oof = read_oof(run)
    task = str(_find(cfg, "task") or ("multiclass" if "qwk" in metrics else "binary"))
    names = class_names(task)
    y, proba = oof_arrays(oof, task)
    splits = _read_splits(run)

    title = f"Model card: {_find(cfg, 'backbone') or '?'} / {_find(cfg, 'view') or '?'} view / {task}"
    page = HtmlReport(title, subtitle=f"run folder {final_path(run.absolute()).name}",
                      banner=synthetic_banner(cfg.get("data_synthetic")), nav=[("index", index)] if index else ())
    warning = weights_warning(cfg)
    if warning:
        page.warning(warning)
    _data_block(page, cfg, run, oof, splits, y, names)
    _split_block(page, cfg, splits)
    _recipe_block(page, cfg, run)
    _metrics_block(page, metrics, task, names)
    _thresholds_block(page, metrics.get("thresholds"))
    _figures_block(page, cfg, run, y, proba, names)
    _attribution_block(page, run, names)
    page.heading("Intended use and limitations")
    page.paragraph(INTENDED_USE)
    page.html("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in LIMITATIONS) + "</ul>")
    page.heading("Data and licence")
    page.paragraph(LICENCE)
    return page.save(RunPaths(run).report)


def weights_warning(cfg: dict) -> str | None:
    """The loud warning for a run whose backbone started from random weights, else None.

    Reads `pretrained` (bool) when the config has it, else `weights_source` (what was loaded) or, failing
    that, `weights` (what was asked for): "none", "random...", "scratch" or empty mean random.
    """
    source = _find(cfg, "weights_source", "weights_loaded")
    requested = _find(cfg, "weights")
    pretrained = _find(cfg, "pretrained")
    said = str(source if source is not None else requested).strip().lower()
    if pretrained is False or (pretrained is None and (said in RANDOM_WEIGHTS or said.startswith("random"))):
        return ("WARNING - RANDOM WEIGHTS: this backbone was trained from scratch (no pretrained weights were "
                f"loaded; requested: {requested!s}; loaded: {source!s}). Expect far weaker features than "
                "ImageNet transfer learning on a dataset this small.")
    return None


def _data_block(page: HtmlReport, cfg: dict, run: Path, oof: pd.DataFrame, splits: list[pd.DataFrame],
                y: np.ndarray, names: list[str]) -> None:
    everyone = pd.concat(splits) if splits else oof
    data = _find(cfg, "data", "dataset", "data_path", "dataset_path")
    page.heading("Data")
    page.table(pd.DataFrame({
        "dataset": [shown_path(data, run) if data else "not recorded"],
        "samples": [everyone["sample_id"].nunique()],
        "patients": [everyone["patient_id"].nunique()],
        "evaluated samples": [len(oof)],
    }))
    counts = np.bincount(y, minlength=len(names))
    page.table(pd.DataFrame({"class": names, "samples": counts, "share": counts / counts.sum()}),
               caption="Class counts of the evaluated (out-of-fold) samples")


def _split_block(page: HtmlReport, cfg: dict, splits: list[pd.DataFrame]) -> None:
    page.heading("Split")
    if not splits:
        page.paragraph("No split files (splits/fold-*.csv) in this run folder.")
        return
    kind = f"{len(splits)}-fold cross-validation" if len(splits) > 1 else "one holdout split"
    page.paragraph(f"{kind}, grouped by patient (no patient on both sides) and stratified by label; "
                   f"seed {_find(cfg, 'seed')}. Every number below is out-of-fold.")
    rows = []
    for k, table in enumerate(splits):
        parts = {side: table[table["split"] == side] for side in ("train", "val")}
        rows.append({"fold": k, **{f"{side} {what}": part[col].nunique()
                                   for side, part in parts.items()
                                   for what, col in (("samples", "sample_id"), ("patients", "patient_id"))}})
    page.table(pd.DataFrame(rows), caption="Samples and patients per fold")


def _recipe_block(page: HtmlReport, cfg: dict, run: Path) -> None:
    """The settings that shaped this model: a scikit-learn head (fitted in one step) has no epochs or
    learning rate, so those rows appear only for heads trained by gradient descent."""
    page.heading("Recipe")
    source = _find(cfg, "weights_source", "weights_loaded")
    head = _find(cfg, "head")
    sklearn = _sklearn(head)
    keys = RECIPE_ROWS + (() if sklearn else TORCH_ROWS)
    rows = [(key, cfg.get(key) if key == "head_params" else _find(cfg, key)) for key in keys]
    augment = cfg.get("augment")
    if not sklearn and isinstance(augment, dict):
        rows.append(("augment", augment.get("mode")))
    rows = [(k, v) for k, v in rows if v not in (None, {}) or k in ("backbone", "head", "preset", "seed", "weights")]
    rows.append(("weights loaded", source if source is not None else "not recorded"))
    page.table(pd.DataFrame([(k, "" if v is None else _setting(v)) for k, v in rows], columns=["setting", "value"]))
    pipeline = _read_yaml(RunPaths(run).pipeline)
    page.paragraph("Preprocessing: " + (_pipeline_summary(pipeline) if pipeline else "no pipeline.yaml recorded"))


def _metrics_block(page: HtmlReport, metrics: dict, task: str, names: list[str]) -> None:
    page.heading("Metrics")
    ci = metrics.get("ci", {})
    base = metrics.get("baselines", {})
    folds = pd.DataFrame(metrics.get("folds", []))
    rows = []
    for key in metric_keys(task):
        lo, hi = ci.get(key, (None, None))
        row = {"metric": key, "model": _fmt(metrics.get(key), key),
               "95% CI (patient bootstrap)": MISSING if lo is None else f"[{_fmt(lo)}, {_fmt(hi)}]"}
        if len(folds) > 1:
            row["fold mean ± sd"] = (f"{folds[key].mean():.3f} ± {folds[key].std(ddof=1):.3f}"
                                     if key in folds and key != "n" else "")
        for name in ("majority", "size", "radiomics"):
            if name in base or name != "radiomics":
                row[f"{name} baseline"] = _fmt(base.get(name, {}).get(key), key) if base else "not computed"
        rows.append(row)
    page.table(pd.DataFrame(rows), caption="Out-of-fold metrics of the model beside the baselines on the same "
               "splits (majority: training-fold class prior; size: logistic regression on log nodule diameter; "
               f"radiomics: pyradiomics IBSI features + logistic regression). {MISSING}: not defined on these "
               "predictions (e.g. ROC-AUC when a class is absent, a CI when the bootstrap could not compute it).")
    _size_block(page, metrics)
    _readers_block(page, metrics.get("readers") or {})
    per_class = metrics.get("per_class") or {}
    if per_class:
        table = pd.DataFrame([{"class": c, **v} for c, v in per_class.items()])
        page.table(table.map(lambda v: _fmt(v) if not isinstance(v, str) else v), caption="Per class")


def _with_ci(value: Any, ci: Any) -> str:
    return _fmt(value) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")


def _size_block(page: HtmlReport, metrics: dict) -> None:
    """Does the model see more than size? AUC/QWK per size band beside size alone, gain with paired CI."""
    bands = metrics.get("by_size") or {}
    if not bands:
        return
    page.heading("By nodule size")
    rows = []
    for band, m in bands.items():
        row = {"size band": band, "n": m.get("n"), "malignant": m.get("n_malignant")}
        for key in ("roc_auc", "qwk"):
            if key in m:
                row[f"{key} model"], row[f"{key} size alone"] = _fmt(m[key]["a"]), _fmt(m[key]["b"])
                row[f"{key} gain [95% CI]"] = _with_ci(m[key]["diff"], m[key]["ci"])
        rows.append(row)
    page.table(pd.DataFrame(rows).fillna(""), caption="Binary ROC-AUC (5-class: P(4)+P(5)) and QWK within each "
               "band of measured mask diameter; gain over the size-only baseline with a paired patient-bootstrap CI")
    ex3 = metrics.get("auc_excluding_3")
    if ex3:
        page.paragraph(f"Binary ROC-AUC with the score-3 nodules left out (the NoduleMNIST3D / most-papers "
                       f"protocol; n = {ex3['n']}): {_with_ci(ex3['roc_auc'], ex3['ci'])}, beside "
                       f"{_fmt(ex3.get('roc_auc_with_3'))} on our own protocol (every nodule, 3 counted as benign).")


def _readers_block(page: HtmlReport, readers: dict) -> None:
    """The model beside the radiologists: reader vs reader, other readers' consensus vs reader, model vs reader."""
    if not readers.get("unique"):
        return
    page.heading("Radiologist-level agreement")
    names = {"reader_vs_reader": "reader vs reader", "others_vs_reader": "other readers' consensus vs reader",
             "model_vs_reader": "model vs reader"}
    rows = []
    for key, label in names.items():
        m = readers["unique"].get(key)
        if m:
            rows.append({"comparison": label, "pairs": m["n_pairs"], "patients": m["n_patients"],
                         **{k: _with_ci(m[k], m[f"{k}_ci"]) if k in m else "" for k in ("qwk", "exact", "within_one",
                                                                                      "roc_auc")}})
    n = readers.get("n_nodules", {})
    page.table(pd.DataFrame(rows), caption=f"Against each single reader's rating, {n.get('unique', 0)} nodules with "
               f"uniquely matched readers (95% patient-bootstrap CIs); {n.get('approximate', 0)} nodules matched "
               f"to their readers only approximately are counted apart. {readers.get('rule', '')}.")


def _thresholds_block(page: HtmlReport, thresholds: dict | None) -> None:
    """The decision-threshold table of a binary run (see `ctnodule.evaluate.thresholds`)."""
    from ctnodule.evaluate.thresholds import RULE_NAMES, STATS

    if not thresholds:
        return
    page.heading("Decision thresholds")
    rows = []
    for rule, label in RULE_NAMES.items():
        row = thresholds[rule]
        rows.append({"rule": label, "threshold (final model)": _fmt(row["threshold_all"]),
                     "thresholds per fold": ", ".join(_fmt(t) for t in row["threshold_per_fold"]),
                     **{stat: f"{_fmt(row[stat])} [{_fmt(row['ci'][stat][0])}, {_fmt(row['ci'][stat][1])}]"
                        for stat in STATS}})
    page.table(pd.DataFrame(rows), caption="Calling a nodule malignant when P(malignant) >= threshold. Each "
               "fold's threshold is chosen on the other folds' out-of-fold predictions and applied to that "
               "held-out fold; the pooled calls are scored (95 % patient-bootstrap CIs, thresholds fixed). "
               "The final model's threshold is the rule applied to all out-of-fold predictions.")


def _figures_block(page: HtmlReport, cfg: dict, run: Path, y: np.ndarray, proba: np.ndarray,
                   names: list[str]) -> None:
    from ctnodule.evaluate import plots

    page.heading("Figures")
    page.figure(plots.confusion_matrix_figure(y, proba.argmax(axis=1), names), "confusion_matrix",
                "Out-of-fold confusion matrix (rows: truth; counts and row-normalised recall)")
    page.figure(plots.roc_figure(y, proba, names), "roc", "Out-of-fold ROC")
    page.figure(plots.calibration_figure(y, proba, names), "calibration",
                "Reliability diagram: predicted probability against the observed rate, per bin; below, the "
                "number of out-of-fold samples in each bin (a point resting on few samples says little)")
    history = RunPaths(run).history
    frame = pd.read_csv(history) if history.is_file() else None
    if frame is not None and not frame.empty:
        page.figure(plots.learning_curves_figure(frame), "learning_curves", "Learning curves")
    else:
        head = _find(cfg, "head")
        why = (f"the {head} head is fitted by scikit-learn in one step on frozen features, so there are no "
               "epochs to plot" if _sklearn(head) else "this run recorded no training history")
        page.paragraph(f"No learning curves: {why}.")


def _attribution_block(page: HtmlReport, run: Path, names: list[str]) -> None:
    """The global view of the final model's attributions (`attributions.csv`, scikit-learn heads only)."""
    from ctnodule.explain.attribution_figures import dependence_figure, importance_figure
    from ctnodule.models.attribution import from_frame

    path = RunPaths(run).attributions
    if not path.is_file():
        return
    table = pd.read_csv(path, dtype={"sample_id": str})
    attr = from_frame(table)
    page.heading("What the model relies on")
    page.paragraph(f"Attributions of the final model on its {len(table)} training nodules ({attr.method}), in "
                   f"units of the {attr.space}, relative to the model's output for the training-mean nodule; "
                   "per nodule they add up to its output. The image principal components count as one group, and "
                   "descriptors correlated at |Spearman rho| >= 0.8 on the training data share one group, so "
                   "twin measurements do not split their credit. `ctnodule predict` lists each nodule's top "
                   "reasons; `ctnodule explain` draws a waterfall per nodule.")
    page.figure(importance_figure(attr), "attribution_importance", "Mean |contribution| per feature group")
    if any("log_diameter" in g for g in attr.groups):
        page.figure(dependence_figure(attr, table["diameter_mm"].to_numpy(float), table["y_true"].to_numpy(int),
                                      names), "attribution_size", "Contribution of nodule size against diameter")


def _read_splits(run: Path) -> list[pd.DataFrame]:
    return [pd.read_csv(f, dtype=str) for f in RunPaths(run).split_files()]


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RunError(f"{path}: not valid YAML ({exc})") from exc


def _find(cfg: Any, *names: str) -> Any:
    """First value under any of `names`, at top level or one level nested (e.g. cfg["model"]["backbone"])."""
    if not isinstance(cfg, dict):
        return None
    for name in names:
        if name in cfg and not isinstance(cfg[name], dict):
            return cfg[name]
    for value in cfg.values():
        if isinstance(value, dict):
            found = _find({k: v for k, v in value.items() if not isinstance(v, dict)}, *names)
            if found is not None:
                return found
    return None


def _pipeline_summary(pipeline: Any) -> str:
    steps = pipeline.get("steps", pipeline.get("transforms")) if isinstance(pipeline, dict) else pipeline
    if not isinstance(steps, list):
        return yaml.safe_dump(pipeline, sort_keys=False).strip()[:500]
    parts = []
    for step in steps:
        if isinstance(step, dict) and "name" in step:
            params = ", ".join(f"{k}={v}" for k, v in (step.get("params") or {}).items())
            parts.append(f"{step['name']}({params})")
        else:
            parts.append(str(step))
    return " -> ".join(parts) if parts else "(no steps)"


def _sklearn(head: Any) -> bool:
    """True for a head scikit-learn fits in one step (no epochs, learning rate or learning curves)."""
    from ctnodule.models.heads import is_sklearn_head

    return head is not None and is_sklearn_head(str(head))


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _fmt(value: Any, key: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if key == "n" or isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.3f}"
