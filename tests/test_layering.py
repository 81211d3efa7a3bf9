"""The house imports one way: a stage may import the stages below it, never one above it, and no two parts
import each other. Function-level imports count too (they hid cycles before).

The stage order, written once (the README's architecture section shows the same picture):
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ctnodule"

#: floors, bottom to top; a part may import its own floor's modules and any floor below
FLOORS: list[set[str]] = [
    {"errors", "atomic", "registry", "config", "runtime", "vocab", "runfolder", "pages", "recipe", "__init__",
     "configs", "templates"},
    {"data"},
    {"preprocess"},
    {"models"},
    {"balance"},
    {"train"},
    {"predict"},
    {"export"},
    {"evaluate"},
    {"explain"},
    {"report"},
    {"workflow"},
    {"studies", "serve"},  # both drive several stages and nothing imports them (serve: predict/explain/evaluate)
    {"cli", "__main__"},
]
GROUND = FLOORS[0]


def floor_of(part: str) -> int:
    for i, parts in enumerate(FLOORS):
        if part in parts:
            return i
    raise AssertionError(f"part {part!r} of src/ctnodule has no floor in tests/test_layering.py: add it")


def internal_imports() -> list[tuple[str, str, str]]:
    """(importing part, imported part, 'file:line') for every import between parts of ctnodule."""
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        part = rel.parts[0].removesuffix(".py")
        module = ("ctnodule", *rel.with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = list(module[: len(module) - node.level]) if node.level else []
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                continue
            for name in names:
                bits = name.split(".")
                if bits[0] == "ctnodule" and len(bits) > 1 and bits[1] != part:
                    edges.append((part, bits[1], f"{rel}:{node.lineno}"))
    return edges


def test_every_part_has_a_floor():
    parts = {p.name.removesuffix(".py") for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir()}
    for part in parts - {"__pycache__"}:
        floor_of(part)


def test_no_import_reaches_up_a_floor():
    upward = [f"{where}: {a} imports {b}" for a, b, where in internal_imports() if floor_of(b) > floor_of(a)]
    assert not upward, "imports that run back up the house:\n" + "\n".join(upward)


def test_parts_never_import_each_other():
    edges = {(a, b) for a, b, _ in internal_imports() if not (a in GROUND and b in GROUND)}
    both = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    assert not both, f"parts that import each other: {both}"


@pytest.mark.parametrize("stage", ["train"])
def test_only_the_top_imports_train(stage):
    """The run folder is the only thing later stages know of training."""
    users = sorted({a for a, b, _ in internal_imports() if b == stage and a != stage})
    assert set(users) <= {"studies", "workflow", "cli"}, users
