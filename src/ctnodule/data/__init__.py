"""Slice datasets: reading/writing images, the manifest, `SliceDataset`, importers and exploration."""

from ctnodule.data.dataset import SliceDataset
from ctnodule.data.slice import Slice

__all__ = ["Slice", "SliceDataset"]
