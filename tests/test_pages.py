"""HtmlReport: what every page says the same way (banner, links back, missing values, escaping)."""

from __future__ import annotations

import math

import pandas as pd

from ctnodule.atomic import atomic_dir
from ctnodule.pages import MISSING, HtmlReport, shown_path, synthetic_banner


def test_banner_nav_warning_and_table_cells(tmp_path):
    index = tmp_path / "report.html"
    page = HtmlReport("T", "sub", banner="SYNTHETIC DATA: generated", nav=[("index", index)])
    page.warning("WARNING - RANDOM WEIGHTS")
    page.table(pd.DataFrame({"metric": ["qwk", "<b>"], "value": [math.nan, 0.5], "report": ["runs/a/report.html", ""]}),
               links={"report": None})
    html = page.save(tmp_path / "stage" / "deeper" / "report.html").read_text()
    assert '<div class="banner" role="note" id="synthetic-banner">SYNTHETIC DATA: generated</div>' in html
    assert '<a href="../../report.html">' in html  # relative to the page, so the folder can move
    assert '<div class="warning" role="alert">WARNING - RANDOM WEIGHTS</div>' in html
    assert f"<td>{MISSING}</td>" in html and "<td>0.500</td>" in html and "nan" not in html.lower()
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert '<a href="runs/a/report.html">runs/a/report.html</a>' in html


def test_synthetic_banner_says_all_or_part():
    assert synthetic_banner(None) is None
    assert synthetic_banner({"n_synthetic": 0, "n_samples": 5, "sources": []}) is None
    assert synthetic_banner({"n_synthetic": 5, "n_samples": 5, "sources": ["CT phantom"]}).startswith(
        "SYNTHETIC DATA (CT phantom)")
    assert synthetic_banner({"n_synthetic": 2, "n_samples": 5, "sources": ["conditional GAN"]}).startswith(
        "COMPOSITE DATA: 2 of 5")


def test_paths_inside_a_build_are_shown_relative_never_by_their_temporary_name(tmp_path):
    with atomic_dir(tmp_path / "out") as tmp:
        shown = shown_path(tmp / "data", tmp / "runs" / "nodule-binary")
        assert shown == "../../data" and ".tmp-" not in shown
    assert shown_path(tmp_path / "elsewhere", tmp_path / "out") == str(tmp_path / "elsewhere")
