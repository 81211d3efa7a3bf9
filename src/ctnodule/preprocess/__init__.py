"""preprocess stage: HU window, gamma, CLAHE, size standardisation, noise filter, lung masking.

Public API::

    from ctnodule.preprocess import Pipeline, PreprocessConfig, preprocess_dataset
    pipe = Pipeline.from_config(PreprocessConfig.default("nodule")).fit(train_ds.view("nodule"))
    out = pipe.transform(slice_)            # float32 in [0, 1], spacing/mask/lung mask updated
    keep = pipe.keep_mask(ds)               # noise filter, threshold learned on train only
    pipe.save("pipeline.yaml"); Pipeline.load("pipeline.yaml").hash
"""

from ctnodule.preprocess import clahe, gamma, lungmask, noise, resize, window  # noqa: F401  (register)
from ctnodule.preprocess.base import LUNG_MASK, STEPS, NotFittedError, Step, create_step
from ctnodule.preprocess.config import PreprocessConfig, StepSpec
from ctnodule.preprocess.pipeline import Pipeline

__all__ = ["LUNG_MASK", "STEPS", "NotFittedError", "Pipeline", "PreprocessConfig", "Step", "StepSpec",
           "create_step", "preprocess_dataset"]


def __getattr__(name: str):  # the dataset function pulls in matplotlib/pandas IO: import it lazily
    if name == "preprocess_dataset":
        from ctnodule.preprocess.dataset import preprocess_dataset

        return preprocess_dataset
    raise AttributeError(name)
