"""The HTTP port: the Connect/gRPC-Web gateway, the storefront and dashboard pages, metrics."""

from __future__ import annotations

import logging
import mimetypes
import threading
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import waitress
from connectrpc.server import ConnectWSGIApplication

from kosmos.common.tls import ClientTls, open_channel
from kosmos.web._gateway import connect_application

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"
"""Where ``make setup`` builds the pages (``services/web/dist``)."""

_PAGES = {"/": "storefront/index.html", "/dashboard/": "dashboard/index.html"}


class _Site:
    """Routes a request: an RPC path to the gateway, ``/metrics`` to the Prometheus endpoint,
    anything else to a file of the built pages."""

    def __init__(
        self, rpc: ConnectWSGIApplication, web_dir: Path, metrics: Callable[[], bytes]
    ) -> None:
        self._rpc = rpc
        self._web_dir = web_dir.resolve()
        self._metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO") or "/"
        segments = path.strip("/").split("/")
        if environ.get("REQUEST_METHOD") == "POST" or (len(segments) == 2 and "." in segments[0]):
            # /kosmos.v1.Service/Method and /grpc.health.v1.Health/Check
            return self._rpc(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "GET or POST\n")
        if path == "/metrics":
            return self._scrape(start_response)
        if path == "/dashboard":
            start_response("308 Permanent Redirect", [("Location", "/dashboard/")])
            return []
        return self._file(path, start_response)

    def _scrape(self, start_response: StartResponse) -> Iterable[bytes]:
        body = self._metrics()
        if not body:
            return _plain(start_response, "404 Not Found", "KOSMOS_METRICS_LISTEN is not set\n")
        start_response(
            "200 OK",
            [("Content-Type", "text/plain; version=0.0.4"), ("Cache-Control", "no-store")],
        )
        return [body]

    def _file(self, path: str, start_response: StartResponse) -> Iterable[bytes]:
        relative = _PAGES.get(path, path.lstrip("/"))
        target = (self._web_dir / relative).resolve()
        if not target.is_relative_to(self._web_dir) or not target.is_file():
            if not self._web_dir.is_dir():
                return _plain(
                    start_response,
                    "404 Not Found",
                    f"The pages are not built ({self._web_dir}): run make setup with npm.\n",
                )
            return _plain(start_response, "404 Not Found", "not found\n")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        start_response(
            "200 OK",
            [
                ("Content-Type", kind),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [target.read_bytes()]


def scrape(url: str) -> bytes:
    """The Prometheus text at ``url`` (this process's own endpoint), or empty without one."""
    if not url:
        return b""
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (our own endpoint)
        body: bytes = answer.read()
    return body


def _plain(start_response: StartResponse, status: str, text: str) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


class WebServer:
    """Serves the HTTP port of one gRPC server (`KOSMOS_HTTP_LISTEN`) on waitress threads.

    Args:
        listen: ``host:port`` to bind; port 0 picks a free port.
        grpc_target: The gRPC server the calls go to (``127.0.0.1:<port>``).
        service_names: The services that server hosts (`kosmos.common.server.Service.name`).
        tls: Client TLS for the gRPC hop, when that server serves TLS.
        web_dir: The built storefront and dashboard.
        metrics: Returns the process's metrics as Prometheus text (empty: none), such as
            ``lambda: scrape(telemetry.metrics_address())``.
        threads: Requests served at once.
    """

    def __init__(
        self,
        listen: str,
        grpc_target: str,
        service_names: Sequence[str],
        *,
        tls: ClientTls | None = None,
        web_dir: Path = DEFAULT_WEB_DIR,
        metrics: Callable[[], bytes] = lambda: b"",
        threads: int = 8,
    ) -> None:
        self._channel: grpc.Channel = open_channel(grpc_target, tls)
        site = _Site(connect_application(self._channel, service_names), web_dir, metrics)
        host, _, port = listen.rpartition(":")
        try:
            self._server = waitress.create_server(
                site, host=host.strip("[]"), port=int(port), threads=threads, ident="kosmos"
            )
        except OSError as exc:
            raise RuntimeError(f"cannot bind {listen}: {exc.strerror}") from None
        self.port: int = self._server.effective_port
        self._thread = threading.Thread(target=self._serve, name="kosmos-http", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run()
        except OSError:  # closed by stop()
            pass

    def start(self) -> None:
        self._thread.start()
        log.info("serving HTTP (Connect, gRPC-Web, pages) on port %d", self.port)

    def stop(self) -> None:
        self._server.close()
        self._channel.close()
