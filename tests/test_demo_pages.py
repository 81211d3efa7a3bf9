"""Every report page of the demo (`ctnodule run` on a small phantom, plus `evaluate`), checked as a person
sees it: in headless Chromium (Debian's `chromium` + `chromium-driver`; `make test` installs them when it
can). Asserts: every relative link and image resolves to a file, every image decodes in the browser
(naturalWidth > 0), the synthetic banner is on every page and visible, every page links back to its
index, and no page, config or JSON names the temporary folder the run was built in.

Full-page screenshots are saved under the test's tmp dir, and copied to $CTNODULE_SHOTS when set.
"""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from support import chromium_driver

#: the name `ctnodule.atomic.atomic_dir` gives a folder while it is built: `.NAME.tmp-XXXXXXXX`
TEMPORARY = re.compile(r"\.[^/\\\s\"'<>]+\.tmp-[A-Za-z0-9_]+")


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """`ctnodule run` on a 20-patient phantom with 2 folds (every stage, every classifier), plus an evaluate
    page of its nodule-binary run; the output folder."""
    from ctnodule.evaluate.run import evaluate_run
    from ctnodule.workflow import run_all

    out = tmp_path_factory.mktemp("demo") / "phantom"
    run_all(None, out, folds=2, patients=20, explain_n=6, log=lambda message: None)
    evaluate_run(out / "runs" / "nodule-binary", out / "data", out / "evaluate", n_boot=100)
    return out


def pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("report.html") if not any(part.startswith(".") for part in p.parts))


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and (tag, name) in {("a", "href"), ("img", "src")}:
                self.refs.append((tag, value))


def refs(page: Path) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.refs


def test_every_stage_has_a_page(demo):
    found = {p.parent.relative_to(demo).as_posix() for p in pages(demo)}
    assert {".", "explore", "preprocessed", "evaluate"} <= found
    trained = {f.split("/")[1] for f in found if f.startswith("runs/")}
    assert trained and {f"explain/{name}" for name in trained} <= found  # every classifier explained
    assert {"nodule-binary", "nodule-multiclass"} <= trained


def test_relative_links_and_images_resolve_and_every_page_links_its_index(demo):
    index = demo / "report.html"
    for page in pages(demo):
        targets = []
        for tag, ref in refs(page):
            url = urlparse(ref)
            assert not url.scheme and not ref.startswith("/"), f"{page}: absolute reference {ref}"
            target = (page.parent / unquote(url.path)).resolve()
            assert target.is_file(), f"{page.relative_to(demo)}: broken {tag} {ref}"
            targets.append(target)
        if page != index and page.parent.name != "evaluate":  # evaluate was run on its own: its index is the run
            assert index.resolve() in targets, f"{page.relative_to(demo)} does not link back to the index"
    index_links = {t for tag, t in refs(index) if tag == "a"}
    assert {p.relative_to(demo).as_posix() for p in pages(demo) if p != index and "evaluate" not in p.parts} \
        <= index_links


def test_no_file_names_the_temporary_build_folder(demo):
    for path in demo.rglob("*"):
        if path.suffix in {".html", ".yaml", ".json", ".csv", ".md"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not TEMPORARY.search(text), f"{path.relative_to(demo)}: {TEMPORARY.search(text)[0]}"


def test_every_page_says_the_data_is_synthetic(demo):
    for page in pages(demo):
        assert 'id="synthetic-banner"' in page.read_text(encoding="utf-8"), page.relative_to(demo)


def test_outputs_are_readable_by_others_under_the_usual_umask(demo):
    mask = os.umask(0o022)
    os.umask(mask)
    for path in [demo, *demo.rglob("*")]:
        full = 0o777 if path.is_dir() else 0o666
        assert path.stat().st_mode & 0o777 == full & ~mask, path.relative_to(demo)


@pytest.fixture(scope="module")
def browser():
    with chromium_driver("--window-size=1280,900", "--allow-file-access-from-files") as d:
        yield d


def test_pages_in_chromium(demo, browser, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for page in pages(demo):
        name = "_".join(page.relative_to(demo).parts[:-1]) or "index"
        browser.set_window_size(1280, 900)
        browser.get(page.resolve().as_uri())
        browser.execute_script("return document.readyState")
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.getAttribute('src'))")
        assert broken == [], f"{name}: images that do not load: {broken}"
        n_images = browser.execute_script("return document.images.length")
        assert n_images > 0 or name == "index", f"{name}: no figure at all"
        banner = browser.find_element("id", "synthetic-banner")
        assert banner.is_displayed() and "SYNTHETIC" in banner.text
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(height + 100, 16000))
        browser.save_screenshot(str(shots / f"{name}.png"))
    if os.environ.get("CTNODULE_SHOTS"):
        shutil.copytree(shots, os.environ["CTNODULE_SHOTS"], dirs_exist_ok=True)
