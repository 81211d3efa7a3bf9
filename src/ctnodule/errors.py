"""One error family for everything a user can get wrong.

The CLI prints a `CTNoduleError` as one readable message (no traceback) and exits non-zero; any other
exception is a bug in ctnodule and keeps its traceback. Messages name the file/row/parameter, the value
and, where there is one, the fix.
"""

from __future__ import annotations

from pathlib import Path


class CTNoduleError(Exception):
    """Base class: a problem with the user's input, data or configuration."""


class DataError(CTNoduleError):
    """A data file or manifest row is unreadable, malformed or inconsistent."""

    def __init__(self, message: str, path: str | Path | None = None, row: int | str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        self.path = path
        self.row = row
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class ConfigError(CTNoduleError):
    """A configuration value, CLI option or registry name is invalid."""


class RunError(CTNoduleError):
    """A run folder or checkpoint is missing, corrupt or from an incompatible version."""
