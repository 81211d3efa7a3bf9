"""Training tests write frozen-backbone features to a per-module cache, never the user's ~/.cache."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module", autouse=True)
def _feature_cache(tmp_path_factory):
    old = os.environ.get("CTNODULE_CACHE")
    os.environ["CTNODULE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("CTNODULE_CACHE")
    else:
        os.environ["CTNODULE_CACHE"] = old
