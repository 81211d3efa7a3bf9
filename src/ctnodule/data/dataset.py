"""`SliceDataset`: a validated slice dataset (manifest + NRRD files) you can index, filter and split."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ctnodule.data.io import read_nrrd
from ctnodule.data.manifest import read_manifest, validate_files
from ctnodule.data.slice import Slice
from ctnodule.data.splits import group_ids


class SliceDataset:
    """A slice dataset on disk.

    `SliceDataset(root)` reads and checks the manifest; `validate=True` (default) also opens every file
    once, so a missing file, a non-2D array or a NaN is reported up front with its row — not after an hour
    of training. Indexing returns `Slice`s with the manifest row as `meta` and the nodule mask when the
    dataset has one.
    """

    def __init__(self, root: str | Path, validate: bool = True, frame: pd.DataFrame | None = None):
        self.root = Path(root)
        self.frame = read_manifest(self.root) if frame is None else frame.reset_index(drop=True)
        if validate and frame is None:
            validate_files(self.root, self.frame)

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Slice]:
        for i in range(len(self)):
            yield self[i]

    @functools.cached_property
    def _rows(self) -> list[dict]:
        """The manifest rows as dicts, built once: `frame.iloc[i]` per sample cost as much as reading the
        sample's files (bench/bench_infer.py). The frame is not to be edited after the first indexing."""
        return self.frame.to_dict("records")

    def __getitem__(self, i: int) -> Slice:
        row = self._rows[i]
        array, spacing = read_nrrd(self.root / row["path"])
        mask = None
        if _present(row.get("mask_path")):
            mask, _ = read_nrrd(self.root / row["mask_path"])
        return Slice(array, (spacing[-2], spacing[-1]), dict(row), mask)

    def context(self, i: int) -> np.ndarray | None:
        """The (2k+1, H, W) neighbour stack of sample `i` for 2.5D models, or None if the source had none."""
        row = self._rows[i]
        if not _present(row.get("context_path")):
            return None
        return read_nrrd(self.root / row["context_path"])[0]

    def subset(self, selector: np.ndarray | pd.Series | list[int]) -> SliceDataset:
        """A view on some rows (boolean mask or positions) of the same folder; files are not copied."""
        sel = np.asarray(selector)
        rows = self.frame[sel] if sel.dtype == bool else self.frame.iloc[sel]
        return SliceDataset(self.root, frame=rows)

    def view(self, view: str) -> SliceDataset:
        """Only the `full` or `nodule` samples."""
        return self.subset(self.frame["view"].to_numpy() == view)

    def labels(self, task: str) -> np.ndarray:
        """Class indices: 0..4 for `multiclass` (malignancy 1..5), 0/1 for `binary`."""
        if task == "binary":
            return self.frame["label_binary"].to_numpy(dtype=np.int64)
        return self.frame["malignancy"].to_numpy(dtype=np.int64) - 1

    @property
    def groups(self) -> np.ndarray:
        """Patient ids: every split in ctnodule groups by these, so no patient is in two folds (a composite's
        is its nodule's patient, `splits.group_ids`)."""
        return group_ids(self.frame)

    def __repr__(self) -> str:
        views = self.frame["view"].value_counts().to_dict()
        return f"SliceDataset({str(self.root)!r}, n={len(self)}, views={views})"


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value) != ""
