"""`ctnodule serve RUN`: the local web viewer (`ctnodule.serve.app`) under uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer


def serve_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder from `ctnodule train` (or a run of `ctnodule run`).")],
    data: Annotated[Path | None, typer.Option(help="Slice dataset for the dataset view (default: the one the run "
                                                   "was trained on, when it still exists).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on. DANGER: anything but 127.0.0.1/localhost "
                                           "lets other machines read the scans under --root.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    root: Annotated[list[Path] | None, typer.Option(help="Folder whose CTs may be opened by path (repeatable); "
                                                         "without one, scans come by upload only.")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=1, help="Largest upload accepted, MB.")] = 512,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N (checked before any work).")] = "cpu",
) -> None:
    """Open a web viewer of RUN: scroll a CT, click a nodule for its outline, prediction and heat map; browse
    the out-of-fold cases; read the model card. Binds 127.0.0.1 unless --host says otherwise."""
    import uvicorn

    from ctnodule.runtime import check_device
    from ctnodule.serve.app import LOOPBACK_HOSTS, create_app

    check_device(device)
    loopback = _is_loopback(host)
    if not loopback:
        typer.secho(f"warning: listening on {host}: anyone who can reach this machine on port {port} can use the "
                    "viewer and read the scans under --root; there is no login", fg=typer.colors.YELLOW, err=True)
    app = create_app(run, data=data, roots=root or [], max_upload_mb=max_upload_mb,
                     allowed_hosts=LOOPBACK_HOSTS if loopback else ["*"], device=device, warm=True)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"serving {run} on http://{shown}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
