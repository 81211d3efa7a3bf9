"""train stage: the four classifiers ({full, nodule} x {binary, multiclass}), patient-grouped CV, run folders.

Public API::

    from ctnodule.train.config import load_preset            # "seed" | "default" (+ field overrides)
    from ctnodule.train.api import train                     # train(data, out, cfg, resume=, force=) -> run dir
    from ctnodule.train.run import load_run, RunPaths        # load_run(run) -> Predictor
    from ctnodule.train.apply import evaluate_run, predict_files
    from ctnodule.train.benchmark import benchmark

    cfg = load_preset("default", view="nodule", task="multiclass")
    run = train("voi-ds", "runs/voi-5class", cfg)
    p = load_run(run)
    slices = p.load_slices(SliceDataset("voi-ds"))           # the run's view, 2.5D stacks where it used them
    proba = p.predict_proba(slices)                          # (N, C), the run's preprocessing + TTA
    x = p.prepare(slices)                                    # (N, 3, H, W) float32 [0, 1]: what the CNN sees
    logits = p.model(x)                                      # nn.Module (binds the sizes/descriptors of x)
    p.pipeline, p.class_names, p.task, p.view, p.config, p.info

Modules: config (TrainConfig + presets), inputs (slices -> images), augment (batched affine),
features (cached frozen features), engine (PyTorch loop, DDP under torchrun, checkpoints/resume),
fold (one fold: pipeline + tabular scaler + balancer + network), api (CV -> run folder), run (paths,
checkpoints, Predictor), apply (evaluate/predict), benchmark, commands (CLI), splits (evaluation's).
"""
