"""Speed of `ctnodule serve`: page load, slice scrolling and click-to-prediction, served locally.

A synthetic 512 x 512 x 300 CT (the phantom, 0.7 mm voxels, nodules of scores 2-5: the phantom places nodules
>= 30 mm apart in z within 45-155 mm, so five cannot fit and `place_nodules` would never return) is rendered and
put into the app's scan store; the app (`create_app(RUN, warm=True)`, as `ctnodule serve` starts it) runs
under uvicorn on a free local port in this process. Measured over real HTTP (httpx) and, where Debian's
chromium + chromedriver exist, in headless Chromium (fetch + client-side windowing + drawing):

- page load: `/`, its JS/CSS and `/api/info`; in the browser, navigation to the page's ready flag. Target <= 1 s.
- slice scroll: every slice fetched one after the other, none cached. Target >= 20 slices/s.
- click-to-prediction: segmentation + model + Grad-CAM per nodule (POST .../nodule). Target <= 2 s on 2 cores.

Prints wall seconds and this process's CPU seconds (server and client share it: CPU is the steadier figure
on a shared machine).

Run: python bench/bench_serve.py RUN [--threads 2] [--browser/--no-browser]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

N_SLICES = 300
SPACING = 0.7


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def scan_300():
    from ctnodule.data.phantom import PhantomPatient, place_nodules, render_volume
    from ctnodule.data.volume import Volume

    rng = np.random.default_rng(0)
    patient = PhantomPatient(rng, SPACING, [])
    patient.nodules = place_nodules(rng, patient, [2, 3, 4, 5])
    hu, _ = render_volume(patient, 0.0, N_SLICES, SPACING)
    volume = Volume(hu=hu, spacing=(SPACING, SPACING, SPACING), origin=np.array([-256 * SPACING, -256 * SPACING, 0.0]),
                    direction=np.eye(3), source=Path("phantom-300"))
    centres = [volume.to_voxel((s.centre[1], s.centre[0], s.centre[2])) for s in patient.nodules]
    return volume, [{"name": f"score {s.malignancy}", "i": float(c[0]), "j": float(c[1]), "k": float(c[2])}
                    for s, c in zip(patient.nodules, centres)]


def line(label: str, wall: float, cpu: float | None = None, extra: str = "") -> None:
    cpu_text = f"{cpu:7.3f} s CPU" if cpu is not None else " " * 13
    print(f"  {label:44s} {wall:7.3f} s wall {cpu_text}  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--browser", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    import httpx
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(a shared machine inflates wall times)")
    (volume, nodules), wall, cpu = timed(scan_300)
    line(f"phantom CT {volume.shape_ijk} rendered", wall, cpu)

    from ctnodule.serve.app import create_app, running

    app, wall, cpu = timed(create_app, args.run, warm=True)
    line("create_app (model loaded once + warm-up)", wall, cpu)
    scan = app.state.scans.add("phantom-300", volume, synthetic=True, candidates=nodules)
    with running(app) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            print("page load over HTTP (/, app.js, style.css, /api/info), 10 times:")
            loads = []
            for _ in range(10):
                _, wall, cpu = timed(lambda: [client.get(u).raise_for_status() for u in
                                              ("/", "/static/app.js", "/static/style.css", "/api/info")])
                loads.append((wall, cpu))
            line("median", statistics.median(w for w, _ in loads), statistics.median(c for _, c in loads),
                 f"max {max(w for w, _ in loads):.3f} s")

            print(f"slice scroll over HTTP: {N_SLICES} slices of 512 x 512 int16, fetched one after another:")
            _, wall, cpu = timed(lambda: [client.get(f"/api/scans/{scan.id}/slices/{k}").raise_for_status()
                                          for k in range(N_SLICES)])
            line(f"{N_SLICES} slices", wall, cpu, f"{N_SLICES / wall:.0f} slices/s")

            print("click-to-prediction over HTTP (segmentation + model + Grad-CAM), one click per nodule:")
            clicks = []
            for n in nodules:
                r, wall, cpu = timed(client.post, f"/api/scans/{scan.id}/nodule",
                                     json={"i": n["i"], "j": n["j"], "k": n["k"]})
                res = r.json()
                if r.status_code != 200:
                    line(n["name"], wall, cpu, f"error: {res['error']}")
                    continue
                s = res["seconds"]
                line(n["name"], wall, cpu, f"segment {s['segment']:.2f} + model {s['predict']:.2f} + heat map "
                     f"{s['heatmap']:.2f} s; {res['diameter_mm']:.1f} mm, P(malignant) {res['p_malignant']:.2f}")
                clicks.append(wall)
            if clicks:
                line("median / max", statistics.median(clicks), None, f"max {max(clicks):.3f} s")

        if args.browser and shutil.which("chromium") and shutil.which("chromedriver"):
            browser(base, scan.id, nodules)
        else:
            print("browser: skipped (chromium / chromedriver not installed, or --no-browser)")


def browser(base: str, scan_id: str, nodules: list[dict]) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,950"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        print("in headless Chromium:")
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            d.get(base + "?" + str(time.time()))
            WebDriverWait(d, 30, poll_frequency=0.01).until(lambda d: d.execute_script("return document.body.dataset.ready"))
            loads.append(time.perf_counter() - started)
        line("page load to ready, median of 5", statistics.median(loads), None, f"max {max(loads):.3f} s")
        d.set_script_timeout(300)
        d.execute_async_script("const done = arguments[arguments.length - 1];"
                               f"fetch('api/scans/{scan_id}').then(r => r.json()).then(i => window.ctnodule.viewer.open(i)).then(done)")
        rate = d.execute_async_script("const done = arguments[arguments.length - 1];"
                                      f"window.ctnodule.viewer.benchmark({N_SLICES}).then(done)")
        line(f"scroll {N_SLICES} slices (fetch + window + draw, cold)", N_SLICES / rate, None, f"{rate:.0f} slices/s")
        for n in nodules[:3]:
            ms = d.execute_async_script(
                "const done = arguments[arguments.length - 1], v = window.ctnodule.viewer, n = arguments[0];"
                "v.show(Math.round(n.k)).then(() => v.predict(n.i + 0.5, n.j + 0.5)).then(() => done(v.result ? v.result.wall_ms : -1))",
                n)
            line(f"click {n['name']} -> bars + heat map drawn", ms / 1000)
    finally:
        d.quit()


if __name__ == "__main__":
    main()
