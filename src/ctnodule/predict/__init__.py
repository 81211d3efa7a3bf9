"""predict stage: a finished run folder applied to new data, with the run's own preprocessing.

Public API::

    from ctnodule.predict import load_run, predict_files
    p = load_run("runs/voi-5class")
    slices = p.load_slices(SliceDataset("voi-ds"))           # the run's view, 2.5D stacks where it used them
    proba = p.predict_proba(slices)                          # (N, C), the run's preprocessing + TTA
    x = p.prepare(slices)                                    # (N, 3, H, W) float32 [0, 1]: what the CNN sees
    logits = p.model(x)                                      # nn.Module (binds the sizes/descriptors of x)
    p.pipeline, p.class_names, p.task, p.view, p.config, p.info
    predict_files("runs/voi-5class", ["a.nrrd"], "preds.csv", masks=["a-mask.nrrd"])

Names are imported lazily, so `ctnodule --help` does not pay for torch.
"""

import importlib

_WHERE = {"Predictor": "run", "load_run": "run", "predict_files": "apply", "predict_inputs": "apply",
          "dataset_slices": "apply"}

__all__ = ["Predictor", "dataset_slices", "load_run", "predict_files", "predict_inputs"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"ctnodule.predict.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ctnodule.predict' has no attribute {name!r}")
