"""Slice datasets: reading/writing images, the manifest, `SliceDataset`, importers and exploration."""

import importlib

_WHERE = {"Slice": "slice", "SliceDataset": "dataset"}

__all__ = ["Slice", "SliceDataset"]


def __getattr__(name: str):
    """Names are imported on first use, so `ctnodule --help` does not load pandas."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"ctnodule.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ctnodule.data' has no attribute {name!r}")
