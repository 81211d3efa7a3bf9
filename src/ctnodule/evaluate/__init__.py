"""evaluate stage: everything that judges a model, independent of how it was trained.

- `metrics.compute_metrics(y_true, proba, task)` -> the metrics dict (`metrics.json`'s top-level keys)
- `bootstrap.bootstrap_ci(y_true, proba, task, n_boot=1000, seed=0, groups=None)` -> {metric: (lo, hi)}
- `baselines.evaluate_baselines(frame, task, splits, root=None)` -> {"majority": ..., "size": ...}
- `summary.evaluate_oof(oof, task, frame, splits, ...)` -> the whole `metrics.json` of a run
- `plots.*_figure(...)` -> matplotlib Figures for the model card

Splits live in `ctnodule.data.splits`; the model card and benchmark tables in `ctnodule.report`.
"""
