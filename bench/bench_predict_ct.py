"""Speed of `ctnodule predict` on a whole CT: a 512 x 512 x 300 DICOM series with 5 candidates, end to end.

The series is real CT: LIDC-IDRI-0001's slices (`../shared/data/lidc-idri`, a 17-slice block around its
23 mm nodule) stacked back and forth (0..16, 15..0, 1..16, ...) to 300 slices at the series' own 2.5 mm
step, written as 300 DICOM files with the source's headers and pixels (only position, instance number and
UIDs change) — seconds to make, unlike rendering a phantom. The 5 candidates are that nodule in 5 of the
copies, so each is a real segmentation. Then:

1. `ctnodule predict RUN SERIES --candidates CSV --out CSV` as a subprocess: the user's wall time and the
   CPU seconds it used, reading, imports and Python start included (the target: <= 10 s on 2 cores);
2. the same work in this process by stage (open the run, read the series, segment x5 with the run's
   segmenter, cut samples, predict, write CSV + PNGs), files already in the page cache.

Prints wall and CPU seconds (the machine may be shared: CPU is the steadier figure).

Run: python bench/bench_predict_ct.py RUN [--threads 2] [--lidc path/to/lidc-idri]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared/data"
N_SLICES = 300
#: LIDC-IDRI-0001's nodule (world mm, LPS) in the source block; its copies sit in every other block
NODULE = (56.2, 86.3, -115.9)


def timed(label: str, fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    print(f"  {label:36s} {time.perf_counter() - wall:6.2f} s wall {time.process_time() - cpu:6.2f} s CPU")
    return out


def stacked_series(source: Path, folder: Path, n_slices: int) -> tuple[str, list[tuple[float, float, float]]]:
    """Write `n_slices` DICOM files cycling back and forth through `source`'s slices; returns the series
    UID and the world positions of the nodule's 5 copies nearest the middle of the stack."""
    import pydicom
    from pydicom.uid import generate_uid

    files = sorted(source.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                              .ImagePositionPatient[2]))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    z0 = float(first.ImagePositionPatient[2])
    step = float(pydicom.dcmread(files[1], stop_before_pixels=True).ImagePositionPatient[2]) - z0
    period = 2 * (len(files) - 1)
    order = [k % period if k % period < len(files) else period - k % period for k in range(n_slices)]
    uid, study = generate_uid(), generate_uid()
    folder.mkdir(parents=True)
    datasets = [pydicom.dcmread(p) for p in files]
    for k, src in enumerate(order):
        ds = datasets[src]
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], z0 + k * step]
        ds.SliceLocation = z0 + k * step
        ds.InstanceNumber = k + 1
        ds.SeriesInstanceUID, ds.StudyInstanceUID = uid, study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{k:04d}.dcm")
    nodule_k = (NODULE[2] - z0) / step  # its slice in the source block; forward copies at 2 * period * n
    copies = [nodule_k + c * period for c in range(n_slices // period + 1)]
    copies += [c - 2 * nodule_k + period for c in copies]  # the mirrored (backward) blocks
    copies = sorted(c for c in copies if 10 <= c <= n_slices - 10)
    mid = sorted(copies, key=lambda c: abs(c - n_slices / 2))[:5]
    return uid, [(NODULE[0], NODULE[1], z0 + c * step) for c in sorted(mid)]


def cli_run(run: Path, folder: Path, candidates: Path, out: Path, threads: int) -> None:
    """`ctnodule predict` as the user runs it, in a child process: wall and the child's CPU seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ctnodule", "predict", str(run), str(folder), "--candidates",
                           str(candidates), "--out", str(out)], check=False, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"ctnodule predict failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"  {'ctnodule predict (CLI, end to end)':36s} {wall:6.2f} s wall {cpu:6.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lidc", type=Path, default=SHARED / "lidc-idri")
    args = parser.parse_args()
    sources = sorted(args.lidc.glob("LIDC-IDRI-0001/*/*/"))
    if not sources:
        print(f"skip: LIDC-IDRI-0001 not found under {args.lidc}")
        return
    import torch

    from ctnodule.data.locations import write_candidates

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        started = time.perf_counter()
        uid, centres = stacked_series(sources[0], folder, N_SLICES)
        write_candidates(Path(tmp) / "candidates.csv", uid, centres)
        print(f"series: {N_SLICES} x 512 x 512 from LIDC-IDRI-0001 written in {time.perf_counter() - started:.1f} s; "
              f"5 candidates at z {', '.join(f'{c[2]:.1f}' for c in centres)} mm; {args.threads} thread(s)")
        print("end to end:")
        cli_run(args.run, folder, Path(tmp) / "candidates.csv", Path(tmp) / "cli.csv", args.threads)

        from ctnodule.data.volume import read_volume
        from ctnodule.explain.ct import predict_ct
        from ctnodule.predict.run import load_run
        from ctnodule.predict.volume import judge_outlines, outlines_at

        print("in process, by stage (files in the page cache):")
        predictor = timed("load_run", load_run, args.run)
        volume = timed("read_volume (300 DICOM files)", read_volume, folder)
        sp = np.asarray(volume.spacing)[::-1]
        seeds = [volume.to_voxel(c)[::-1] for c in centres]
        kind = "classical + learned" if predictor.segmenter is not None else "classical"
        outlines = timed(f"outlines_at x5 ({kind})", lambda: [outlines_at(predictor, volume.hu, sp, s) for s in seeds])
        timed("judge_outlines x5 (cut + predict)", judge_outlines, predictor, volume.hu, sp, outlines,
              [f"c{n}" for n in range(len(outlines))])
        frame = timed("predict_ct (all of it, + CSV, PNGs)", predict_ct, args.run, folder, Path(tmp) / "p.csv",
                      candidates=Path(tmp) / "candidates.csv")
        print(frame[["sample_id", "segmenter", "diameter_mm", "predicted", "score"]].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
