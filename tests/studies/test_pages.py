"""benchmark_table: the seed's tables 3/4 as CV mean ± sd from real per-fold metrics of trained runs."""

from __future__ import annotations

import numpy as np
import pytest
from report.conftest import write_run

from ctnodule.errors import DataError
from ctnodule.runfolder import read_metrics
from ctnodule.studies.pages import benchmark_table


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Per-fold metrics of real trained runs: one 'backbone' per seed, both tasks."""
    out = []
    for seed, backbone in ((0, "efficientnet_lite0"), (1, "resnet18")):
        for task in ("multiclass", "binary"):
            run = tmp_path_factory.mktemp(f"{backbone}-{task}")
            write_run(run, task, "random", seed=seed, epochs=4)
            out.append({"backbone": backbone, "view": "nodule", "task": task, "head": "mlp",
                        "folds": read_metrics(run)["folds"]})
    return out


def test_cells_are_mean_and_sd_over_folds(results):
    markdown, _ = benchmark_table(results)
    assert markdown.index("Table 3: 5-class") < markdown.index("Table 4: binary")
    for result in results:
        qwk_or_auc = "qwk" if result["task"] == "multiclass" else "roc_auc"
        values = np.array([f[qwk_or_auc] for f in result["folds"]])
        assert f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" in markdown
    table3 = markdown.split("### Table 4")[0]
    assert "| backbone | view | head | accuracy |" in table3 and "within_one" in table3
    assert "qwk" not in markdown.split("### Table 4")[1]
    best = max((r for r in results if r["task"] == "binary"), key=lambda r: np.mean([f["roc_auc"] for f in r["folds"]]))
    values = np.array([f["roc_auc"] for f in best["folds"]])
    assert f"**{values.mean():.3f} ± {values.std(ddof=1):.3f}**" in markdown


def test_html_page_saves(results, tmp_path):
    _, page = benchmark_table(results[:2])
    html = page.save(tmp_path / "benchmark.html").read_text()
    assert "Table 3: 5-class" in html and "Table 4: binary" in html and "efficientnet_lite0" in html


def test_bad_results_are_clear_errors(results):
    with pytest.raises(DataError, match="no benchmark results"):
        benchmark_table([])
    with pytest.raises(DataError, match=r"result 0 lacks \['folds'\]"):
        benchmark_table([{"backbone": "b", "view": "nodule", "task": "binary"}])
    with pytest.raises(DataError, match="unknown task"):
        benchmark_table([{**results[0], "task": "ordinal"}])
