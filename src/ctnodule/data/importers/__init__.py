"""Importers: turn a source (VOI export, LIDC-IDRI archive, NRRD folder, CT phantom) into a slice dataset.

`import_data(kind, out, **options)` runs the importer registered under `kind` (see `available()`);
each also has its own function (`import_voi`, `import_lidc`, `import_folder`, `import_synthetic`) and a
`ctnodule import KIND` command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctnodule.data.importers import folder, lidc, synthetic, voi  # noqa: F401  (registers)
from ctnodule.data.importers.base import IMPORTERS, REPORT, ImportReport
from ctnodule.data.importers.folder import import_folder
from ctnodule.data.importers.lidc import import_lidc
from ctnodule.data.importers.synthetic import import_synthetic
from ctnodule.data.importers.voi import import_voi


def import_data(kind: str, out: str | Path, **options: Any) -> ImportReport:
    """Run the `kind` importer into `out`; unset (None) options keep the importer's defaults."""
    return IMPORTERS.create(kind, out=out, **options)


def available() -> list[str]:
    return IMPORTERS.available()


__all__ = ["IMPORTERS", "REPORT", "ImportReport", "available", "import_data", "import_folder", "import_lidc", "import_synthetic", "import_voi"]
