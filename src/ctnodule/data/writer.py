"""`DatasetWriter`: build a slice dataset folder atomically (importers, preprocess, synthesize use it).

Samples are written into a temporary sibling folder; `close()` validates the manifest and renames the
folder into place. An exception inside the `with` block removes the temporary folder, so a failed
import never leaves half a dataset, and an existing dataset is only replaced (with `force`) once the
new one is complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctnodule.atomic import atomic_dir
from ctnodule.data.io import write_nrrd
from ctnodule.data.manifest import write_manifest
from ctnodule.vocab import binary_label


class DatasetWriter:
    """Collects samples into `folder` (a temporary folder from `open_dataset`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        array: np.ndarray,
        spacing: tuple[float, float],
        *,
        sample_id: str,
        patient_id: str,
        nodule_id: str | int,
        view: str,
        malignancy: int,
        source: str,
        context: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one sample's arrays under `slices/` (plus `context/`, `masks/`) and record its row."""
        rel = Path("slices") / f"{sample_id}.nrrd"
        write_nrrd(self.folder / rel, array, spacing)
        row: dict[str, Any] = {
            "sample_id": sample_id, "patient_id": patient_id, "nodule_id": str(nodule_id), "view": view,
            "path": rel.as_posix(), "malignancy": int(malignancy), "label_binary": binary_label(malignancy),
            "source": source, "spacing_row": float(spacing[0]), "spacing_col": float(spacing[1]),
        }
        if context is not None:
            crel = Path("context") / f"{sample_id}.nrrd"
            write_nrrd(self.folder / crel, context, spacing)
            row["context_path"] = crel.as_posix()
        if mask is not None:
            mrel = Path("masks") / f"{sample_id}.nrrd"
            write_nrrd(self.folder / mrel, mask.astype(np.uint8), spacing)
            row["mask_path"] = mrel.as_posix()
        row.update(extra)
        self.rows.append(row)
        return row

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


@contextlib.contextmanager
def open_dataset(out: str | Path, force: bool = False) -> Iterator[DatasetWriter]:
    """`with open_dataset(out) as w: w.add(...)` — the dataset appears at `out` only if the block succeeds."""
    with atomic_dir(out, force=force) as tmp:
        writer = DatasetWriter(tmp)
        yield writer
        write_manifest(tmp, writer.frame())
