"""Bulk intake: a shop's catalog, customers and event history from JSON Lines or CSV files.

``kosmos import SHOP DIR`` and ``python -m kosmos.demo`` load through here, and it talks only
the public API: `CatalogService.UpsertItems` (1000 items a call), `ProfileService.CreateCustomers`
(1000 profiles a call, create or replace) and `FeedbackService.ImportInteractions` (10000 events
a call, one transaction each). While the service stores one batch the next is being read and
built, and batches go one after the other, so events keep their file order.

Record shapes (``python -m kosmos.datasets --out DIR`` writes exactly these):

- items: ``item_id``, ``title``, ``category``, ``brand``, ``price``, ``available`` (default true)
  or ``out_of_stock``, ``attributes`` (an object);
- customers: ``customer_id``, ``attributes``;
- interactions: ``customer_id``, ``item_id``, ``type`` (``view``, ``click``, ``add_to_cart``,
  ``purchase``, ``rating``, ``dismiss``, or the proto's number), ``value``, ``time`` or
  ``event_time`` (epoch seconds or ISO 8601; any moment in the past), ``recommendation_id``.

In CSV the header names the columns; a column that is none of the above becomes an attribute
(``attributes`` may also hold a JSON object). Each batch of events is imported under a request
id made from its content, so importing the same file again stores nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from kosmos.client import InvalidArgumentError, KosmosClient, interaction_type
from kosmos.v1 import common_pb2, feedback_service_pb2

__all__ = [
    "CUSTOMERS_BATCH",
    "INTERACTIONS_BATCH",
    "ITEMS_BATCH",
    "KINDS",
    "BulkImportError",
    "Record",
    "find_files",
    "import_customers",
    "import_interactions",
    "customer_message",
    "import_items",
    "in_memory",
    "interaction_message",
    "item_message",
    "read_records",
]

ITEMS_BATCH = 1000
CUSTOMERS_BATCH = 1000
INTERACTIONS_BATCH = 10_000
KINDS = ("items", "customers", "interactions")
"""What a shop's files hold, in the order they must be imported (events name both others)."""

_ITEM_FIELDS = {"item_id", "id", "title", "category", "brand", "price", "available"}
_ITEM_FIELDS |= {"out_of_stock", "attributes"}
_CUSTOMER_FIELDS = {"customer_id", "id", "attributes"}

T = TypeVar("T")
B = TypeVar("B")  # a batch as sent: a list of messages, or columns
Progress = Callable[[int], None]
"""Told how many bytes of input (or records, for in-memory input) were just consumed."""


class BulkImportError(ValueError):
    """A record is unusable; the message names the file and line (or the record) and field."""


@dataclass(frozen=True, slots=True)
class Record:
    """One input record, where it came from, and the bytes it took in its file."""

    fields: Mapping[str, Any]
    where: str
    size: int = 1


def find_files(folder: Path) -> dict[str, Path]:
    """``items``/``customers``/``interactions`` → the ``.jsonl`` or ``.csv`` file in ``folder``."""
    found = {}
    for kind in KINDS:
        for suffix in (".jsonl", ".csv"):
            if (folder / f"{kind}{suffix}").is_file():
                found[kind] = folder / f"{kind}{suffix}"
                break
    return found


def read_records(path: Path) -> Iterator[Record]:
    """The records of a ``.jsonl`` or ``.csv`` file, each with its line and byte size."""
    path = Path(path)
    if path.suffix not in (".jsonl", ".csv"):
        raise BulkImportError(f"{path}: expected a .jsonl or .csv file")
    with path.open("rb") as f:
        if path.suffix == ".jsonl":
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    # JSON Lines are UTF-8: decoded here, json skips guessing the encoding.
                    fields = _decode(line.decode("utf-8"))
                except UnicodeDecodeError:
                    raise BulkImportError(f"{path}:{n}: not UTF-8") from None
                except json.JSONDecodeError as exc:
                    raise BulkImportError(f"{path}:{n}: not JSON: {exc.msg}") from None
                if not isinstance(fields, dict):
                    raise BulkImportError(f"{path}:{n}: expected a JSON object")
                yield Record(fields, f"{path}:{n}", len(line))
            return
        sizes: list[int] = []

        def lines() -> Iterator[str]:
            for line in f:
                sizes.append(len(line))
                yield line.decode("utf-8")

        rows = csv.DictReader(lines())
        for row in rows:
            size = sum(sizes)
            sizes.clear()
            yield Record(dict(row), f"{path}:{rows.line_num}", size)


_decode = json.JSONDecoder().decode
_NESTED = (dict, list)


def _attributes(fields: Mapping[str, Any], known: set[str], where: str) -> dict[str, str]:
    raw = fields.get("attributes") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise BulkImportError(f"{where}: attributes: not a JSON object") from None
    if not isinstance(raw, dict):
        raise BulkImportError(f"{where}: attributes: expected an object")
    attributes = {str(k): str(v) for k, v in raw.items()}
    if fields.keys() <= known:
        return attributes
    for key, value in fields.items():
        # CSV: every other non-empty column is an attribute.
        if key not in known and value not in (None, "") and not isinstance(value, _NESTED):
            attributes[str(key)] = str(value)
    return attributes


def _text(fields: Mapping[str, Any], names: tuple[str, ...], where: str) -> str:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return str(value)
    raise BulkImportError(f"{where}: {names[0]}: is required")


def _bool(value: Any, name: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "t"):
        return True
    if text in ("0", "false", "no", "n", "f"):
        return False
    raise BulkImportError(f"{where}: {name}: expected true or false, got {value!r}")


def _float(value: Any, name: str, where: str) -> float:
    if value in (None, ""):
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BulkImportError(f"{where}: {name}: expected a number, got {value!r}") from None


def item_message(shop_id: str, record: Record) -> common_pb2.Item:
    f, where = record.fields, record.where
    out_of_stock = False
    if f.get("out_of_stock") not in (None, ""):
        out_of_stock = _bool(f["out_of_stock"], "out_of_stock", where)
    elif f.get("available") not in (None, ""):
        out_of_stock = not _bool(f["available"], "available", where)
    message = common_pb2.Item(
        name=f"shops/{shop_id}/items/{_text(f, ('item_id', 'id'), where)}",
        title=str(f.get("title") or ""),
        category=str(f.get("category") or ""),
        brand=str(f.get("brand") or ""),
        price=_float(f.get("price"), "price", where),
        out_of_stock=out_of_stock,
    )
    _fill(message.attributes, _attributes(f, _ITEM_FIELDS, where))
    return message


def _fill(target: Any, attributes: dict[str, str]) -> None:
    # One assignment a key: the map's `update` (or the constructor's) goes through the
    # Python mixin of MutableMapping, several times slower.
    for key, value in attributes.items():
        target[key] = value


def customer_message(shop_id: str, record: Record) -> common_pb2.Customer:
    f, where = record.fields, record.where
    message = common_pb2.Customer(
        name=f"shops/{shop_id}/customers/{_text(f, ('customer_id', 'id'), where)}"
    )
    _fill(message.attributes, _attributes(f, _CUSTOMER_FIELDS, where))
    return message


def _timestamp(value: Any, where: str) -> tuple[int, int] | None:
    """Epoch seconds or ISO 8601 → (seconds, nanos), or None when not given."""
    seconds = _seconds(value, where)
    if seconds is None:
        return None
    whole = math.floor(seconds)
    return whole, int((seconds - whole) * 1e9) % 1_000_000_000


def _seconds(value: Any, where: str) -> float | None:
    """Epoch seconds or ISO 8601 → epoch seconds, or None when not given."""
    if value in (None, ""):
        return None
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                raise BulkImportError(
                    f"{where}: event_time: expected epoch seconds or ISO 8601, got {value!r}"
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp()
    else:
        seconds = _float(value, "event_time", where)
    if not math.isfinite(seconds):
        raise BulkImportError(f"{where}: event_time: must be finite")
    return seconds


_TYPES: dict[str, int] = {}


def _type_code(f: Mapping[str, Any], where: str) -> int:
    kind = str(f.get("type") or "")
    code = _TYPES.get(kind)
    if code is None:
        try:
            # A name (`purchase`) or the proto's number (`4`); the service checks the number.
            code = int(kind) if kind.isdigit() else int(interaction_type(kind))
        except ValueError as exc:
            raise BulkImportError(f"{where}: type: {exc}") from None
        _TYPES[kind] = code
    return code


def interaction_message(shop_id: str, record: Record) -> common_pb2.Interaction:
    f, where = record.fields, record.where
    message = common_pb2.Interaction(
        customer=f"shops/{shop_id}/customers/{_text(f, ('customer_id',), where)}",
        item_id=_text(f, ("item_id",), where),
        type=_type_code(f, where),  # type: ignore[arg-type]
        value=_float(f.get("value"), "value", where),
        recommendation_id=str(f.get("recommendation_id") or ""),
    )
    when = _timestamp(f.get("event_time", f.get("time")), where)
    if when is not None:
        stamp = message.event_time
        stamp.seconds, stamp.nanos = when
    return message


def _interaction_columns(
    records: Iterable[Record], size: int
) -> Iterator[tuple[feedback_service_pb2.InteractionColumns, list[Record]]]:
    """Batches of interaction records as `InteractionColumns` (what `interaction_message`
    reads, a column each: one list append per field instead of one message per record)."""
    sources: list[Record] = []
    customers: list[str] = []
    items: list[str] = []
    types: list[int] = []
    values: list[float] = []
    times: list[float] = []
    recommendations: list[str] = []

    def batch() -> feedback_service_pb2.InteractionColumns:
        return feedback_service_pb2.InteractionColumns(
            customer_ids=customers,
            item_ids=items,
            types=types,  # type: ignore[arg-type]
            values=values if any(values) else (),
            event_times=times if any(times) else (),
            recommendation_ids=recommendations if any(recommendations) else (),
        )

    for record in records:
        f, where = record.fields, record.where
        customers.append(_text(f, ("customer_id",), where))
        items.append(_text(f, ("item_id",), where))
        types.append(_type_code(f, where))
        values.append(_float(f.get("value"), "value", where))
        when = _seconds(f.get("event_time", f.get("time")), where)
        times.append(0.0 if when is None else when)  # 0: now, as an unset event_time
        recommendations.append(str(f.get("recommendation_id") or ""))
        sources.append(record)
        if len(sources) == size:
            yield batch(), sources
            sources, customers, items, types = [], [], [], []
            values, times, recommendations = [], [], []
    if sources:
        yield batch(), sources


def _batches(
    records: Iterable[Record], size: int, build: Callable[[Record], T]
) -> Iterator[tuple[list[T], list[Record]]]:
    messages: list[T] = []
    sources: list[Record] = []
    for record in records:
        messages.append(build(record))
        sources.append(record)
        if len(messages) == size:
            yield messages, sources
            messages, sources = [], []
    if messages:
        yield messages, sources


def _pipelined(
    batches: Iterator[tuple[B, list[Record]]],
    send: Callable[[B], int],
    on_progress: Progress,
) -> int:
    """Sends batches one at a time, building the next one while the service stores this one."""
    total = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: tuple[Future[int], list[Record]] | None = None
        for messages, sources in batches:
            future = pool.submit(send, messages)
            if pending is not None:
                total += _settle(*pending, on_progress)
            pending = (future, sources)
        if pending is not None:
            total += _settle(*pending, on_progress)
    return total


def _settle(future: Future[int], sources: list[Record], on_progress: Progress) -> int:
    try:
        count = future.result()
    except InvalidArgumentError as error:
        raise BulkImportError(_located(error, sources)) from None
    on_progress(sum(r.size for r in sources))
    return count


_COLUMN = re.compile(r"columns\.(\w+)\[(\d+)\]")
_COLUMN_FIELDS = {
    "customer_ids": "customer_id",
    "item_ids": "item_id",
    "types": "type",
    "values": "value",
    "event_times": "event_time",
    "recommendation_ids": "recommendation_id",
}


def _located(error: InvalidArgumentError, sources: list[Record]) -> str:
    """``interactions[37].event_time: ...`` or ``columns.event_times[37]: ...`` →
    ``file.jsonl:1037: event_time: ...``."""
    for violation in error.field_violations:
        column = _COLUMN.fullmatch(violation.field)
        if column is not None and int(column[2]) < len(sources):
            field = _COLUMN_FIELDS.get(column[1], column[1])
            return f"{sources[int(column[2])].where}: {field}: {violation.description}"
        head, sep, rest = violation.field.partition("].")
        _, bracket, index = head.partition("[")
        if bracket and sep and index.isdigit() and int(index) < len(sources):
            return f"{sources[int(index)].where}: {rest}: {violation.description}"
    return f"{error.reason}: {error.message}"


def import_items(
    client: KosmosClient,
    shop_id: str,
    records: Iterable[Record],
    on_progress: Progress = lambda _n: None,
) -> int:
    """Upserts every item record; returns how many."""

    def send(items: list[common_pb2.Item]) -> int:
        client.upsert_items(shop_id, items, count_only=True)
        return len(items)  # one transaction: all of them or an error

    return _pipelined(
        _batches(records, ITEMS_BATCH, lambda r: item_message(shop_id, r)), send, on_progress
    )


def import_customers(
    client: KosmosClient,
    shop_id: str,
    records: Iterable[Record],
    on_progress: Progress = lambda _n: None,
) -> int:
    """Creates every customer record, or replaces the attributes of those that exist (their
    exclusions, which customers state themselves, stay); returns how many."""

    def send(customers: list[common_pb2.Customer]) -> int:
        client.create_customers(shop_id, customers, replace=["attributes"], count_only=True)
        return len(customers)  # one transaction: all of them or an error

    return _pipelined(
        _batches(records, CUSTOMERS_BATCH, lambda r: customer_message(shop_id, r)),
        send,
        on_progress,
    )


def import_interactions(
    client: KosmosClient,
    shop_id: str,
    records: Iterable[Record],
    on_progress: Progress = lambda _n: None,
    batch_size: int = INTERACTIONS_BATCH,
) -> int:
    """Imports every interaction record, in order; returns how many are stored (a batch
    imported before counts as it did then)."""

    def send(columns: feedback_service_pb2.InteractionColumns) -> int:
        digest = hashlib.sha256(shop_id.encode())
        digest.update(columns.SerializeToString(deterministic=True))
        count, _replayed = client.import_interaction_columns(
            shop_id, columns, request_id=f"import-{digest.hexdigest()[:48]}"
        )
        return count

    return _pipelined(_interaction_columns(records, batch_size), send, on_progress)


def in_memory(rows: Iterable[Mapping[str, Any]], source: str) -> Iterator[Record]:
    """Records from plain mappings (each counts 1 toward progress), e.g. a generated shop."""
    for n, row in enumerate(rows):
        yield Record(row, f"{source}[{n}]")
