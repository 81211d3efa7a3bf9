"""Composite import of every VOI nodule into the real LIDC-IDRI slices: time and realism numbers.

Targets (issue 13): all dev VOIs in <= 2 min on 2 cores; the seam statistic (mean |grad HU| over the
feathered band) of the composites within the spread of the real nodules' own surroundings.

Run: python bench/bench_composite.py NODULES FULL OUT   (NODULES: `ctnodule import voi` output; FULL: the
LIDC-IDRI archive, e.g. ../shared/data/lidc-idri)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ctnodule.preprocess.composite import import_composite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nodules", type=Path)
    ap.add_argument("full", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    t0, c0 = time.perf_counter(), os.times()
    report = import_composite(args.out, nodules=args.nodules, full=args.full, force=True, progress=False)
    c1 = os.times()
    cpu = c1.user + c1.system - c0.user - c0.system
    d = report.details
    seam = d["seam_grad_hu_per_mm"]
    print(f"{report.n_samples} composites, {len(report.skipped)} skipped; wall {time.perf_counter() - t0:.1f} s, "
          f"CPU {cpu:.1f} s (target: <= 120 s on 2 cores); backgrounds {d['backgrounds']['slices_used']} slices")
    for key in ("composite", "real_nodule_surroundings", "background_before"):
        print(f"seam |grad| {key}: {json.dumps(seam[key])}")
    print(f"composites within the real 2.5-97.5 % range: {seam['composite_within_real_95pct_range']:.1%}; "
          f"juxta-pleural {d['n_juxta_pleural']}")
    hist = d["histogram_nodule_and_margin"]
    print(f"HU nodule+margin mean before {hist['mean_before']}, after {hist['mean_after']}, overlap {hist['overlap']}; "
          f"|median mask HU change| {json.dumps(hist['mask_median_hu_abs_change'])}")


if __name__ == "__main__":
    main()
