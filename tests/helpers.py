"""Small builders shared by tests (data only: no fakes of Kosmos code)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from kosmos.client import KosmosClient
from kosmos.v1 import common_pb2


def item(
    shop: str,
    item_id: str,
    category: str = "Kitchen",
    brand: str = "Acme",
    available: bool = True,
    price: float = 9.5,
    title: str = "",
) -> common_pb2.Item:
    return common_pb2.Item(
        name=f"shops/{shop}/items/{item_id}",
        title=title or f"Item {item_id}",
        category=category,
        brand=brand,
        price=price,
        out_of_stock=not available,
    )


def small_shop(
    client: KosmosClient,
    shop: str = "acme",
    items: int = 24,
    categories: tuple[str, ...] = ("Kitchen", "Garden", "Toys", "Books"),
) -> None:
    """A shop with ``items`` items spread over ``categories`` and customers alice and bob."""
    client.create_shop(shop, "Acme")
    client.upsert_items(
        shop,
        [
            item(shop, f"i{n:02d}", category=categories[n % len(categories)], brand=f"B{n % 3}")
            for n in range(items)
        ],
    )
    client.create_customer(shop, "alice", {"country": "UK"})
    client.create_customer(shop, "bob", {"country": "DE"})


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[str]]:
    """(code, ErrorInfo reason, BadRequest field paths) of a failed raw call."""
    status = rpc_status.from_call(error)
    reason, fields = "", []
    assert status is not None, "the error carries no google.rpc.Status"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return error.code(), reason, fields


def assert_invalid(call, request, field: str) -> None:
    """A raw stub call fails INVALID_ARGUMENT with ``field`` named in BadRequest."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=5)
    code, _reason, fields = status_of(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert field in fields, fields


def assert_code(call, request, code: grpc.StatusCode, reason: str = "") -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=5)
    got, got_reason, _ = status_of(caught.value)
    assert got == code, caught.value.details()
    if reason:
        assert got_reason == reason
    assert "Traceback" not in (caught.value.details() or "")


def first_serving(channel: grpc.Channel, service: str = "", timeout: float = 30.0) -> int:
    """Watches ``service``'s health until it says SERVING (a recommendation replica says
    NOT_SERVING while it loads its first models) and returns the last status seen: SERVING,
    or whatever it still said when ``timeout`` ran out. The Watch stream pushes each change,
    so this waits on the server, not on a sleep."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stream = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=service), timeout=timeout
    )
    status = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    try:
        for response in stream:
            status = response.status
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        stream.cancel()
    return status
