"""What every importer shares: the registry, the import report and the summary table.

An importer is a function `import_<kind>(out, *, src=..., force=False, **options) -> ImportReport`
registered in `IMPORTERS`; it writes its dataset with `open_dataset` (atomic: a failure leaves no half
dataset) and, inside it, `import_report.json` with counts per class and view, what it skipped and why,
and how long it took. Problems with single items (a mask without an image, a nodule whose slices are
absent) are skipped and reported, never fatal; problems with the whole source raise `DataError`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ctnodule.atomic import final_path, write_text
from ctnodule.data.writer import DatasetWriter
from ctnodule.errors import DataError
from ctnodule.registry import Registry

IMPORTERS: Registry[ImportReport] = Registry("importer")
REPORT = "import_report.json"


@dataclasses.dataclass
class ImportReport:
    """The outcome of one import (also stored as `import_report.json` in the dataset)."""

    kind: str
    source: str
    out: str
    n_samples: int
    counts: dict[str, dict[str, int]]  # view -> malignancy ("1".."5") -> samples
    skipped: list[dict[str, str]]  # {"item": ..., "reason": ...}
    seconds: float
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # importer-specific findings

    @property
    def path(self) -> Path:
        """The dataset folder written."""
        return Path(self.out)

    def table(self) -> pd.DataFrame:
        """Samples per view (rows) and malignancy score (columns), with binary and total columns."""
        rows = []
        for view, per in sorted(self.counts.items()):
            row = {"view": view, **{str(m): per.get(str(m), 0) for m in range(1, 6)}}
            row["benign (1-3)"] = sum(row[str(m)] for m in (1, 2, 3))
            row["malignant (4-5)"] = row["4"] + row["5"]
            row["total"] = row["benign (1-3)"] + row["malignant (4-5)"]
            rows.append(row)
        return pd.DataFrame(rows)


class Skips:
    """Collects skipped items with their reason (reported, never fatal)."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, item: str | Path, reason: str) -> None:
        self.items.append({"item": str(item), "reason": reason})


def finish(writer: DatasetWriter, kind: str, source: str | Path | None, out: str | Path, skips: Skips,
           started: float, details: dict[str, Any] | None = None, **options: Any) -> ImportReport:
    """Build the report from the rows written so far and store it in the (still temporary) dataset.

    An import that ends with no sample is a `DataError` listing what was skipped and why."""
    frame = writer.frame()
    if frame.empty:
        reasons = [f"{s['item']}: {s['reason']}" for s in skips.items]
        listed = "; ".join(reasons[:10]) + (f"; ... and {len(reasons) - 10} more" if len(reasons) > 10 else "")
        raise DataError(f"no samples imported; skipped {len(reasons)}: {listed}" if reasons else
                        "no samples imported: the source holds nothing this importer reads", source)
    counts: dict[str, dict[str, int]] = {}
    if not frame.empty:
        for (view, mal), n in frame.groupby(["view", "malignancy"]).size().items():
            counts.setdefault(str(view), {})[str(int(mal))] = int(n)
    report = ImportReport(
        kind=kind, source="" if source is None else str(source), out=str(final_path(out)), n_samples=len(frame),
        counts=counts, skipped=skips.items, seconds=round(time.perf_counter() - started, 2),
        options={k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
        details=details or {},
    )
    write_text(writer.folder / REPORT, json.dumps(dataclasses.asdict(report), indent=2) + "\n")
    return report
