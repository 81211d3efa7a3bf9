"""What the browser tests and the fixtures that train runs share: a headless Chromium driver and a private
feature cache. A plain module beside the tests (pytest puts `tests/` on the path), so each test file keeps its
own fixtures but not its own copy of the set-up."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@contextlib.contextmanager
def chromium_driver(*args: str) -> Iterator:
    """Debian's chromium, headless, driven by Selenium with the given extra arguments (e.g. the window size).
    Skips the calling test with the reason when chromium or chromedriver is missing: Playwright's own browser
    download is not reachable here, so these are the only browser we can count on."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium / chromedriver not installed (Debian: apt-get install chromium chromium-driver; "
                    "`make test` does it when run as root)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def private_cache(folder: Path) -> Iterator[None]:
    """`CTNODULE_CACHE` pointed at `folder` for the block: frozen features computed by tests never land in
    (or come from) the user's cache."""
    old = os.environ.get("CTNODULE_CACHE")
    os.environ["CTNODULE_CACHE"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CTNODULE_CACHE")
        else:
            os.environ["CTNODULE_CACHE"] = old
