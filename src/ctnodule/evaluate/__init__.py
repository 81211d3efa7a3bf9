"""evaluate stage: everything that judges a model, independent of how it was trained.

- `metrics.compute_metrics(y_true, proba, task)` -> the metrics dict (`metrics.json`'s top-level keys)
- `bootstrap.bootstrap_ci(y_true, proba, task, n_boot=1000, seed=0, groups=None)` -> {metric: (lo, hi)}
- `baselines.evaluate_baselines(frame, task, splits, root=None)` -> {"majority", "size"[, "radiomics"]}
- `compare.paired_difference(y, proba_a, proba_b, task, groups)` / `compare.compare_oof(oof_a, oof_b, task)`
  -> model A minus model B on the same rows, paired patient-bootstrap CI (recipe choices)
- `readers.evaluate_readers(frame, proba)` -> model / other readers' consensus / reader vs each single reader
- `strata.by_size(...)`, `strata.auc_excluding_3(...)` -> per size band vs size alone; the papers' protocol
- `summary.evaluate_oof(oof, task, frame, splits, ...)` -> the whole `metrics.json` of a run
- `plots.*_figure(...)` -> matplotlib Figures for the model card

Splits live in `ctnodule.data.splits`; the model card and benchmark tables in `ctnodule.report`.
"""
