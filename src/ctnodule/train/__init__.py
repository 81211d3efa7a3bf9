"""train stage: fit a recipe with patient-grouped CV and write a self-contained run folder.

Public API::

    from ctnodule.recipe import load_preset                  # "seed" | "default" (+ field overrides)
    from ctnodule.train.api import train                     # train(data, out, cfg, resume=, force=) -> run dir

    cfg = load_preset("default", view="nodule", task="multiclass")
    run = train("voi-ds", "runs/voi-5class", cfg)            # splits, checkpoints, oof_predictions.csv, model.pt

Later stages read the folder, never this package: `ctnodule.evaluate.summary.score_run(run)` (metrics.json),
`ctnodule.report.model_card.write_model_card(run)`, `ctnodule.predict.load_run(run)`;
`ctnodule.workflow.train_and_report` chains train -> score -> model card (what `ctnodule train` runs).

Modules: api (CV -> run folder), fold (one fold: pipeline + tabular scaler + balancer, then the strategy),
strategies (frozen + scikit-learn head, frozen + torch head, fine-tune), engine (PyTorch loop, DDP under
torchrun, per-epoch checkpoints/resume).
"""
