"""Nodule locations: --at / --at-voxel parsing and the LUNA16-layout candidates CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ctnodule.data.locations import at_voxel, at_world, read_candidates, write_candidates
from ctnodule.data.volume import Volume
from ctnodule.errors import ConfigError, DataError


def test_at_parses_world_and_voxel():
    vol = Volume(np.zeros((4, 5, 6), np.int16), (0.5, 0.8, 2.0), np.array([10.0, 20.0, -30.0]), np.eye(3), Path("v"))
    assert at_world("-80.5, 42,-117").world == (-80.5, 42.0, -117.0)
    assert at_voxel(vol, "2,3,1").world == pytest.approx((11.0, 22.4, -28.0))
    for bad in ("1,2", "a,b,c", "1,2,3,4", "1,nan,2"):
        with pytest.raises(ConfigError, match="three numbers"):
            at_world(bad)


def test_candidates_round_trip_and_series_filter(tmp_path: Path):
    points = [(-56.08, -67.85, -311.92), (53.21, -244.41, -245.17)]
    write_candidates(tmp_path / "a.csv", "1.2.3", points)
    back = read_candidates(tmp_path / "a.csv")
    assert np.allclose([p.world for p in back], points) and [p.name for p in back] == ["cand1", "cand2"]
    # LUNA16's candidates.csv has a class column and many series: rows of the chosen series only
    text = (tmp_path / "a.csv").read_text().splitlines()
    lines = [text[0] + ",class"] + [t + ",0" for t in text[1:]] + ["9.9.9,1.0,2.0,3.0,1"]
    (tmp_path / "luna.csv").write_text("\n".join(lines) + "\n")
    assert [p.world for p in read_candidates(tmp_path / "luna.csv", "9.9.9")] == [(1.0, 2.0, 3.0)]
    assert len(read_candidates(tmp_path / "luna.csv", "1.2.3")) == 2
    with pytest.raises(DataError, match="2 series.*--series"):
        read_candidates(tmp_path / "luna.csv")
    with pytest.raises(DataError, match="no row for series 4.4"):
        read_candidates(tmp_path / "luna.csv", "4.4")


def test_bad_candidates_files(tmp_path: Path):
    (tmp_path / "cols.csv").write_text("seriesuid,x,y,z\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['coordX'"):
        read_candidates(tmp_path / "cols.csv")
    (tmp_path / "num.csv").write_text("seriesuid,coordX,coordY,coordZ\n1,2,3,4\n1,2,x,4\n")
    with pytest.raises(DataError, match="row 3"):
        read_candidates(tmp_path / "num.csv")
    with pytest.raises(DataError, match="not found"):
        read_candidates(tmp_path / "none.csv")
