"""Golden run: the default preset trained on the phantom must give the metrics.json numbers recorded in
tests/golden/default-phantom.json (written by the code before the one-way-house restructuring). A change
that moves these numbers changed behaviour; if that is intended, regenerate the file and say why in the
commit. Synthetic data: this guards the machinery, not accuracy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ctnodule.recipe import load_preset
from ctnodule.runfolder import read_metrics
from ctnodule.workflow import train_and_report

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "default-phantom.json"


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(v, f"{prefix}{k}.")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flat(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), value


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_default_preset_reproduces_the_golden_metrics(phantom, tmp_path, task):
    expected = dict(_flat(json.loads(GOLDEN.read_text())[task]))
    run = train_and_report(phantom, tmp_path / task, load_preset("default", task=task, folds=3), log=lambda m: None)
    got = dict(_flat({k: v for k, v in read_metrics(run).items() if k != "train_seconds"}))
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        have = got[key]
        if isinstance(want, float) and math.isfinite(want):
            assert have == pytest.approx(want, rel=1e-6, abs=1e-9), key
        else:
            assert have == want, key
