"""Conversions between ``google.protobuf.Timestamp`` and epoch seconds."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    whole = int(seconds // 1)
    ts.seconds = whole
    ts.nanos = int(round((seconds - whole) * 1e9)) % 1_000_000_000
    return ts


def to_seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9
