"""Training tests write frozen-backbone features to a per-module cache, never the user's ~/.cache."""

from __future__ import annotations

import pytest
from support import private_cache


@pytest.fixture(scope="module", autouse=True)
def _feature_cache(tmp_path_factory):
    with private_cache(tmp_path_factory.mktemp("cache")):
        yield
