"""Speed of `predict` on a whole CT: a synthetic 512 x 512 x 300 DICOM series with 5 candidates, end to end.

The series is generated here from the phantom (5 nodules, 0.7 mm pixels, 0.7 mm slices) and written as
DICOM; then `predict_ct` (the `ctnodule predict RUN SERIES --candidates CSV` path) is timed as a whole —
opening the run, reading the 300 files, segmenting the 5 nodules, predicting, writing CSV + PNGs — and by
part. Target: <= 10 s on 2 cores. Prints wall and CPU seconds (the machine may be shared: CPU is the
steadier figure).

Run: python bench/bench_predict_ct.py RUN [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ctnodule.data.locations import write_candidates
from ctnodule.data.phantom import PhantomPatient, place_nodules, render_volume
from ctnodule.data.series import write_series

SPACING = 0.7
N_SLICES = 300


def timed(label: str, fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    print(f"  {label:34s} {time.perf_counter() - wall:6.2f} s wall {time.process_time() - cpu:6.2f} s CPU")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    patient = PhantomPatient(rng, SPACING, [])
    patient.nodules = place_nodules(rng, patient, [1, 2, 3, 4, 5])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        started = time.perf_counter()
        hu, _ = render_volume(patient, 0.0, N_SLICES, SPACING)
        origin = (-256 * SPACING, -256 * SPACING, 0.0)
        write_series(folder, hu, (SPACING, SPACING, SPACING), origin, series_uid="1.2.826.0.1.3680043.2.1")
        centres = [(s.centre[1], s.centre[0], s.centre[2]) for s in patient.nodules]
        write_candidates(Path(tmp) / "candidates.csv", "1.2.826.0.1.3680043.2.1", centres)
        print(f"synthetic series {hu.shape[2]}x{hu.shape[1]}x{hu.shape[0]} written in "
              f"{time.perf_counter() - started:.1f} s; torch threads {args.threads}")

        from ctnodule.explain.ct import predict_ct

        print("end to end (run opened, series read, 5 nodules segmented and predicted, CSV + PNGs written):")
        frame = timed("predict_ct", predict_ct, args.run, folder, Path(tmp) / "p.csv",
                      candidates=Path(tmp) / "candidates.csv")
        print(frame[["sample_id", "diameter_mm", "predicted", "score"]].round(3).to_string(index=False))
        print("by part (second pass, files now in the page cache):")
        from ctnodule.data.volume import read_volume
        from ctnodule.predict.run import load_run
        from ctnodule.preprocess.segment import segment_nodule

        predictor = timed("load_run", load_run, args.run)
        volume = timed("read_volume (300 DICOM files)", read_volume, folder)
        sp = np.asarray(volume.spacing)[::-1]
        seeds = [volume.to_voxel(c)[::-1] for c in centres]
        masks = timed("segment_nodule x5", lambda: [segment_nodule(volume.hu, sp, s) for s in seeds])
        from ctnodule.preprocess.segment import nodule_sample

        slices = [nodule_sample(volume.hu, sp, m.mask) for m in masks]
        timed("predict_proba x5", predictor.predict_proba, slices)


if __name__ == "__main__":
    main()
