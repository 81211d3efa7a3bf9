"""The seed's tables 3 and 4 done properly: backbone x view per task, CV mean ± sd, Markdown + HTML.

The seed reported one accuracy per backbone from one split. Here each cell is the mean ± sample standard
deviation over the cross-validation folds of a patient-grouped split, for the metrics that matter per task
(for 5 classes QWK and within-one beside accuracy), so a difference between two backbones can be judged
against the fold-to-fold spread.

`results` is a list of dicts, one per trained configuration:

    {"backbone": "efficientnet_lite0", "view": "nodule", "task": "binary",
     "folds": [{"fold": 0, "accuracy": ..., "roc_auc": ...}, ...],   # metrics.json["folds"]
     # optional: "head", "preset", "train_time_s"}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctnodule.errors import DataError
from ctnodule.pages import HtmlReport

TABLE_METRICS = {
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "qwk", "within_one"),
    "binary": ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc"),
}
TABLE_TITLES = {
    "multiclass": "Table 3: 5-class malignancy (1-5)",
    "binary": "Table 4: binary, benign (1-3) vs malignant (4-5)",
}


def benchmark_table(results: list[dict]) -> tuple[str, HtmlReport]:
    """(Markdown text, `HtmlReport` page) of the benchmark; save the page with `page.save(dir / "benchmark.html")`.

    The best mean of each metric is bold in the Markdown.
    """
    if not results:
        raise DataError("no benchmark results to tabulate")
    for i, result in enumerate(results):
        missing = [k for k in ("backbone", "view", "task", "folds") if k not in result]
        if missing:
            raise DataError(f"benchmark result {i} lacks {missing}; each needs backbone, view, task and folds")
        if result["task"] not in TABLE_METRICS:
            raise DataError(f"benchmark result {i} has unknown task {result['task']!r}")
    frames = {task: _task_frame([r for r in results if r.get("task") == task], task) for task in TABLE_METRICS}
    markdown = []
    page = HtmlReport("Benchmark: backbones x views x tasks",
                      subtitle="Patient-grouped cross-validation; each cell is the mean ± sd over folds")
    for task, (cells, means) in frames.items():
        if cells.empty:
            continue
        markdown += [f"### {TABLE_TITLES[task]}", "", _markdown(cells, means), ""]
        page.heading(TABLE_TITLES[task]).table(cells, caption="mean ± sd over CV folds")
    return "\n".join(markdown).rstrip() + "\n", page


def _task_frame(results: list[dict], task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Display cells ("0.871 ± 0.023") and the means behind them (for bolding the best), one row per result."""
    metrics = TABLE_METRICS[task]
    cells, means = [], []
    for result in sorted(results, key=lambda r: (str(r.get("view")), str(r.get("backbone")))):
        folds = pd.DataFrame(result.get("folds") or [])
        if folds.empty:
            raise DataError(f"benchmark result {result.get('backbone')}/{result.get('view')}/{task} has no folds")
        row = {"backbone": str(result["backbone"]), "view": str(result["view"])}
        for key in ("head", "preset"):
            if key in result:
                row[key] = str(result[key])
        mean_row = dict(row)
        for metric in metrics:
            values = pd.to_numeric(folds[metric], errors="coerce").dropna() if metric in folds else pd.Series([])
            mean_row[metric] = values.mean() if len(values) else np.nan
            row[metric] = _cell(values)
        row["folds"] = str(len(folds))
        if "train_time_s" in result:
            row["train time (s)"] = f"{float(result['train_time_s']):.0f}"
        cells.append(row)
        means.append(mean_row)
    return pd.DataFrame(cells), pd.DataFrame(means)


def _cell(values: pd.Series) -> str:
    if len(values) == 0:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _markdown(cells: pd.DataFrame, means: pd.DataFrame) -> str:
    shown = cells.copy()
    for metric in means.columns:
        if metric in shown and pd.api.types.is_float_dtype(means[metric]) and means[metric].notna().any():
            best = means[metric].idxmax()
            shown.loc[best, metric] = f"**{shown.loc[best, metric]}**"
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
