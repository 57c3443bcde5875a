"""`wasmfleet apiserver`: the embedded Kubernetes-compatible API server (SQLite storage)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import click

from wasmfleet.apiserver import app
from wasmfleet.apiserver.settings import ServerSettings


@click.command("apiserver")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="State (SQLite), token, TLS material and the kubeconfig live here.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=6443, show_default=True, help="Port (0 picks a free one).")
@click.option("--token", default=None, help="Bearer token clients must send (default: DATA_DIR/token).")
@click.option("--tls/--no-tls", default=True, show_default=True,
              help="HTTPS with a self-signed CA kept in DATA_DIR/tls (kubectl sends tokens only over HTTPS).")
@click.option("--watch-window", type=int, default=20_000, show_default=True,
              help="Changes kept for watch resumption; older resourceVersions get 410 Gone.")
@click.option("--no-crds", is_flag=True, help="Do not install wasmfleet's CRDs at start.")
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def apiserver(data_dir: Path, host: str, port: int, token: str | None, tls: bool, watch_window: int,
              no_crds: bool, verbose: bool) -> None:
    """Serve the Kubernetes API for wasmfleet's resources from one SQLite file.

    \b
    Example:
        wasmfleet apiserver --data-dir ./state --port 6443 && kubectl --kubeconfig ./state/kubeconfig get hosts"""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(data_dir=data_dir, host=host, port=port, token=token, tls=tls,
                              watch_window=max(watch_window, 1), install_crds=not no_crds)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"apiserver data dir {data_dir}: {exc.strerror or exc}") from exc
    try:
        app.run(settings)
    except OSError as exc:
        raise click.ClickException(f"apiserver on {host}:{port}: {exc.strerror or exc}") from exc
    except sqlite3.Error as exc:
        raise click.ClickException(f"apiserver state {data_dir / 'state.db'}: {exc}") from exc
    except RuntimeError as exc:
        raise click.ClickException(f"apiserver: {exc}") from exc
