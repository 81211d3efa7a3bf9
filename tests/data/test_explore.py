"""`explore`: the report, its figures and the numbers in its tables, on the phantom and real VOIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctnodule.cli import app
from ctnodule.data.explore import PAGE, explore
from ctnodule.data.explore_stats import (
    class_distribution,
    class_weights_table,
    laplacian_variance,
    percentile_table,
    shape_distribution,
)
from ctnodule.data.manifest import read_manifest

FIGURES = {"class_distribution", "slice_shapes", "laplacian_variance", "nodule_size", "samples_full", "samples_nodule"}


@pytest.fixture(scope="module")
def phantom_report(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    return explore(phantom, out, samples_per_class=3)


def test_report_page_figures_and_tables(phantom_report):
    out = phantom_report.parent
    assert phantom_report.name == PAGE
    html = phantom_report.read_text()
    assert "SYNTHETIC" in html and "Class weights" in html and "Percentile" in html
    assert {p.stem for p in (out / "figures").glob("*.png")} == FIGURES
    for stem in FIGURES:
        assert f"figures/{stem}.png" in html
        assert (out / "figures" / f"{stem}.png").stat().st_size > 5_000


def test_tables_agree_with_the_manifest(phantom, phantom_report):
    frame = read_manifest(phantom)
    tables = phantom_report.parent / "tables"
    dist = pd.read_csv(tables / "class_distribution.csv")
    for view in ("full", "nodule"):
        counts = frame[frame["view"] == view]["malignancy"].value_counts()
        got = dist[(dist["view"] == view) & (dist["task"] == "multiclass")].set_index("class")["n"]
        assert all(got[str(m)] == counts.get(m, 0) for m in range(1, 6))
    stats = pd.read_csv(tables / "slice_stats.csv")
    assert len(stats) == len(frame) and (stats.loc[stats["view"] == "full", "rows"] == 512).all()


def test_class_weights_follow_the_sklearn_formula():
    frame = pd.DataFrame({"view": ["nodule"] * 10, "malignancy": [1, 1, 1, 1, 2, 2, 3, 4, 4, 5]})
    frame["label_binary"] = (frame["malignancy"] >= 4).astype(int)
    w = class_weights_table(frame)
    multi = w[(w["view"] == "nodule") & (w["task"] == "multiclass")].set_index("class")["weight"]
    assert multi["1"] == pytest.approx(10 / (5 * 4)) and multi["3"] == pytest.approx(10 / (5 * 1))
    binary = w[(w["view"] == "all") & (w["task"] == "binary")]["weight"].to_numpy()
    assert binary == pytest.approx([10 / (2 * 7), 10 / (2 * 3)])
    missing = class_weights_table(frame[frame["malignancy"] != 5])
    assert np.isnan(missing[(missing["task"] == "multiclass") & (missing["class"] == "5")]["weight"]).all()
    dist = class_distribution(frame)
    assert dist[(dist["view"] == "all") & (dist["class"] == "1")]["share"].iloc[0] == pytest.approx(0.4)


def test_percentiles_shapes_and_laplacian():
    stats = pd.DataFrame({"view": ["nodule"] * 100, "laplacian_var": np.arange(100.0),
                          "rows": [44] * 60 + [43] * 37 + [90] * 3, "cols": [44] * 100})
    pct = percentile_table(stats)
    assert list(pct["percentile"]) == list(range(99, 89, -1))
    assert list(pct["slices_above"]) == list(range(1, 11))
    shapes = shape_distribution(stats, min_count=5)
    assert list(shapes["shape"]) == ["44x44", "43x44"] and list(shapes["n"]) == [60, 37]
    assert laplacian_variance(np.full((9, 9), -800, np.int16)) == 0.0
    checker = (np.indices((16, 16)).sum(0) % 2 * 100).astype(np.int16)
    assert laplacian_variance(checker) > laplacian_variance(np.repeat(np.arange(16.0), 16).reshape(16, 16))


@pytest.mark.realdata
def test_explore_real_voi_via_cli(voi_src, tmp_path):
    from typer.testing import CliRunner

    from ctnodule.data.importers import import_voi

    data = import_voi(tmp_path / "voi", src=voi_src, limit=60, progress=False).path
    result = CliRunner().invoke(app, ["explore", str(data), "--out", str(tmp_path / "rep"), "--samples", "2"])
    assert result.exit_code == 0, result.output
    figures = {p.stem for p in (tmp_path / "rep" / "figures").glob("*.png")}
    assert figures == FIGURES - {"samples_full"}
    assert "SYNTHETIC" not in (tmp_path / "rep" / PAGE).read_text()


def test_force_replaces_the_whole_report_and_refuses_without_it(phantom, tmp_path):
    from ctnodule.errors import ConfigError

    out = tmp_path / "rep"
    (out / "figures").mkdir(parents=True)
    stale = out / "figures" / "samples_old_view.png"
    stale.write_bytes(b"left over from an earlier report")
    with pytest.raises(ConfigError, match="pass --force"):
        explore(phantom, out, samples_per_class=1)
    assert stale.exists()
    explore(phantom, out, samples_per_class=1, force=True)
    assert not stale.exists()
    assert {p.stem for p in (out / "figures").glob("*.png")} == FIGURES
    assert not list(tmp_path.glob(".rep.*"))
