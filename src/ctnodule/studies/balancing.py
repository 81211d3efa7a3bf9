"""`balance_benchmark`: every balancer through the training engine, same splits, one comparison table.

For each task and balancer, `ctnodule.train.api.train` runs the chosen preset with `imbalance=NAME`
(patient-grouped k-fold CV; the balancer only ever sees each training fold), and the out-of-fold
predictions are scored PER FOLD: macro-F1, balanced accuracy, ROC-AUC, QWK (5-class), and the recall of
the rarest class (binary: malignant; 5-class: the least frequent score in the data), as mean ± sd over
folds. Run folders are kept under `OUT/runs/` and reused (`resume`), so an interrupted benchmark continues.
A balancer the recipe cannot run (e.g. SMOTE on a class with one sample in a fold) is listed with the
engine's own error message instead of a number. With a frozen backbone the engine resamples the training
IMAGES for `smote`, `cgan` and `diffusion` before taking features (`smote_embed` works on the features).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.errors import CTNoduleError
from ctnodule.runfolder import RunPaths, read_oof
from ctnodule.vocab import TASKS

ALL = ("none", "weights", "oversample", "undersample", "smote", "smote_embed", "cgan", "diffusion", "focal",
       "logit_adjusted")
#: act through the loss only, which scikit-learn heads cannot take (`weights` reaches them as sample weights)
LOSS_ONLY = ("focal", "logit_adjusted")
METRICS = ("f1_macro", "balanced_accuracy", "roc_auc", "qwk", "minority_recall")


def balance_benchmark(data: str | Path, out: str | Path, methods: Sequence[str] = ALL,
                      tasks: Sequence[str] = TASKS, preset: str = "default", folds: int = 5, seed: int = 0,
                      overrides: dict | None = None, engine: bool = True, feature_path: bool = True,
                      generator_params: dict[str, dict] | None = None, log: Callable[[str], None] = print,
                      force: bool = False) -> pd.DataFrame:
    """Train every (task, method), score per fold, write `OUT/balance.html`, `OUT/balance.csv`; returns
    the per-fold scores (one row per task, method, fold, path; `error` set where a method could not run).

    `engine`: through `ctnodule.train` with the preset (slow: minutes per run). `feature_path`: the fast
    image-level path of `studies.balance_features` (every method incl. pixel SMOTE and the generators; image features +
    mask size).
    A finished run under `OUT/runs/` is reused (an interrupted one resumed) unless `force`, which retrains it.
    """
    from ctnodule.balance import available
    from ctnodule.errors import ConfigError
    from ctnodule.models.heads import is_sklearn_head
    from ctnodule.recipe import load_preset
    from ctnodule.train.api import train

    unknown = [m for m in methods if m not in available()]
    if unknown:
        raise ConfigError(f"balance-benchmark: unknown method(s) {unknown}; available: {', '.join(available())}")
    out = Path(out)
    rows: list[dict] = []
    for task in tasks if engine else ():
        for method in methods:
            run = out / "runs" / f"{task}-{method}"
            cfg = load_preset(preset, task=task, imbalance=method, folds=folds, seed=seed, **(overrides or {}))
            log(f"== {task} / {method}")
            if method in LOSS_ONLY and is_sklearn_head(cfg.head):
                log(f"   note: head {cfg.head!r} is fitted by scikit-learn and ignores the loss, so {method!r} "
                    "acts like 'none' here; pass --head linear (or mlp) to compare loss-based methods")
            try:
                if force or not RunPaths(run).oof.is_file():
                    train(data, run, cfg, resume=not force and RunPaths(run).config.is_file(), force=force, log=log)
            except CTNoduleError as exc:
                log(f"   not run: {exc}")
                rows.append({"task": task, "method": method, "fold": -1, "error": str(exc)})
                continue
            rows += fold_scores(read_oof(run), task, method)
    scores = pd.DataFrame(rows).assign(path="engine")
    if feature_path:
        from ctnodule.data.dataset import SliceDataset
        from ctnodule.studies.balance_features import feature_path_benchmark

        fp, oof = feature_path_benchmark(SliceDataset(data).view("nodule"), methods, tasks, folds, seed,
                                         generator_params, log)
        out.mkdir(parents=True, exist_ok=True)
        oof.to_csv(out / "feature_path_oof.csv", index=False)
        scores = pd.concat([scores, fp.assign(path="feature")], ignore_index=True)
    from ctnodule.data.dataset import SliceDataset
    from ctnodule.data.manifest import synthetic_info
    from ctnodule.pages import synthetic_banner

    write_benchmark(scores, out, f"{folds}-fold patient-grouped CV, seed {seed}; engine preset {preset!r}",
                    banner=synthetic_banner(synthetic_info(SliceDataset(data).frame)))
    return scores


def fold_scores(oof: pd.DataFrame, task: str, method: str, minority: int | None = None) -> list[dict]:
    """One row of metrics per fold of an out-of-fold prediction table (columns fold, y_true, proba_*)."""
    from ctnodule.evaluate.metrics import compute_metrics
    from ctnodule.vocab import class_names

    proba_cols = sorted((c for c in oof.columns if c.startswith("proba_")), key=lambda c: int(c.split("_")[1]))
    if minority is None:  # the rarest class over all folds: malignant (binary), the rarest score (5-class)
        minority = int(np.argmin(np.bincount(oof["y_true"], minlength=len(proba_cols))))
    name = class_names(task)[minority]
    rows = []
    for fold, part in oof.groupby("fold"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = compute_metrics(part["y_true"].to_numpy(), part[proba_cols].to_numpy(), task)
        rows.append({"task": task, "method": method, "fold": int(fold), "error": "",
                     "f1_macro": m["f1_macro"], "balanced_accuracy": m["balanced_accuracy"],
                     "roc_auc": m["roc_auc"], "qwk": m.get("qwk", np.nan),
                     "minority_recall": m["per_class"][name]["recall"], "minority_class": name})
    return rows


def summary_table(scores: pd.DataFrame, task: str) -> pd.DataFrame:
    """method x metric cells 'mean ± sd' over folds for one task (errors shown as 'not run: ...')."""
    part = scores[scores["task"] == task]
    metrics = [m for m in METRICS if not (task == "binary" and m == "qwk")]
    out = []
    for method, g in part.groupby("method", sort=False):
        if (g["fold"] < 0).any():
            out.append({"method": method, **{m: "not run" for m in metrics}, "note": g["error"].iloc[0][:160]})
            continue
        cells = {m: f"{g[m].mean():.3f} ± {g[m].std(ddof=1):.3f}" for m in metrics}
        out.append({"method": method, **cells, "note": f"{len(g)} folds"})
    return pd.DataFrame(out)


def write_benchmark(scores: pd.DataFrame, out: Path, recipe: str, extra: list[tuple[str, pd.DataFrame]] = (),
                    banner: str | None = None) -> Path:
    """`balance.csv` (per fold) + `balance.md` + `balance.html` (mean ± sd tables per task)."""
    from ctnodule.atomic import atomic_path, write_text
    from ctnodule.pages import HtmlReport

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "balance.csv") as tmp:
        scores.to_csv(tmp, index=False)
    page = HtmlReport("Class-imbalance methods compared", recipe, banner=banner)
    page.paragraph("Each cell: mean ± sd over the CV folds of that fold's out-of-fold predictions. Minority "
                   "recall: recall of the rarest class (binary: malignant; 5-class: the least frequent score).")
    md = [f"# Class-imbalance methods ({recipe})", ""]
    titles = {"engine": "training engine (preset recipe)",
              "feature": "frozen-feature path: balance images, then Lite0 features + mask size + linear head"}
    for (path, task), part in scores.groupby(["path", "task"], sort=False):
        table = summary_table(part, task)
        page.heading(f"{task} — {titles.get(path, path)}")
        page.table(table)
        md += [f"## {task} — {titles.get(path, path)}", "", _markdown(table), ""]
    for title, table in extra:
        page.heading(title)
        page.table(table)
        md += [f"## {title}", "", _markdown(table), ""]
    write_text(out / "balance.md", "\n".join(md))
    return page.save(out / "balance.html")


def _markdown(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (pandas' to_markdown needs tabulate, which we do not depend on)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
