"""Paired patient-bootstrap comparison of a bench recipe's out-of-fold predictions with a run's.

Both sets of predictions are scored on the SAME resampled patients in every bootstrap draw (cluster
bootstrap over patient_id, `ctnodule.evaluate.bootstrap`), so the CI is of the difference, not of
each number alone. Binary AUC uses P(score >= 4) (the bench's `*_bin`/summed classes, the run's
`proba_1` for a binary run or proba_3 + proba_4 for a 5-class run); QWK and accuracy use the 5-class argmax.

    PYTHONPATH=src python bench/compare_paired.py /work/scratch/cnn/bench/oof_r32.csv fused \
        --binary-run /work/scratch/runs/voi-binary --multiclass-run /work/scratch/runs/voi-multiclass
    PYTHONPATH=src python bench/compare_paired.py RUN_DIR run --multiclass-run /work/scratch/runs/voi-multiclass

(`ctnodule.evaluate.compare.paired_difference`, being written for issue 9's reader metrics, does the same for
two runs of one task; this script also pairs a 5-class model's P(score >= 4) with a binary run.)
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from ctnodule.evaluate.bootstrap import resample_counts, weighted_auc, weighted_metrics


def paired(y5: np.ndarray, a5: np.ndarray, a_bin: np.ndarray, b5: np.ndarray | None, b_bin: np.ndarray | None,
           groups: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """{metric: (a - b on the data, CI low, CI high)} for AUC (binary), QWK and accuracy (5-class)."""
    counts = np.vstack([np.ones(len(y5)), resample_counts(len(y5), n_boot, seed, groups)])
    out = {}
    if b_bin is not None:
        d = weighted_auc(a_bin, y5 >= 3, counts) - weighted_auc(b_bin, y5 >= 3, counts)
        out["auc"] = d
    if b5 is not None:
        ma, mb = weighted_metrics(y5, a5, "multiclass", counts), weighted_metrics(y5, b5, "multiclass", counts)
        out["qwk"] = ma["qwk"] - mb["qwk"]
        out["accuracy"] = ma["accuracy"] - mb["accuracy"]
    return {k: (float(v[0]), *map(float, np.nanpercentile(v[1:], [2.5, 97.5]))) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("oof", help="a bench oof_*.csv, or a run folder (its oof_predictions.csv)")
    ap.add_argument("which", choices=["img", "fused", "desc", "run"], help="which of its predictions ('run': a run folder)")
    ap.add_argument("--binary-run")
    ap.add_argument("--multiclass-run")
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    if args.which == "run":
        a = pd.read_csv(f"{args.oof}/oof_predictions.csv").set_index("sample_id")
        if "proba_4" not in a:
            raise SystemExit("compare a 5-class run folder (a binary run's AUC: use the bench csv or evaluate.compare)")
        y5 = a["y_true"].to_numpy()
        a5 = a[[f"proba_{k}" for k in range(5)]].to_numpy()
        a_bin = a5[:, 3:].sum(1)
    else:
        a = pd.read_csv(args.oof).set_index("sample_id")
        y5 = a["y5"].to_numpy()
        a5 = a[[f"{args.which}_{k}" for k in range(5)]].to_numpy()
        a_bin = a[f"{args.which}_bin"].to_numpy() if f"{args.which}_bin" in a else a5[:, 3:].sum(1)
    b5 = b_bin = None
    if args.multiclass_run:
        m = pd.read_csv(f"{args.multiclass_run}/oof_predictions.csv").set_index("sample_id").loc[a.index]
        assert (m["y_true"].to_numpy() == y5).all()
        b5 = m[[f"proba_{k}" for k in range(5)]].to_numpy()
        b_bin = b5[:, 3:].sum(1)
    if args.binary_run:
        b = pd.read_csv(f"{args.binary_run}/oof_predictions.csv").set_index("sample_id").loc[a.index]
        assert (b["y_true"].to_numpy() == (y5 >= 3)).all()
        b_bin = b["proba_1"].to_numpy()
    res = paired(y5, a5, a_bin, b5, b_bin, a["patient_id"].astype(str).to_numpy(), args.n_boot)
    for k, (d, lo, hi) in res.items():
        print(f"{args.which} - default  {k}: {d:+.3f}  95% CI [{lo:+.3f}, {hi:+.3f}]")


if __name__ == "__main__":
    main()
