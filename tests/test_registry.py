"""Registries: create by name, None params dropped, unknown names suggest close matches."""

from __future__ import annotations

import pytest

from ctnodule.errors import ConfigError
from ctnodule.registry import Registry


def test_create_drops_none_and_lists_available():
    reg: Registry[dict] = Registry("widget")

    @reg.register("square")
    def square(side: int = 2) -> dict:
        return {"side": side}

    assert reg.create("square", side=None) == {"side": 2}
    assert reg.create("square", side=5) == {"side": 5}
    assert reg.available() == ["square"] and "square" in reg
    with pytest.raises(ConfigError, match=r"unknown widget 'sqare'.*Did you mean 'square'"):
        reg.create("sqare")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("square")(square)
