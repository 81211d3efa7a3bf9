"""Import and exploration speed: the phantom (60 nodules), the full LIDC VOI export and the LIDC-IDRI
sample, with counts per view and class. Prints numbers; asserts nothing.

Run: python bench/bench_import.py [path/to/shared/data]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ctnodule.data.explore import explore
from ctnodule.data.importers import import_data

DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data"


def _run(name: str, out: Path, **options: object) -> None:
    cpu = time.process_time()
    report = import_data(name, out / name, progress=False, **options)
    import_cpu = time.process_time() - cpu
    cpu = time.process_time()
    t0 = time.perf_counter()
    explore(report.path, out / f"{name}-explore")
    print(f"{name:9s} import {report.seconds:6.1f} s (cpu {import_cpu:4.1f} s)  {report.n_samples:4d} samples  skipped {len(report.skipped)}"
          f"  explore {time.perf_counter() - t0:5.1f} s (cpu {time.process_time() - cpu:4.1f} s)")
    print(report.table().to_string(index=False))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _run("synthetic", out, patients=42, seed=0)
        if (DATA / "lidc-voi").is_dir():
            _run("voi", out, src=DATA / "lidc-voi")
        else:
            print(f"skip voi: {DATA / 'lidc-voi'} not found")
        if (DATA / "lidc-idri").is_dir():
            _run("lidc", out, src=DATA / "lidc-idri")
        else:
            print(f"skip lidc: {DATA / 'lidc-idri'} not found")


if __name__ == "__main__":
    main()
