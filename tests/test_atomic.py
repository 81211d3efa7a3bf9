"""Atomic writes: a failure leaves the previous file/folder untouched and no temporary debris."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_permissions_the_umask_gives(tmp_path, umask):
    import os

    old = os.umask(umask)
    try:
        page = write_text(tmp_path / "report.html", "<p>shared</p>")
        with atomic_dir(tmp_path / "run") as tmp:
            write_text(tmp / "config.yaml", "a: 1")
    finally:
        os.umask(old)
    assert page.stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "run" / "config.yaml").stat().st_mode & 0o777 == 0o666 & ~umask


def test_final_path_names_where_a_temporary_build_will_live(tmp_path):
    from ctnodule.atomic import final_path, in_build

    with atomic_dir(tmp_path / "runs" / "demo") as tmp:
        inner = tmp / "data" / "manifest.csv"
        assert in_build(inner) and tmp.name.startswith(".demo.tmp-")
        assert final_path(inner) == tmp_path / "runs" / "demo" / "data" / "manifest.csv"
    assert not in_build(tmp_path / "runs" / ".hidden" / "x")
    assert final_path("relative/.a.b.tmp-x1_y/c") == Path("relative/a.b/c")


def test_unwritable_places_are_one_line_config_errors(tmp_path):
    """A file where a folder is expected, or a folder nobody may write (here /proc, read-only even for
    root): a `ConfigError` naming the path, not an OSError traceback, and nothing left behind."""
    from ctnodule.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker / "out", Path("/proc/ctnodule-out")):
        with pytest.raises(ConfigError, match="cannot write here"), atomic_dir(target):
            pass
        with pytest.raises(ConfigError, match="cannot write here"):
            write_text(target / "a.txt", "x")
    with pytest.raises(ConfigError, match="is a file"), atomic_dir(blocker):
        pass
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]
