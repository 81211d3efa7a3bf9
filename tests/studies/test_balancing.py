import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from ctnodule.studies.balancing import fold_scores, summary_table, write_benchmark


def _oof(seed=0, n=120):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p1 = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    return pd.DataFrame({"fold": np.arange(n) % 3, "y_true": y, "proba_0": 1 - p1, "proba_1": p1})


def test_fold_scores_match_sklearn_per_fold():
    oof = _oof()
    rows = fold_scores(oof, "binary", "none")
    assert [r["fold"] for r in rows] == [0, 1, 2] and rows[0]["minority_class"] == "malignant (4-5)"
    part = oof[oof.fold == 1]
    pred = (part.proba_1 > 0.5).astype(int)
    assert rows[1]["balanced_accuracy"] == balanced_accuracy_score(part.y_true, pred)
    assert rows[1]["roc_auc"] == roc_auc_score(part.y_true, part.proba_1)
    assert rows[1]["minority_recall"] == ((pred == 1) & (part.y_true == 1)).sum() / (part.y_true == 1).sum()


def test_summary_and_report(tmp_path):
    scores = pd.DataFrame(fold_scores(_oof(0), "binary", "none") + fold_scores(_oof(1), "binary", "weights")
                          + [{"task": "binary", "method": "cgan", "fold": -1, "error": "cgan: needs images"}])
    scores["path"] = "engine"
    table = summary_table(scores, "binary")
    assert list(table["method"]) == ["none", "weights", "cgan"] and "qwk" not in table
    assert " ± " in table.loc[0, "roc_auc"] and table.loc[2, "roc_auc"] == "not run"
    page = write_benchmark(scores, tmp_path, "test")
    assert page.is_file() and "needs images" in (tmp_path / "balance.md").read_text()
