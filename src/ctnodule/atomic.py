"""Atomic writes: a reader (or a crash) never sees a half-written file or folder.

Files are written to a temporary sibling and `os.replace`d; folders are built in a temporary sibling
and renamed into place, replacing an existing one only when the caller allows it. Both get the permissions
a plain `open`/`mkdir` would give under the user's umask (mkstemp/mkdtemp alone make them private, 0600/0700,
so a report could not be shared or served). `final_path` names where a path inside a folder still being
built will live, so nothing written there records the temporary name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ctnodule.errors import ConfigError, CTNoduleError

#: the temporary sibling of a folder `name` being built: `.name.tmp-XXXXXXXX` (mkdtemp's random suffix)
_TMP_DIR = re.compile(r"^\.(?P<name>.+)\.tmp-[A-Za-z0-9_]+$")


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def final_path(path: str | Path) -> Path:
    """`path` with every temporary folder of `atomic_dir` replaced by the folder it becomes on success:
    what a file written during the build should record as its location."""
    return Path(*(m["name"] if (m := _TMP_DIR.match(part)) else part for part in Path(path).parts))


def in_build(path: str | Path) -> bool:
    """True when `path` lies inside a folder `atomic_dir` is still building."""
    return any(_TMP_DIR.match(part) for part in Path(path).parts)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed.

    `suffix` defaults to the target's own suffix(es), so writers that pick a format by extension
    (pynrrd, nibabel, matplotlib) still do the right thing.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=suffix if suffix is not None else "".join(path.suffixes),
            dir=path.parent,
        )
    except OSError as exc:  # a file where a folder should be, no permission, a read-only mount
        raise ConfigError(f"{path}: cannot write here ({exc.strerror}); choose another path") from exc
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes `path` only if the block succeeds.

    An existing non-empty `path` is refused unless `force`, in which case it is replaced only after the
    new content is complete (the old one is never lost to a failed run).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; the output must be a folder")
    if path.exists() and any(path.iterdir()) and not force:
        raise CTNoduleError(f"{path}: output folder exists and is not empty; pass --force to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write here ({exc.strerror}); choose another output folder") from exc
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_writable(path: str | Path, what: str = "output") -> None:
    """Raise `ConfigError` unless `path` can be created and written: its nearest existing ancestor must be a
    folder we can write in. Called before any output or compute exists, so a bad path costs nothing.

    Writability is probed by creating a file (permission bits alone say nothing when running as root or on
    a read-only mount).
    """
    path = Path(path)
    probe = path if path.is_dir() else path.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{probe} is a file, but the {what} {path} needs a folder there; choose another path")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(f"{path}: the {what} is not writable ({exc.strerror} in {probe}); choose another "
                          "path") from exc


def check_out_dir(path: str | Path, force: bool, what: str = "output folder") -> None:
    """`path` may become an output folder: not a file, not a non-empty folder unless `force`, writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; the {what} must be a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ConfigError(f"{path}: {what} exists and is not empty; pass --force to replace it")
    check_writable(path, what)


def check_out_file(path: str | Path, force: bool, what: str = "output file") -> None:
    """`path` may become an output file: not a folder, not an existing file unless `force`, writable."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; the {what} must be a file path (e.g. {path / 'predictions.csv'})")
    if path.exists() and not force:
        raise ConfigError(f"{path}: {what} exists; pass --force to overwrite it")
    check_writable(path, what)
