"""ctnodule: lung-nodule malignancy classification from CT slices.

Stages (each a sub-package and a CLI command): data (import, explore), preprocess, balance, models,
train, evaluate, explain, report. Heavy dependencies (torch, timm) are imported lazily by the stages
that need them, so `ctnodule --help` and the data tools start fast.
"""

__version__ = "0.1.0"

#: Run folders and processed datasets record this; loading one written by an incompatible format
#: version raises a clear error instead of failing deep inside torch or pandas.
FORMAT_VERSION = 1
