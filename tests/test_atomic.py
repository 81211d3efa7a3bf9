"""Atomic writes: a failure leaves the previous file/folder untouched and no temporary debris."""

from __future__ import annotations

import pytest

from ctnodule.atomic import atomic_dir, atomic_path, write_text
from ctnodule.errors import CTNoduleError


def test_failed_file_write_keeps_the_old_content(tmp_path):
    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_dir_refuses_to_overwrite_without_force_and_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(CTNoduleError, match="--force"), atomic_dir(out):
        pass
    with pytest.raises(RuntimeError), atomic_dir(out, force=True) as tmp:
        (tmp / "x").write_text("2")
        raise RuntimeError("stage failed")
    assert (out / "x").read_text() == "1"
    with atomic_dir(out, force=True) as tmp:
        (tmp / "y").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
