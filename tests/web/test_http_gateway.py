"""The HTTP port (`kosmos.web`): Connect JSON and binary, gRPC-Web, with the gRPC API's keys,
errors and deadlines, against a real cluster and a real HTTP server."""

from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request

from google.rpc import error_details_pb2

from kosmos.common.tls import ClientTls, TlsFiles
from kosmos.v1 import recommendation_service_pb2
from kosmos.web import WebServer
from tests.conftest import OPERATOR_KEY
from tests.test_tls import pki, serve_cluster  # noqa: F401 (pki: the TLS tests' fixture)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def call_json(base: str, method: str, message: dict, key: str | None, **headers: str):
    all_headers = {"content-type": "application/json", **headers}
    if key:
        all_headers["authorization"] = f"Bearer {key}"
    status, _headers, body = post(f"{base}/{method}", json.dumps(message).encode(), all_headers)
    return status, json.loads(body)


RECOMMEND = "kosmos.v1.RecommendationService/Recommend"
ALICE = {"customer": "shops/acme/customers/alice", "pageSize": 3}


def test_json_recommend_with_a_storefront_key(web):
    base, storefront = web.base, web.storefront
    status, body = call_json(base, RECOMMEND, ALICE, storefront)
    assert status == 200
    assert len(body["offers"]) == 3
    assert all(o["item"].startswith("shops/acme/items/") for o in body["offers"])
    assert all(o["reason"] for o in body["offers"])


def test_another_shops_key_is_permission_denied(web):
    base, other = web.base, web.other
    status, body = call_json(base, RECOMMEND, ALICE, other)
    assert (status, body["code"]) == (403, "permission_denied")


def test_no_key_is_unauthenticated(web):
    base = web.base
    status, body = call_json(base, RECOMMEND, ALICE, None)
    assert (status, body["code"]) == (401, "unauthenticated")


def test_a_scope_too_small_is_permission_denied(web):
    base, storefront = web.base, web.storefront
    status, body = call_json(
        base, "kosmos.v1.ProfileService/GetCustomer", {"name": ALICE["customer"]}, storefront
    )
    assert (status, body["code"]) == (403, "permission_denied")


def _bad_request_fields(body: dict) -> list[str]:
    fields = []
    for detail in body.get("details", []):
        if detail["type"] == "google.rpc.BadRequest":
            parsed = error_details_pb2.BadRequest.FromString(
                base64.b64decode(detail["value"] + "==")
            )
            fields += [v.field for v in parsed.field_violations]
    return fields


def test_bad_input_is_invalid_argument_naming_the_field(web):
    base, storefront = web.base, web.storefront
    status, body = call_json(base, RECOMMEND, {**ALICE, "pageSize": -1}, storefront)
    assert (status, body["code"]) == (400, "invalid_argument")
    assert "page_size" in _bad_request_fields(body)


def test_malformed_json_and_unknown_fields_are_invalid_argument(web):
    base, storefront = web.base, web.storefront
    headers = {"content-type": "application/json", "authorization": f"Bearer {storefront}"}
    for raw in (b"{not json", json.dumps({**ALICE, "pageSise": 3}).encode(), b"\xff\xfe"):
        status, _h, body = post(f"{base}/{RECOMMEND}", raw, headers)
        answer = json.loads(body)
        assert (status, answer["code"]) == (400, "invalid_argument"), raw
        assert _bad_request_fields(answer) == ["request"]  # as gRPC answers a malformed body


def test_unknown_customer_is_not_found(web):
    base, storefront = web.base, web.storefront
    status, body = call_json(
        base, RECOMMEND, {"customer": "shops/acme/customers/nobody"}, storefront
    )
    assert (status, body["code"]) == (404, "not_found")


def test_the_deadline_reaches_the_grpc_call(web):
    # connect-timeout-ms becomes the gRPC call's deadline: one already spent fails there.
    base, storefront = web.base, web.storefront
    status, body = call_json(base, RECOMMEND, ALICE, storefront, **{"connect-timeout-ms": "0"})
    assert (status, body["code"]) == (504, "deadline_exceeded")


def test_binary_connect_and_grpc_web(web):
    base, storefront = web.base, web.storefront
    request = recommendation_service_pb2.RecommendRequest(
        customer=ALICE["customer"], page_size=2
    ).SerializeToString()
    auth = {"authorization": f"Bearer {storefront}"}
    status, _h, body = post(
        f"{base}/{RECOMMEND}", request, {"content-type": "application/proto", **auth}
    )
    assert status == 200
    assert len(recommendation_service_pb2.RecommendResponse.FromString(body).offers) == 2

    # gRPC-Web: a length-prefixed frame in, a message frame and a trailer frame out.
    framed = b"\x00" + struct.pack(">I", len(request)) + request
    status, headers, body = post(
        f"{base}/{RECOMMEND}", framed, {"content-type": "application/grpc-web+proto", **auth}
    )
    assert status == 200
    flags, length = body[0], struct.unpack(">I", body[1:5])[0]
    assert flags == 0
    answer = recommendation_service_pb2.RecommendResponse.FromString(body[5 : 5 + length])
    assert len(answer.offers) == 2
    trailer = body[5 + length :]
    assert trailer[0] == 0x80 and b"grpc-status:0" in trailer.replace(b" ", b"")


def test_grpc_web_errors_carry_the_status(web):
    base, other = web.base, web.other
    request = recommendation_service_pb2.RecommendRequest(customer=ALICE["customer"])
    payload = request.SerializeToString()
    framed = b"\x00" + struct.pack(">I", len(payload)) + payload
    status, headers, body = post(
        f"{base}/{RECOMMEND}",
        framed,
        {"content-type": "application/grpc-web+proto", "authorization": f"Bearer {other}"},
    )
    assert status == 200
    # No message frame: only the trailer frame, with PERMISSION_DENIED and the status details.
    assert body[0] == 0x80
    trailer = body[5:].decode().replace(" ", "").lower()
    assert "grpc-status:7\r\n" in trailer
    assert "grpc-status-details-bin:" in trailer


def test_health_is_open_over_http(web):
    base = web.base
    status, body = call_json(base, "grpc.health.v1.Health/Check", {}, None)
    assert (status, body["status"]) == (200, "SERVING")


def test_grpc_web_timeout_is_the_deadline(web):
    base, storefront = web.base, web.storefront
    payload = recommendation_service_pb2.RecommendRequest(customer=ALICE["customer"])
    message = payload.SerializeToString()
    framed = b"\x00" + struct.pack(">I", len(message)) + message
    headers = {
        "content-type": "application/grpc-web+proto",
        "authorization": f"Bearer {storefront}",
        "grpc-timeout": "1n",  # one nanosecond: spent before the gRPC call starts
    }
    status, _headers, body = post(f"{base}/{RECOMMEND}", framed, headers)
    assert status == 200
    assert b"grpc-status:4\r\n" in body.replace(b" ", b"")  # DEADLINE_EXCEEDED


def test_every_grpc_status_code_has_its_connect_code():
    import grpc

    from kosmos.web._gateway import _CODES

    assert set(_CODES) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert _CODES[grpc.StatusCode.CANCELLED].value == "canceled"  # Connect's spelling
    assert all(
        connect.value == code.name.lower()
        for code, connect in _CODES.items()
        if code.name != "CANCELLED"
    )


def test_over_mtls_the_gateway_calls_its_grpc_port_with_the_client_settings(store, pki):  # noqa: F811
    _dir, _ca, f = pki
    server, address = serve_cluster(store, TlsFiles(f["cert"], f["key"], client_ca=f["ca"]))
    mutual = ClientTls(ca=f["ca"], cert=f["client_cert"], key=f["client_key"])
    web = WebServer("127.0.0.1:0", address, ["kosmos.v1.ProfileService"], tls=mutual)
    web.start()
    try:
        status, body = call_json(
            f"http://127.0.0.1:{web.port}",
            "kosmos.v1.ProfileService/CreateShop",
            {"shopId": "tls"},
            OPERATOR_KEY,
        )
        assert (status, body["shop"]["name"]) == (200, "shops/tls")
    finally:
        web.stop()
        server.stop(None).wait()
