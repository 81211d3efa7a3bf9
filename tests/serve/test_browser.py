"""`ctnodule serve` end to end in a real headless Chromium (Debian's `chromium` + `chromium-driver`, as
tests/test_demo_pages.py; `make test` installs them when it can): the app runs under uvicorn on a free
local port, Selenium drives the page as a person would.

Scan view: upload a NIfTI, open the phantom, scroll with the wheel and keys, window presets and drag,
the mm ruler, click a nodule -> probabilities, calibration note and the heat map (pixels change when it is
toggled). Dataset view: filters, sorting, thumbnails, the detail panel. Run view: metrics and the model
card. No request leaves the server. Screenshots go to the test's tmp folder (printed), and to
$CTNODULE_SHOTS when set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import chromium_driver


@pytest.fixture(scope="module")
def server(serve_app):
    from ctnodule.serve.app import running

    with running(serve_app) as url:
        yield url


@pytest.fixture(scope="module")
def driver():
    with chromium_driver("--window-size=1400,950") as d:
        yield d


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve-shots")
    yield folder
    print(f"\nscreenshots of the viewer: {folder}")
    if os.environ.get("CTNODULE_SHOTS"):
        shutil.copytree(folder, os.environ["CTNODULE_SHOTS"], dirs_exist_ok=True)


def wait(d, condition, timeout=60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.1).until(condition)


def js(d, script, *args):
    return d.execute_script(script, *args)


def click_voxel(d, i, j, shift=False):
    """Click the canvas at voxel (i, j) of the shown slice (the phantom has no display flips)."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = d.find_element("id", "slice")
    w, h = canvas.size["width"], canvas.size["height"]
    n_i, n_j = js(d, "return window.ctnodule.viewer.scan.shape.slice(0, 2)")
    ActionChains(d).move_to_element_with_offset(canvas, int((i + 0.5) * w / n_i - w / 2),
                                                int((j + 0.5) * h / n_j - h / 2)).click().perform()


def test_scan_view_in_chromium(server, driver, shots, ct_root):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys

    d = driver
    d.get(server)
    wait(d, lambda d: js(d, "return document.body.dataset.ready === '1'"))
    # an uploaded NIfTI
    d.find_element("id", "upload").send_keys(str(ct_root / "phantom.nii.gz"))
    wait(d, lambda d: js(d, "const s = window.ctnodule.viewer.scan; return s && s.name === 'phantom.nii.gz' "
                            "&& window.ctnodule.viewer.cache.size > 0"))
    assert "320 × 320" in d.find_element("id", "scan-status").text
    # the phantom, with its known nodules
    d.find_element("id", "phantom-button").click()
    wait(d, lambda d: js(d, "const s = window.ctnodule.viewer.scan; return s && s.synthetic && "
                            "window.ctnodule.viewer.cache.has(window.ctnodule.viewer.k)"))
    assert "SYNTHETIC" in d.find_element("id", "banner").text
    viewer = "window.ctnodule.viewer"
    k0 = js(d, f"return {viewer}.k")
    canvas = d.find_element("id", "slice")
    ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 120).perform()
    wait(d, lambda d: js(d, f"return {viewer}.k") == k0 + 1)
    canvas.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
    wait(d, lambda d: js(d, f"return {viewer}.k") == k0 + 3)
    canvas.send_keys(Keys.PAGE_UP)
    wait(d, lambda d: js(d, f"return {viewer}.k") == k0 - 7)
    assert d.find_element("id", "slice-label").text.startswith(f"slice {k0 - 6} / 96")
    # window: presets and drag (a drag is not a click: nothing is predicted)
    d.find_element("css selector", ".preset[data-width='400']").click()
    assert d.find_element("id", "wl-label").text == "W 400 / L 40"
    ActionChains(d).move_to_element(canvas).click_and_hold().move_by_offset(50, 0).release().perform()
    width = js(d, f"return {viewer}.width")
    assert width > 400 and js(d, f"return {viewer}.result") is None
    d.find_element("css selector", ".preset[data-width='1500']").click()
    # the ruler: shift-drag 120 screen px across the 600 px canvas of a 512 px, 0.7 mm slice
    ActionChains(d).move_to_element(canvas).key_down(Keys.SHIFT).click_and_hold().move_by_offset(120, 0).release() \
        .key_up(Keys.SHIFT).perform()
    mm = float(d.find_element("id", "hu-label").text.split()[1])
    assert mm == pytest.approx(120 * 512 / 600 * 0.7, rel=0.05)
    # a click on a nodule: segmentation, prediction, outline, heat map
    nodule = js(d, f"return {viewer}.scan.candidates[2]")
    d.find_elements("css selector", "button.candidate")[2].click()
    wait(d, lambda d: js(d, f"return {viewer}.k") == round(nodule["k"]))
    click_voxel(d, nodule["i"], nodule["j"])
    wait(d, lambda d: d.find_element("id", "result").is_displayed())
    bars = d.find_elements("css selector", "#bars .bar")
    assert [b.get_attribute("data-class") for b in bars] == ["1", "2", "3", "4", "5"]
    assert "P(4–5)" in d.find_element("id", "p-malignant").text
    assert "out-of-fold" in d.find_element("id", "calibration").text
    res = js(d, f"return {viewer}.result")
    assert res["heatmap"] is not None and js(d, f"return {viewer}.k") == res["heatmap"]["k"]
    region = f"const h = {viewer}.result.heatmap, c = document.getElementById('slice').getContext('2d'); " \
             "return Array.from(c.getImageData(h.i0, h.j0, h.width, h.height).data);"
    with_heat = js(d, region)
    d.find_element("id", "heat-toggle").click()
    without = js(d, region)
    changed = sum(a != b for a, b in zip(with_heat, without))
    assert changed > 0.05 * len(without)  # the overlay really is drawn (and really goes away)
    d.find_element("id", "heat-toggle").click()
    assert js(d, "return window.performance.getEntriesByType('resource').map(e => e.name)"
                 ".filter(n => !n.startsWith(arguments[0]) && !n.startsWith('data:'))", server) == []
    d.save_screenshot(str(shots / "scan.png"))


def test_dataset_and_run_views_in_chromium(server, driver, shots, client):
    from selenium.webdriver.support.ui import Select

    d = driver
    rows = client.get("/api/cases").json()["rows"]
    d.get(server + "#dataset")
    wait(d, lambda d: len(d.find_elements("css selector", "#cases tbody tr")) == len(rows))
    wait(d, lambda d: js(d, "return Array.from(document.querySelectorAll('#cases img')).slice(0, 5)"
                            ".every(i => i.complete && i.naturalWidth > 0)"))
    count = lambda: d.find_element("id", "case-count").text
    d.find_element("id", "filter-wrong").click()
    wrong = [r for r in rows if not r["correct"]]
    assert count() == f"{len(wrong)} of {len(rows)}"
    assert all("wrong" in tr.get_attribute("class") for tr in d.find_elements("css selector", "#cases tbody tr"))
    d.find_element("id", "filter-wrong").click()
    Select(d.find_element("id", "filter-true")).select_by_visible_text("5")
    cells = [tr.find_elements("tag name", "td")[3].text for tr in d.find_elements("css selector", "#cases tbody tr")]
    assert cells and set(cells) == {"5"} and len(cells) == sum(r["true"] == "5" for r in rows)
    Select(d.find_element("id", "filter-true")).select_by_index(0)
    Select(d.find_element("id", "filter-disagree")).select_by_value("2")
    assert count() == f"{sum((r['disagreement'] or 0) >= 2 for r in rows)} of {len(rows)}"
    Select(d.find_element("id", "filter-disagree")).select_by_index(0)
    d.find_element("css selector", "th[data-key='diameter_mm']").click()
    ids = [tr.get_attribute("data-id") for tr in d.find_elements("css selector", "#cases tbody tr")]
    size = {r["sample_id"]: r["diameter_mm"] for r in rows}
    assert [size[i] for i in ids] == sorted(size.values())
    target = ids[-1]  # the largest nodule
    d.find_element("css selector", f"#cases tbody tr[data-id='{target}']").click()
    wait(d, lambda d: js(d, "const im = document.querySelectorAll('#detail img'); return im.length >= 4 && "
                            "Array.from(im).every(i => i.complete && i.naturalWidth > 0)"))
    assert "Readers: #1:" in d.find_element("id", "detail-readers").text
    assert target in d.find_element("id", "detail").text
    d.save_screenshot(str(shots / "dataset.png"))
    d.find_element("id", "nav-run").click()
    wait(d, lambda d: d.find_element("id", "run-view").is_displayed())
    assert "qwk" in d.find_element("id", "metrics").text and "SYNTHETIC" in d.find_element("id", "banner").text
    d.save_screenshot(str(shots / "run.png"))
    d.get(d.find_element("id", "model-card-link").get_attribute("href"))
    assert "Model card" in d.title or "model card" in d.page_source.lower()
