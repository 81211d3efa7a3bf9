"""serve stage: `ctnodule serve RUN` — a local web viewer for scans, predictions, heat maps and a run's
out-of-fold cases (an ASGI app: Starlette + uvicorn; the page's JavaScript and CSS ship in `static/`).

It sits on the floor of `studies`: it drives predict, explain and evaluate, and nothing imports it.

    from ctnodule.serve.app import create_app
    app = create_app("runs/demo/runs/nodule-binary", data=None, roots=["../shared/data"])

Parts: `model` (the run opened once per process, one lock around the network), `scans` (opening a CT
from an allowed root, an upload or the phantom), `nodule` (click -> segmentation, prediction, outline,
heat map), `cases` (the out-of-fold table, thumbnails and detail panels), `app` (routes and errors),
`commands` (the CLI).
"""
