"""preprocess stage: HU window, gamma, CLAHE, size standardisation, noise filter, lung masking.

Public API::

    from ctnodule.preprocess import Pipeline, PreprocessConfig, preprocess_dataset
    pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(train_ds.view("nodule"))
    out = pipe.transform(slice_)            # float32 in [0, 1], spacing/mask/lung mask updated
    keep = pipe.keep_mask(ds)               # noise filter, threshold learned on train only
    pipe.save("pipeline.yaml"); Pipeline.load("pipeline.yaml").hash
"""

import importlib

_WHERE = {"LUNG_MASK": "base", "STEPS": "base", "NotFittedError": "base", "Step": "base", "create_step": "base",
          "PreprocessConfig": "config", "StepSpec": "config", "Pipeline": "pipeline",
          "preprocess_dataset": "dataset"}

__all__ = ["LUNG_MASK", "STEPS", "NotFittedError", "Pipeline", "PreprocessConfig", "Step", "StepSpec",
           "create_step", "preprocess_dataset"]


def __getattr__(name: str):
    """Names are imported on first use, so `ctnodule --help` does not load SciPy/scikit-image/OpenCV."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"ctnodule.preprocess.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ctnodule.preprocess' has no attribute {name!r}")
