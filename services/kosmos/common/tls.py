"""TLS for every port, mTLS between services, and certificates rotated without a restart.

A server given `TlsFiles` serves TLS with that certificate; with a client CA it also requires
client certificates signed by it (mTLS). gRPC asks for the configuration again at each new
handshake (`grpc.dynamic_ssl_server_credentials`); the files are read again when their
modification time or size changed, so a rotated certificate serves new connections at once. A
half-written rotation (unreadable files) keeps the previous configuration and logs a warning.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A server's certificate chain and key (PEM files), and the CA its clients must show.

    Attributes:
        cert: The certificate chain (`KOSMOS_TLS_CERT`).
        key: Its private key (`KOSMOS_TLS_KEY`).
        client_ca: When set, clients must present a certificate this CA signed
            (`KOSMOS_TLS_CLIENT_CA`): mutual TLS.
    """

    cert: str
    key: str
    client_ca: str = ""


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How Kosmos and its clients call a TLS server.

    Attributes:
        ca: The CA that signed the server's certificate (`KOSMOS_TLS_CA`); empty: the
            system's roots.
        cert: The client certificate for mTLS (`KOSMOS_TLS_CLIENT_CERT`); empty: none.
        key: Its private key (`KOSMOS_TLS_CLIENT_KEY`).
    """

    ca: str = ""
    cert: str = ""
    key: str = ""


def _stamp(paths: list[str]) -> tuple[tuple[int, int], ...]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


def _configuration(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    pair = (Path(files.key).read_bytes(), Path(files.cert).read_bytes())
    ca = Path(files.client_ca).read_bytes() if files.client_ca else None
    return grpc.ssl_server_certificate_configuration([pair], root_certificates=ca)


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Credentials that serve ``files`` and pick up new files at the next handshake.

    Raises:
        OSError: A file cannot be read at startup.
    """
    paths = [p for p in (files.cert, files.key, files.client_ca) if p]
    lock = threading.Lock()
    seen = [_stamp(paths)]
    initial = _configuration(files)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            stamp = _stamp(paths)
            with lock:
                if stamp == seen[0]:
                    return None
                configuration = _configuration(files)
                seen[0] = stamp
        except OSError as exc:
            log.warning("TLS files unreadable, keeping the previous ones: %s", exc.strerror)
            return None
        log.info("TLS certificate reloaded")
        return configuration

    return grpc.dynamic_ssl_server_credentials(
        initial, fetch, require_client_authentication=bool(files.client_ca)
    )


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    """Credentials for calling a TLS server (with a client certificate when ``tls`` has one)."""
    return grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca).read_bytes() if tls.ca else None,
        private_key=Path(tls.key).read_bytes() if tls.key else None,
        certificate_chain=Path(tls.cert).read_bytes() if tls.cert else None,
    )


def open_channel(
    target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A plaintext channel, or a TLS one when ``tls`` is given, with gRPC channel ``options``."""
    if tls is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, channel_credentials(tls), options=list(options))
