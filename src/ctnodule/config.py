"""YAML in/out for the pydantic config models each stage defines (preprocess, train, balance, ...).

Configs are plain pydantic models with defaults in their field definitions; `save_yaml`/`load_yaml`
round-trip them, and a bad file becomes a `ConfigError` naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pydantic
import yaml

from ctnodule.atomic import write_text
from ctnodule.errors import ConfigError

M = TypeVar("M", bound=pydantic.BaseModel)


class StrictModel(pydantic.BaseModel):
    """Base for configs: unknown keys are errors (a misspelt option must never be silently ignored)."""

    model_config = pydantic.ConfigDict(extra="forbid")


def save_yaml(model: pydantic.BaseModel, path: str | Path) -> Path:
    """Write `model` as YAML, atomically."""
    return write_text(path, yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))


def load_yaml(cls: type[M], path: str | Path) -> M:
    """Read a YAML file into `cls`; errors name the file and the offending field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
