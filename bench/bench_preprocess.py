"""Preprocessing speed: slices/s for the nodule and full views, whole default pipeline, on this machine.

Real data when ../shared/data is present (LIDC VOI crops for the nodule view, LIDC-IDRI DICOM slices for
the full view, lung masking included), synthetic CT-like slices otherwise. Times `transform_many` with
1 worker, with one worker per usable core, and with the automatic choice (workers=None), and prints both
wall-clock slices/s and CPU time per slice (with what that gives on idle cores: on a machine shared
with other jobs the wall clock measures the neighbours as much as the pipeline). Targets:
>= 2000 nodule slices/s and >= 50 full slices/s on 2 cores.

    python bench/bench_preprocess.py [--nodule N] [--full N]
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ctnodule.data.slice import Slice
from ctnodule.preprocess import Pipeline, PreprocessConfig
from ctnodule.preprocess.parallel import usable_cores

DATA = Path(os.environ.get("CTNODULE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def nodule_slices(n: int) -> tuple[list[Slice], str]:
    from ctnodule.data.io import read_nifti

    files = sorted((DATA / "lidc-voi" / "image").glob("*.nii.gz"))[:300]
    out = []
    for f in files:
        a, zooms = read_nifti(f)
        m, _ = read_nifti(DATA / "lidc-voi" / "nodule_mask" / f.name)
        z = int(np.argmax(m.reshape(-1, m.shape[2]).sum(0)))
        out.append(Slice(np.ascontiguousarray(a[:, :, z].T).astype(np.int16), (zooms[1], zooms[0]),
                         {"sample_id": f.name}, np.ascontiguousarray(m[:, :, z].T).astype(np.uint8)))
    source = f"{len(out)} real LIDC VOI slices" if out else "synthetic crops"
    if not out:
        rng = np.random.default_rng(0)
        for i in range(300):
            a = rng.normal(-850, 60, (44, 44))
            m = np.zeros((44, 44), np.uint8)
            m[16:28, 16:28] = 1
            a[m > 0] = 30
            out.append(Slice(a.astype(np.int16), (0.7, 0.7), {"sample_id": str(i)}, m))
    return [out[i % len(out)] for i in range(n)], source


def full_slices(n: int) -> tuple[list[Slice], str]:
    from ctnodule.data.io import read_dicom_slice

    files = sorted(glob.glob(str(DATA / "lidc-idri" / "*" / "*" / "*" / "*.dcm")))[::3][:n]
    out = [read_dicom_slice(f) for f in files]
    if not out:
        sys.exit("full view needs ../shared/data/lidc-idri (real DICOM); not present")
    return [out[i % len(out)] for i in range(n)], f"{len(out)} real LIDC-IDRI DICOM slices"


def bench(view: str, slices: list[Slice], source: str) -> None:
    pipe = Pipeline.from_config(PreprocessConfig.default(view)).fit(slices[: min(len(slices), 200)])
    print(f"{view}: {len(slices)} slices from {source}, pipeline {[s.name for s in pipe.steps]}")
    cores = usable_cores()
    for workers in (1, cores, None):
        t0, c0 = time.perf_counter(), _cpu()
        n = sum(1 for _ in pipe.transform_many(slices, workers=workers, chunksize=64 if view == "nodule" else 4))
        dt, cpu = time.perf_counter() - t0, _cpu() - c0
        label = "auto" if workers is None else str(workers)
        idle = f"; x{cores} idle cores = {cores * n / cpu:7.1f} slices/s" if workers == cores else ""
        print(f"  workers={label:>4}: {n / dt:8.1f} slices/s wall ({dt:.2f} s); {1000 * cpu / n:6.2f} CPU-ms/slice "
              f"= {n / cpu:7.1f} slices/s per busy core{idle}")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the pool workers): on a shared machine
    wall time measures the neighbours too; CPU time measures the pipeline."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodule", type=int, default=6000)
    ap.add_argument("--full", type=int, default=120)
    args = ap.parse_args()
    print(f"usable cores: {usable_cores()}, load average: {os.getloadavg()[0]:.1f}")
    bench("nodule", *nodule_slices(args.nodule))
    bench("full", *full_slices(args.full))


if __name__ == "__main__":
    main()
