"""Issue 9: TLS on every port, mTLS between services, certificates rotated without a restart.

Certificates are made in the test (``cryptography``): a CA, a server certificate for
127.0.0.1, and client certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kosmos import cluster
from kosmos.cli import main as cli
from kosmos.client import DeadlineExceededError, KosmosClient, UnavailableError
from kosmos.common.auth import Authorizer
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import build_server
from kosmos.common.tls import ClientTls, TlsFiles
from kosmos.plugin.protocol import RecommendQuery
from kosmos.plugin.remote import RemotePluginError, RemoteRecommender
from kosmos.plugin.serve import build_plugin_server
from kosmos.plugin.testing import checkerboard
from kosmos.recommenders.popularity import create as popularity
from tests.conftest import OPERATOR_KEY

# The SDK waits for a ready channel (issue 8), so a handshake that never succeeds surfaces as
# the deadline passing; a failed call without waiting is UNAVAILABLE. Either way: refused.
REFUSED = (UnavailableError, DeadlineExceededError)


@dataclass
class Pem:
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def make_ca(name: str) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert, key), cert, key


def issue(ca: tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey], name: str) -> Pem:
    _pem_ca, ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _pem(cert, key)


def write(path: Path, data: bytes) -> str:
    # Atomic, as a secret mounter or cert-manager would do it: readers never see half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return str(path)


@pytest.fixture
def pki(tmp_path):
    ca = make_ca("kosmos-test-ca")
    server = issue(ca, "kosmos")
    client = issue(ca, "storefront")
    files = {
        "ca": write(tmp_path / "ca.pem", ca[0].cert),
        "cert": write(tmp_path / "server.pem", server.cert),
        "key": write(tmp_path / "server.key", server.key),
        "client_cert": write(tmp_path / "client.pem", client.cert),
        "client_key": write(tmp_path / "client.key", client.key),
    }
    return tmp_path, ca, files


def serve_cluster(store, tls: TlsFiles):
    server, port, _ = build_server(
        "127.0.0.1:0",
        4,
        cluster.services(store, RecommendationSettings(refresh_seconds=0)),
        auth=Authorizer(store, OPERATOR_KEY),
        tls=tls,
    )
    server.start()
    return server, f"127.0.0.1:{port}"


def test_tls_serves_and_plaintext_is_refused(store, pki):
    _dir, _ca, f = pki
    server, address = serve_cluster(store, TlsFiles(f["cert"], f["key"]))
    try:
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=ClientTls(ca=f["ca"])) as client:
            client.create_shop("acme")
            assert client.get_shop("acme").name == "shops/acme"
        with KosmosClient(address, api_key=OPERATOR_KEY, timeout=2) as plain:
            with pytest.raises(REFUSED):
                plain.get_shop("acme")
    finally:
        server.stop(None).wait()


def test_mtls_requires_a_client_certificate_from_the_ca(store, pki, capsys):
    _dir, ca, f = pki
    server, address = serve_cluster(store, TlsFiles(f["cert"], f["key"], client_ca=f["ca"]))
    try:
        mutual = ClientTls(ca=f["ca"], cert=f["client_cert"], key=f["client_key"])
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=mutual) as client:
            client.create_shop("acme")
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=ClientTls(ca=f["ca"]), timeout=2) as c:
            with pytest.raises(REFUSED):
                c.get_shop("acme")
        # The CLI speaks mTLS too.
        args = ["--target", address, "--api-key", OPERATOR_KEY, "--tls-ca", f["ca"]]
        mtls = ["--tls-cert", f["client_cert"], "--tls-key", f["client_key"]]
        assert cli([*args, *mtls, "keys", "list"], env={}) == 0
        assert "API keys" in capsys.readouterr().out
    finally:
        server.stop(None).wait()


def test_a_rotated_certificate_serves_new_connections_without_a_restart(store, pki):
    tmp, _ca, f = pki
    server, address = serve_cluster(store, TlsFiles(f["cert"], f["key"]))
    try:
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=ClientTls(ca=f["ca"])) as client:
            client.create_shop("acme")
        other_ca = make_ca("kosmos-next-ca")
        rotated = issue(other_ca, "kosmos")
        write(Path(f["key"]), rotated.key)
        write(Path(f["cert"]), rotated.cert)
        next_ca = write(tmp / "next-ca.pem", other_ca[0].cert)
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=ClientTls(ca=next_ca)) as client:
            assert client.get_shop("acme").name == "shops/acme"
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=ClientTls(ca=f["ca"]), timeout=2) as c:
            with pytest.raises(REFUSED):  # the old certificate is no longer served
                c.get_shop("acme")
    finally:
        server.stop(None).wait()


def test_remote_plugins_are_called_over_mtls(pki):
    _dir, _ca, f = pki
    server, port, _ = build_plugin_server(
        popularity({}), "127.0.0.1:0", 2, tls=TlsFiles(f["cert"], f["key"], client_ca=f["ca"])
    )
    server.start()
    target = f"127.0.0.1:{port}"
    try:
        mutual = ClientTls(ca=f["ca"], cert=f["client_cert"], key=f["client_key"])
        with RemoteRecommender(target, timeout=5.0, tls=mutual) as remote:
            remote.fit(checkerboard())
            assert len(remote.recommend(RecommendQuery(customer_id="a-c0", k=3))) == 3
        with RemoteRecommender(target, timeout=2.0, tls=ClientTls(ca=f["ca"])) as stranger:
            with pytest.raises(RemotePluginError):
                stranger.recommend(RecommendQuery(customer_id="a-c0", k=3))
        with RemoteRecommender(target, timeout=2.0) as plaintext:
            with pytest.raises(RemotePluginError):
                plaintext.recommend(RecommendQuery(customer_id="a-c0", k=3))
    finally:
        server.stop(None).wait()


def test_grpc_channel_credentials_reject_an_unknown_ca(store, pki):
    tmp, _ca, f = pki
    server, address = serve_cluster(store, TlsFiles(f["cert"], f["key"]))
    try:
        stranger_ca = write(tmp / "stranger.pem", make_ca("stranger")[0].cert)
        with KosmosClient(
            address, api_key=OPERATOR_KEY, tls=ClientTls(ca=stranger_ca), timeout=2
        ) as c:
            with pytest.raises(REFUSED):
                c.get_shop("acme")
    finally:
        server.stop(None).wait()


def test_the_service_processes_serve_tls_from_the_environment(pki):
    import subprocess
    import sys

    tmp, _ca, f = pki
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/k.db",
        "KOSMOS_BOOTSTRAP_KEY": OPERATOR_KEY,
        "KOSMOS_TLS_CERT": f["cert"],
        "KOSMOS_TLS_KEY": f["key"],
        "KOSMOS_TLS_CLIENT_CA": f["ca"],
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read() if proc.poll() is not None else line
        address = line.strip().rsplit(" ", 1)[1]
        mutual = ClientTls(ca=f["ca"], cert=f["client_cert"], key=f["client_key"])
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=mutual, timeout=10) as client:
            client.create_shop("acme")
        with KosmosClient(address, api_key=OPERATOR_KEY, tls=ClientTls(ca=f["ca"]), timeout=2) as c:
            with pytest.raises(REFUSED):
                c.get_shop("acme")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_remote_plugins_take_tls_from_the_environment(pki):
    from kosmos.recommendation import load_plugins

    _dir, _ca, f = pki
    server, port, _ = build_plugin_server(
        popularity({}), "127.0.0.1:0", 2, tls=TlsFiles(f["cert"], f["key"], client_ca=f["ca"])
    )
    server.start()
    env = {
        "KOSMOS_REMOTE_RECOMMENDERS": f"partner=127.0.0.1:{port}",
        "KOSMOS_TLS_CA": f["ca"],
        "KOSMOS_TLS_CLIENT_CERT": f["client_cert"],
        "KOSMOS_TLS_CLIENT_KEY": f["client_key"],
    }
    plugin = load_plugins(RecommendationSettings.from_env(env))["partner"]
    try:
        remote = plugin.factory({})
        remote.fit(checkerboard())
        assert len(remote.recommend(RecommendQuery(customer_id="a-c0", k=3))) == 3
    finally:
        plugin.factory.close()
        server.stop(None).wait()
