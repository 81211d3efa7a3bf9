"""Why-this-answer numbers of trained runs on an imported slice dataset: calibration (ECE / Brier / log-loss
with patient-bootstrap CIs, AUC beside) of each run, and the speed of attributions on the run's nodules.

Run: python bench/bench_why.py DATA RUN [RUN ...]   e.g. runs/bench/voi runs/bench/train-binary
Targets (issue 17): one nodule's attribution <= 50 ms; 200 nodules end to end <= 1 min; binary ECE <= 0.05.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ctnodule.data.dataset import SliceDataset
from ctnodule.models.attribution import attribute
from ctnodule.models.descriptors import feature_names
from ctnodule.predict.run import load_run


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def calibration_row(run: Path) -> str:
    m = json.loads((run / "metrics.json").read_text())
    cfg = (run / "config.yaml").read_text()
    cal = next((line.split(":", 1)[1].strip() for line in cfg.splitlines() if line.startswith("calibration:")), "none")
    ci = m["ci"]
    cell = lambda k: f"{m[k]:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]"
    return (f"{run.name}: calibration {cal}; ECE {cell('ece')}  Brier {cell('brier')}  log-loss {cell('log_loss')}  "
            f"AUC {cell('roc_auc')}")


def main() -> None:
    if len(sys.argv) < 3:
        print(__doc__)
        return
    data, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    print("calibration (out-of-fold, 10 equal-mass bins; 95 % patient-bootstrap CIs):")
    for run in runs:
        print(" ", calibration_row(run))
    predictor = load_run(runs[0])
    if not predictor.has_sklearn_head:
        print(f"{runs[0]}: no scikit-learn head, no attribution timing")
        return
    ds = SliceDataset(data).view(predictor.view)
    slices = predictor.load_slices(ds.subset(np.arange(min(200, len(ds)))))
    (attr, _, _), wall, cpu = timed(lambda: predictor.attribute(slices))
    print(f"attribution of {len(slices)} nodules end to end (preprocess + features + attribution + reasons): "
          f"wall {wall:.1f} s, CPU {cpu:.1f} s")
    fm, names = predictor._fm, feature_names(predictor._fm.cfg.tabular)
    X = fm.head_inputs(slices[:1])
    _, wall, cpu = timed(lambda: [attribute(fm.sk_head, X, names, predictor.info.get("feature_groups"))
                                  for _ in range(100)])
    print(f"one nodule's attribution (given its features): wall {wall * 10:.2f} ms, CPU {cpu * 10:.2f} ms")
    err = np.abs(attr.base + attr.values.sum(1) - attr.output).max()
    print(f"additivity: max |base + sum - output| = {err:.2e} ({attr.method}, {attr.space})")


if __name__ == "__main__":
    main()
