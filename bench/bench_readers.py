"""A run beside the radiologists and beside size: re-score its out-of-fold predictions on a dataset with readers.

    python bench/bench_readers.py DATASET RUN [RUN ...] [--out DIR]

DATASET holds `reader_ratings` (e.g. `ctnodule import voi` with the reader matching) and the run's sample
ids. Prints per run: reader vs reader, other readers' consensus vs reader and model vs reader (QWK, exact,
within-one, AUC with patient-bootstrap CIs; unique matches, approximate ones counted apart), AUC/QWK per
size band with the gain over size alone, and the score-3-excluded AUC. `--out` keeps each metrics.json.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from ctnodule.data import SliceDataset
from ctnodule.data.splits import load_splits
from ctnodule.evaluate.summary import evaluate_oof
from ctnodule.runfolder import read_oof, write_metrics


def _ci(m: dict, key: str) -> str:
    return f"{m[key]:.3f} [{m[key + '_ci'][0]:.3f}, {m[key + '_ci'][1]:.3f}]" if key in m else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    frame = SliceDataset(args.dataset, validate=False).frame
    for run in args.runs:
        oof = read_oof(run)
        task = "multiclass" if "proba_4" in oof.columns else "binary"
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            metrics = evaluate_oof(oof, task, frame, load_splits(run, frame), args.dataset, n_boot=1000, seed=0)
        print(f"\n== {run} ({task}); scored in {time.perf_counter() - wall:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU (shared machine)")
        readers = metrics.get("readers", {})
        print(f"nodules with readers: {readers.get('n_nodules')}")
        for block in ("unique", "approximate"):
            for name, m in readers.get(block, {}).items():
                print(f"  {block:11s} {name:17s} pairs {m['n_pairs']:5d}  QWK {_ci(m, 'qwk')}  exact {_ci(m, 'exact')}"
                      f"  within-one {_ci(m, 'within_one')}  AUC {_ci(m, 'roc_auc')}")
        for band, m in metrics["by_size"].items():
            parts = [f"{band:9s} n {m['n']:4d} malignant {m['n_malignant']:4d}"]
            for key in ("roc_auc", "qwk"):
                if key in m:
                    d = m[key]
                    parts.append(f"{key} {d['a']:.3f} vs size {d['b']:.3f}: {d['diff']:+.3f} "
                                 f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
            print("  " + "  ".join(parts))
        ex3 = metrics["auc_excluding_3"]
        print(f"  AUC without score-3 nodules (n {ex3['n']}): {ex3['roc_auc']:.3f} "
              f"[{ex3['ci'][0]:.3f}, {ex3['ci'][1]:.3f}]; with them (3 = benign): {ex3['roc_auc_with_3']:.3f}")
        print("  baselines: " + ", ".join(f"{k} AUC {v['roc_auc']:.3f}" + (f" QWK {v['qwk']:.3f}" if "qwk" in v else "")
                                         for k, v in metrics["baselines"].items()))
        if args.out is not None:
            write_metrics(args.out / f"{run.name}-metrics.json", metrics)


if __name__ == "__main__":
    main()
