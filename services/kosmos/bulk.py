"""Bulk intake: a shop's catalog, customers and event history from JSON Lines or CSV files.

``kosmos import SHOP DIR`` and ``python -m kosmos.demo`` load through here, and it talks only
the public API, every kind as columns: `CatalogService.UpsertItems` (`ItemColumns`, 10,000
items a call), `ProfileService.CreateCustomers` (`CustomerColumns`, 10,000 profiles a call,
create or replace) and `FeedbackService.ImportInteractions` (`InteractionColumns`, 10,000 events
a call), one transaction each. While the service stores one batch the next is being read and
built. Event batches go one after the other, so events keep their file order; item and customer
batches two at a time, never two naming the same record, so a record named twice ends as the
later one.

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
import gc
import hashlib
import json
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from kosmos.client import InvalidArgumentError, KosmosClient, interaction_type
from kosmos.v1 import catalog_service_pb2, common_pb2, feedback_service_pb2, profile_service_pb2

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

ITEMS_BATCH = 10_000
CUSTOMERS_BATCH = 10_000
INTERACTIONS_BATCH = 10_000
KINDS = ("items", "customers", "interactions")
"""What a shop's files hold, in the order they must be imported (events name both others)."""

_ITEM_FIELDS = {"item_id", "id", "title", "category", "brand", "price", "available"}
_ITEM_FIELDS |= {"out_of_stock", "attributes"}
_CUSTOMER_FIELDS = {"customer_id", "id", "attributes"}
_STRINGS = {str}

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
                if line.isspace():
                    continue
                try:
                    # JSON Lines are UTF-8: decoded here, json skips guessing the encoding.
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    raise BulkImportError(f"{path}:{n}: not UTF-8") from None
                try:
                    try:
                        # The C scanner alone; the full decoder (two whitespace regexes a
                        # line) only for a line it does not take whole.
                        fields, end = _scan(text, 0)
                        if end != len(text) and not text[end:].isspace():
                            fields = _decode(text)
                    except StopIteration:
                        fields = _decode(text)
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
# The C scanner: (value, end) for the value at an index, StopIteration where there is none.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
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
    if _all_strings(raw):  # nothing to convert
        attributes = dict(raw)
    else:
        attributes = {str(k): str(v) for k, v in raw.items()}
    if fields.keys() <= known:
        return attributes
    for key, value in fields.items():
        # CSV: every other non-empty column is an attribute.
        if key not in known and value not in (None, "") and not isinstance(value, _NESTED):
            attributes[str(key)] = str(value)
    return attributes


def _all_strings(attributes: dict[Any, Any]) -> bool:
    """Every key and value is a string (JSON's keys always are; in-memory records' may not)."""
    return (
        set(map(type, attributes.values())) <= _STRINGS and set(map(type, attributes)) <= _STRINGS
    )


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
    out_of_stock = _out_of_stock(f, where)
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


def _out_of_stock(f: Mapping[str, Any], where: str) -> bool:
    if f.get("out_of_stock") not in (None, ""):
        return _bool(f["out_of_stock"], "out_of_stock", where)
    if f.get("available") not in (None, ""):
        return not _bool(f["available"], "available", where)
    return False


def _attribute_columns(rows: list[dict[str, str]]) -> list[common_pb2.AttributeColumn]:
    """Records' attribute dicts as one `AttributeColumn` per key (in first-seen order), ""
    where a record lacks the key."""
    keys: dict[str, None] = {}
    for row in rows:
        if not row.keys() <= keys.keys():
            keys.update(dict.fromkeys(row))
    return [
        common_pb2.AttributeColumn(key=key, values=[row.get(key, "") for row in rows])
        for key in keys
    ]


def _place(
    record: Record, sources: list[Record], at: dict[str, int], columns: tuple[list[Any], ...]
) -> None:
    """Records the source of the entry just appended to ``columns`` (the first holds ids). A
    record named again in the same batch takes the earlier one's place (the later record
    wins, as it would from a later batch), its source counting the bytes of both."""
    n = at.setdefault(columns[0][-1], len(sources))
    if n == len(sources):
        sources.append(record)
        return
    for column in columns:
        column[n] = column.pop()
    sources[n] = Record(record.fields, record.where, record.size + sources[n].size)


def _item_columns(
    records: Iterable[Record], size: int
) -> Iterator[tuple[catalog_service_pb2.ItemColumns, list[Record]]]:
    """Batches of item records as `ItemColumns` (what `item_message` reads, a column each)."""
    sources: list[Record] = []
    ids: list[str] = []
    titles: list[str] = []
    categories: list[str] = []
    brands: list[str] = []
    prices: list[float] = []
    out_of_stock: list[bool] = []
    attributes: list[dict[str, str]] = []
    columns: tuple[list[Any], ...] = (
        ids,
        titles,
        categories,
        brands,
        prices,
        out_of_stock,
        attributes,
    )
    at: dict[str, int] = {}

    def batch() -> catalog_service_pb2.ItemColumns:
        return catalog_service_pb2.ItemColumns(
            item_ids=ids,
            titles=titles if any(titles) else (),
            categories=categories if any(categories) else (),
            brands=brands if any(brands) else (),
            prices=prices if any(prices) else (),
            out_of_stock=out_of_stock if any(out_of_stock) else (),
            attributes=_attribute_columns(attributes),
        )

    for record in records:
        f = record.fields
        item_id, title, category, brand = (
            f.get("item_id"),
            f.get("title"),
            f.get("category"),
            f.get("brand"),
        )
        price, raw = f.get("price"), f.get("attributes")
        if (  # the usual record, taken as it is (as the checks below would take it)
            type(item_id) is str
            and item_id
            and type(title) is str
            and type(category) is str
            and type(brand) is str
            and type(price) is float
            and f.get("available") is True
            and type(raw) is dict
            and f.keys() <= _ITEM_FIELDS
            and "out_of_stock" not in f
            and _all_strings(raw)
        ):
            ids.append(item_id)
            titles.append(title)
            categories.append(category)
            brands.append(brand)
            prices.append(price)
            out_of_stock.append(False)
            attributes.append(raw)
        else:
            where = record.where
            ids.append(_text(f, ("item_id", "id"), where))
            titles.append(str(title or ""))
            categories.append(str(category or ""))
            brands.append(str(brand or ""))
            prices.append(_float(price, "price", where))
            out_of_stock.append(_out_of_stock(f, where))
            attributes.append(_attributes(f, _ITEM_FIELDS, where))
        _place(record, sources, at, columns)
        if len(sources) == size:
            yield batch(), sources
            sources = []
            at.clear()
            for column in columns:
                column.clear()  # the message holds copies
    if sources:
        yield batch(), sources


def _customer_columns(
    records: Iterable[Record], size: int
) -> Iterator[tuple[profile_service_pb2.CustomerColumns, list[Record]]]:
    """Batches of customer records as `CustomerColumns` (ids and attributes)."""
    sources: list[Record] = []
    ids: list[str] = []
    attributes: list[dict[str, str]] = []
    at: dict[str, int] = {}

    def batch() -> profile_service_pb2.CustomerColumns:
        return profile_service_pb2.CustomerColumns(
            customer_ids=ids, attributes=_attribute_columns(attributes)
        )

    for record in records:
        f = record.fields
        customer_id, raw = f.get("customer_id"), f.get("attributes")
        if (  # the usual record, taken as it is: an id, and attributes that are all strings
            type(customer_id) is str
            and customer_id
            and type(raw) is dict
            and f.keys() <= _CUSTOMER_FIELDS
            and _all_strings(raw)
        ):
            ids.append(customer_id)
            attributes.append(raw)
        else:
            ids.append(_text(f, ("customer_id", "id"), record.where))
            attributes.append(_attributes(f, _CUSTOMER_FIELDS, record.where))
        _place(record, sources, at, (ids, attributes))
        if len(sources) == size:
            yield batch(), sources
            sources = []
            at.clear()
            ids.clear()  # the message holds copies
            attributes.clear()
    if sources:
        yield batch(), sources


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


GC_THRESHOLD = 50_000
"""The collector's first threshold during an import (CPython's default: 700 allocations). A
batch of 10,000 records allocates a dict or two each, so at the default the collector runs
every few records and walks every young dict: a quarter of the client's time (issue 12:
`tools/bench_import.py`'s "client alone", 283k against 403k customers/s). Collections still
run, 70 times less often, so memory stays bounded."""


_collections_lock = threading.Lock()
_collections_raised: list[tuple[int, ...]] = []  # the thresholds to restore, one per import


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """`GC_THRESHOLD` while any import of this process runs (imports on several threads
    share it); the thresholds as they were once the last one ends."""
    with _collections_lock:
        if not _collections_raised:
            first, *rest = gc.get_threshold()
            gc.set_threshold(max(first, GC_THRESHOLD), *rest)
            _collections_raised.append((first, *rest))
        else:
            _collections_raised.append(_collections_raised[0])
    try:
        yield
    finally:
        with _collections_lock:
            before = _collections_raised.pop()
            if not _collections_raised:
                gc.set_threshold(*before)


def _pipelined(
    batches: Iterator[tuple[B, list[Record]]],
    send: Callable[[B], int],
    on_progress: Progress,
    ids: Callable[[B], Iterable[str]] | None = None,
) -> int:
    """Sends batches while the next one is built. Without ``ids``, one at a time, in order
    (events keep their file order). With ``ids`` (the records a batch names: upserts, where
    only the last copy of a record must win), two at once, so that the service reads and
    checks one while it commits the other (issue 12: `tools/bench_import.py`), but never two
    that name the same record: the later one waits for the earlier. On an error the batch
    beside the failed one may be stored; importing again is harmless."""
    workers = 1 if ids is None else 2
    total = 0
    with _fewer_collections(), ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[Future[int], list[Record], set[str]]] = deque()
        for batch, sources in batches:
            named = set() if ids is None else set(ids(batch))
            while pending and (
                len(pending) >= workers or any(not named.isdisjoint(p[2]) for p in pending)
            ):
                total += _settle(*pending.popleft()[:2], on_progress)
            pending.append((pool.submit(send, batch), sources, named))
        while pending:
            total += _settle(*pending.popleft()[:2], on_progress)
    return total


def _settle(future: Future[int], sources: list[Record], on_progress: Progress) -> int:
    try:
        count = future.result()
    except InvalidArgumentError as error:
        raise BulkImportError(_located(error, sources)) from None
    on_progress(sum(r.size for r in sources))
    return count


_COLUMN = re.compile(r"columns\.(\w+)(?:\[\d+\]\.values)?\[(\d+)\]")
_COLUMN_FIELDS = {
    "customer_ids": "customer_id",
    "item_ids": "item_id",
    "titles": "title",
    "categories": "category",
    "brands": "brand",
    "prices": "price",
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
    batch_size: int = ITEMS_BATCH,
) -> int:
    """Upserts every item record; returns how many. An item named twice ends as its later
    record."""

    def send(columns: catalog_service_pb2.ItemColumns) -> int:
        client.upsert_item_columns(shop_id, columns)
        return len(columns.item_ids)  # one transaction: all of them or an error

    return _pipelined(_item_columns(records, batch_size), send, on_progress, lambda c: c.item_ids)


def import_customers(
    client: KosmosClient,
    shop_id: str,
    records: Iterable[Record],
    on_progress: Progress = lambda _n: None,
    batch_size: int = CUSTOMERS_BATCH,
) -> int:
    """Creates every customer record, or replaces the attributes of those that exist (their
    exclusions, which customers state themselves, stay); returns how many. A customer named
    twice ends as the later record."""

    def send(columns: profile_service_pb2.CustomerColumns) -> int:
        client.create_customer_columns(shop_id, columns, replace=["attributes"])
        return len(columns.customer_ids)  # one transaction: all of them or an error

    return _pipelined(
        _customer_columns(records, batch_size),
        send,
        on_progress,
        lambda c: c.customer_ids,
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
