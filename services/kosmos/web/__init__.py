"""Kosmos over HTTP: Connect and gRPC-Web for browsers and Node, the storefront and dashboard.

`WebServer` serves one HTTP port beside a gRPC server (`KOSMOS_HTTP_LISTEN`). Every unary RPC
of the services that server hosts is at ``POST /<package>.<Service>/<Method>`` in the Connect
protocol (``application/json`` or ``application/proto``) and in gRPC-Web, and goes on to the
gRPC port with the caller's key, trace context and deadline.
"""

from kosmos.web._gateway import FORWARDED_HEADERS, connect_application
from kosmos.web._server import DEFAULT_WEB_DIR, WebServer, scrape

__all__ = ["DEFAULT_WEB_DIR", "FORWARDED_HEADERS", "WebServer", "connect_application", "scrape"]
