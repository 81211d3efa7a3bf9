"""`create_app(run, ...)`: the Starlette app behind `ctnodule serve` — one page, a JSON API, the model card.

Endpoints (all JSON unless said otherwise; errors are `{"error": "..."}` with a 4xx/5xx status and never a
traceback):

    GET  /                              the page (scan, dataset and run views; static/ JS + CSS)
    GET  /api/info                      run summary, what is enabled (roots, dataset, upload limit)
    GET  /api/browse?path=DIR           folders and volume files under an allowed root
    POST /api/scans/open                {"path": ..., "series_uid": ...}: a CT under an allowed root
    POST /api/scans/upload?name=F       the raw file as the body: .nii, .nii.gz, .nrrd or a .zip of a DICOM series
    POST /api/scans/phantom             {"seed": 0}: a synthetic CT with known nodules (demo, tests)
    GET  /api/scans/{id}                shape, spacing, slice positions, display flips, known nodules
    GET  /api/scans/{id}/slices/{k}     slice k as raw little-endian int16 HU (rows x columns)
    POST /api/scans/{id}/nodule         {"i", "j", "k", "heatmap"}: segmentation + prediction + heat map
    GET  /api/cases                     the out-of-fold table (needs a dataset)
    GET  /api/cases/{sample_id}         one row's detail
    GET  /api/cases/{sample_id}/{kind}.png  thumb, slice-0..2, mask, heat (PNG)
    GET  /run/report.html, /run/figures/...  the run's model card

Heavy work (reading, segmenting, predicting, Grad-CAM, rendering) runs in worker threads, never on the
event loop; the model is opened once, when the app is created.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ctnodule.errors import CTNoduleError
from ctnodule.runfolder import jsonable
from ctnodule.serve import scans
from ctnodule.serve.cases import Cases
from ctnodule.serve.model import ServedRun
from ctnodule.serve.nodule import predict_at

STATIC = Path(__file__).parent / "static"
#: default upload limit: a zipped thin-slice CT series is ~100-300 MB
MAX_UPLOAD_MB = 512
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
log = logging.getLogger("ctnodule.serve")


def create_app(run_dir: str | Path, data: str | Path | None = None, roots: Sequence[str | Path] = (),
               max_upload_mb: float = MAX_UPLOAD_MB, allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
               device: str = "cpu", warm: bool = False) -> Starlette:
    """The app for one run folder. `data`: the slice dataset of the dataset view (default: the one the run
    was trained on, when it still exists). `roots`: folders whose CTs may be opened by path (none: upload
    only). `allowed_hosts`: Host headers served (loopback by default, against DNS rebinding). `warm`: run the
    model once on a generated nodule now, so the first click is as fast as the next."""
    run = ServedRun(run_dir, device)
    if warm:
        run.warm_up()
    if data is None and run.config.get("data") and Path(run.config["data"]).is_dir():
        data = run.config["data"]
    cases = Cases(run, data) if data is not None else None
    allowed = [Path(r).resolve() for r in roots]
    for root in allowed:
        if not root.is_dir():
            raise scans.DataError("--root must be an existing folder", root)
    store = scans.ScanStore()
    limit = int(max_upload_mb * 2**20)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(request: Request) -> Response:
        return JSONResponse({"run": run.summary(), "roots": [str(r) for r in allowed], "dataset": cases is not None,
                             "max_upload_mb": max_upload_mb, "upload_suffixes": list(scans.UPLOAD_SUFFIXES)})

    async def browse(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(scans.browse, request.query_params.get("path", ""), allowed))

    async def open_path(request: Request) -> Response:
        body = await _json(request)
        path = body.get("path")
        if not isinstance(path, str) or not path.strip():
            raise HTTPException(400, 'give {"path": "..."}: a DICOM series folder, NIfTI or NRRD under an allowed root')
        volume = await run_in_threadpool(scans.open_path, path.strip(), allowed, body.get("series_uid"))
        name = Path(path.strip().rstrip("/")).name or path
        return _opened(store.add(f"{volume.patient_id} {name}".strip() if volume.patient_id else name, volume))

    async def upload(request: Request) -> Response:
        name = scans.upload_name(request.query_params.get("name", ""))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"upload of {int(declared) / 2**20:.0f} MB is over the {max_upload_mb:g} MB limit")
        with tempfile.TemporaryDirectory(prefix="ctnodule-upload-") as tmp:
            saved = Path(tmp) / "body"
            size = 0
            async with await anyio.open_file(saved, "wb") as out:  # written by a worker thread, chunk by chunk
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"upload is over the {max_upload_mb:g} MB limit")
                    await out.write(chunk)
            if size == 0:
                raise HTTPException(400, "empty upload: send the file as the request body")
            volume = await run_in_threadpool(scans.read_upload, saved, name, 8 * limit,
                                             request.query_params.get("series_uid"))
        return _opened(store.add(name, volume))

    async def phantom(request: Request) -> Response:
        body = await _json(request, required=False)
        seed = body.get("seed", 0)
        if not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise HTTPException(400, '"seed" must be a whole number >= 0')
        volume, cands = await run_in_threadpool(scans.phantom_scan, seed)
        return _opened(store.add(f"phantom (seed {seed})", volume, synthetic=True, candidates=cands))

    def _scan(request: Request) -> scans.Scan:
        scan = store.get(request.path_params["scan_id"])
        if scan is None:
            raise HTTPException(404, "no such scan (scans are kept in memory; open it again)")
        return scan

    async def scan_info(request: Request) -> Response:
        return JSONResponse(_scan(request).info())

    async def scan_slice(request: Request) -> Response:
        hu = _scan(request).volume.hu
        k = request.path_params["k"]
        if not 0 <= k < hu.shape[0]:
            raise HTTPException(404, f"slice {k} is outside 0..{hu.shape[0] - 1}")
        return Response(hu[k].astype("<i2", copy=False).tobytes(), media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Shape": f"{hu.shape[1]},{hu.shape[2]}"})

    async def nodule(request: Request) -> Response:
        scan = _scan(request)
        body = await _json(request)
        try:
            ijk = tuple(float(body[a]) for a in "ijk")
        except (KeyError, TypeError, ValueError):
            raise HTTPException(400, 'give the voxel as {"i": column, "j": row, "k": slice}') from None
        if not all(np.isfinite(ijk)):
            raise HTTPException(400, "the voxel must be finite numbers")
        result = await run_in_threadpool(predict_at, run, scan.volume, ijk, bool(body.get("heatmap", True)))
        return JSONResponse({**result, "synthetic": scan.synthetic})

    def _cases() -> Cases:
        if cases is None:
            raise HTTPException(404, "no dataset: start `ctnodule serve RUN --data DATASET` to see the cases")
        return cases

    async def case_table(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(lambda: _cases().table()))

    async def case_detail(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(_cases().detail, request.path_params["sample_id"]))

    async def case_image(request: Request) -> Response:
        c, sid, kind = _cases(), request.path_params["sample_id"], request.path_params["kind"]
        data = await run_in_threadpool(c.thumbnail if kind == "thumb" else c.image, sid,
                                       *(() if kind == "thumb" else (kind,)))
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def model_card(request: Request) -> Response:
        if not run.paths.report.is_file():
            raise HTTPException(404, "this run has no model card (report.html)")
        return FileResponse(run.paths.report)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/browse", browse),
        Route("/api/scans/open", open_path, methods=["POST"]),
        Route("/api/scans/upload", upload, methods=["POST"]),
        Route("/api/scans/phantom", phantom, methods=["POST"]),
        Route("/api/scans/{scan_id:str}", scan_info),
        Route("/api/scans/{scan_id:str}/slices/{k:int}", scan_slice),
        Route("/api/scans/{scan_id:str}/nodule", nodule, methods=["POST"]),
        Route("/api/cases", case_table),
        Route("/api/cases/{sample_id:str}", case_detail),
        Route("/api/cases/{sample_id:str}/{kind:str}.png", case_image),
        Route("/run/report.html", model_card),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if run.paths.figures.is_dir():
        routes.append(Mount("/run/figures", StaticFiles(directory=run.paths.figures), name="figures"))
    handlers: dict[Any, Any] = {CTNoduleError: _user_error, KeyError: _not_found, HTTPException: _http_error,
                                Exception: _server_error}
    app = Starlette(routes=routes, exception_handlers=handlers,
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))])
    app.state.run, app.state.cases, app.state.scans = run, cases, store
    return app


class JSONResponse(_StarletteJSON):
    """JSON of numpy scalars too; NaN/inf become null (valid JSON for the browser)."""

    def render(self, content: Any) -> bytes:
        return super().render(jsonable(content))


async def _json(request: Request, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if not raw and not required:
        return {}
    try:
        import json

        body = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


@contextlib.contextmanager
def running(app: Starlette, timeout_s: float = 10.0) -> Iterator[str]:
    """`app` under uvicorn on a free loopback port in a background thread while the block runs; yields its
    URL. For the browser tests and the benchmark (`ctnodule serve` runs uvicorn in the foreground)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the viewer did not start on 127.0.0.1:{port} within {timeout_s:.0f} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


def _opened(scan: scans.Scan) -> Response:
    return JSONResponse(scan.info(), status_code=201)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _user_error(request: Request, exc: Exception) -> Response:
    return _error(403 if isinstance(exc, scans.Forbidden) else 400, _plain(str(exc)))


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(404, f"not found: {exc.args[0] if exc.args else request.url.path}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("error serving %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error while serving this request; the server's log has the details")


def _plain(text: str) -> str:
    """An error message without the temporary folders of this machine."""
    return text.replace(tempfile.gettempdir() + os.sep, "")
