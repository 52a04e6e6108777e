"""Bulk intake through the real gRPC API: CreateCustomers, ImportInteractions, `kosmos import`
and the item availability default (issue 7, points 5 and 6)."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest

from kosmos.cli import main
from kosmos.datasets.__main__ import main as write_dataset
from kosmos.v1 import (
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    common_pb2,
    feedback_service_pb2,
    feedback_service_pb2_grpc,
    profile_service_pb2,
    profile_service_pb2_grpc,
)
from tests.helpers import assert_code, assert_invalid, item, small_shop

OLD = 1_293_840_000  # 2011-01-01: history from a data set a decade old


@pytest.fixture
def profiles(kosmos):
    return profile_service_pb2_grpc.ProfileServiceStub(kosmos.channel)


@pytest.fixture
def feedback(kosmos):
    return feedback_service_pb2_grpc.FeedbackServiceStub(kosmos.channel)


def customer(shop: str, customer_id: str, **attributes: str) -> common_pb2.Customer:
    return common_pb2.Customer(name=f"shops/{shop}/customers/{customer_id}", attributes=attributes)


def event(shop: str, who: str, what: str, kind: int, when: float, value: float = 0.0):
    message = common_pb2.Interaction(
        customer=f"shops/{shop}/customers/{who}", item_id=what, type=kind, value=value
    )
    message.event_time.FromSeconds(int(when))
    return message


def test_create_customers_creates_then_replaces(client):
    small_shop(client)
    stored, created = client.create_customers(
        "acme", [customer("acme", f"c{n}", segment="a") for n in range(3)]
    )
    assert created == 3 and [c.name for c in stored][0] == "shops/acme/customers/c0"
    first = client.get_customer("acme", "c1")
    stored, created = client.create_customers(
        "acme", [customer("acme", "c1", segment="b"), customer("acme", "c9")]
    )
    assert created == 1
    again = client.get_customer("acme", "c1")
    assert again.attributes == {"segment": "b"}
    assert again.create_time == first.create_time  # replaced, not re-created
    assert len(list(client.list_customers("acme"))) == 2 + 4  # alice, bob, c0-c2, c9


def test_create_customers_replaces_only_the_masked_fields(client, profiles):
    small_shop(client)
    client.update_customer("acme", "alice", exclusions=[("brand", "B1")])
    stored, created = client.create_customers(
        "acme", [customer("acme", "alice", tier="gold")], replace=["attributes"]
    )
    assert created == 0
    assert stored[0].attributes == {"tier": "gold"} and stored[0].exclusions[0].value == "B1"
    alice = client.get_customer("acme", "alice")
    assert alice.attributes == {"tier": "gold"} and [e.value for e in alice.exclusions] == ["B1"]
    client.create_customers("acme", [customer("acme", "alice")])  # no mask: both fields
    assert not client.get_customer("acme", "alice").exclusions
    request = profile_service_pb2.CreateCustomersRequest(
        parent="shops/acme", customers=[customer("acme", "alice")]
    )
    request.update_mask.paths.append("create_time")
    assert_invalid(profiles.CreateCustomers, request, "update_mask.paths[0]")


def test_create_customers_names_the_bad_entry(kosmos, profiles):
    small_shop(kosmos.client)
    good = [customer("acme", f"c{n}") for n in range(3)]

    def request(*extra: common_pb2.Customer):
        return profile_service_pb2.CreateCustomersRequest(
            parent="shops/acme", customers=[*good, *extra]
        )

    assert_invalid(
        profiles.CreateCustomers, request(customer("acme", "bad id!")), "customers[3].name"
    )
    assert_invalid(profiles.CreateCustomers, request(customer("other", "c7")), "customers[3].name")
    assert_invalid(profiles.CreateCustomers, request(customer("acme", "c1")), "customers[3].name")
    too_long = customer("acme", "c8", **{"k" * 65: "v"})
    assert_invalid(
        profiles.CreateCustomers, request(too_long), "customers[3].attributes['" + "k" * 65 + "']"
    )
    assert_invalid(
        profiles.CreateCustomers,
        profile_service_pb2.CreateCustomersRequest(parent="shops/acme"),
        "customers",
    )
    many = [customer("acme", f"m{n}") for n in range(1001)]
    assert_invalid(
        profiles.CreateCustomers,
        profile_service_pb2.CreateCustomersRequest(parent="shops/acme", customers=many),
        "customers",
    )
    # All or nothing: none of the good entries of a refused request were stored.
    assert {c.name.rsplit("/", 1)[-1] for c in kosmos.client.list_customers("acme")} == {
        "alice",
        "bob",
    }
    assert_code(
        profiles.CreateCustomers,
        profile_service_pb2.CreateCustomersRequest(
            parent="shops/nope", customers=[customer("nope", "c0")]
        ),
        grpc.StatusCode.NOT_FOUND,
        "SHOP_NOT_FOUND",
    )


def test_import_interactions_back_fills_history_once(kosmos, feedback):
    small_shop(kosmos.client)
    events = [
        event("acme", "alice", f"i{n:02d}", common_pb2.INTERACTION_TYPE_PURCHASE, OLD + n, 2)
        for n in range(20)
    ]
    request = feedback_service_pb2.ImportInteractionsRequest(
        parent="shops/acme", request_id="history-1", interactions=events
    )
    first = feedback.ImportInteractions(request, timeout=5)
    assert (first.imported_count, first.replayed) == (20, False)
    again = feedback.ImportInteractions(request, timeout=5)
    assert (again.imported_count, again.replayed) == (20, True)
    stored = list(kosmos.client.list_interactions("acme", "alice"))
    assert len(stored) == 20
    # Newest first, in the order sent, with the event's own (old) time and quantity.
    assert [i.item_id for i in stored] == [f"i{n:02d}" for n in reversed(range(20))]
    assert stored[-1].event_time.seconds == OLD and stored[-1].value == 2
    changed = feedback_service_pb2.ImportInteractionsRequest(
        parent="shops/acme", request_id="history-1", interactions=events[:3]
    )
    assert_code(
        feedback.ImportInteractions, changed, grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED"
    )


def test_import_interactions_validates_each_entry(kosmos, feedback):
    small_shop(kosmos.client)
    kind = common_pb2.INTERACTION_TYPE_VIEW

    def request(bad: common_pb2.Interaction, request_id: str = "r"):
        good = [event("acme", "bob", "i01", kind, OLD) for _ in range(3)]
        return feedback_service_pb2.ImportInteractionsRequest(
            parent="shops/acme", request_id=request_id, interactions=[*good, bad]
        )

    future = event("acme", "bob", "i01", kind, time.time() + 3600)
    assert_invalid(feedback.ImportInteractions, request(future), "interactions[3].event_time")
    assert_invalid(
        feedback.ImportInteractions,
        request(event("acme", "bob", "i01", common_pb2.INTERACTION_TYPE_UNSPECIFIED, OLD)),
        "interactions[3].type",
    )
    assert_invalid(
        feedback.ImportInteractions,
        request(event("other", "bob", "i01", kind, OLD)),
        "interactions[3].customer",
    )
    # Names are checked once per batch, each on its first sight: a bad one is still named.
    assert_invalid(
        feedback.ImportInteractions,
        request(event("acme", "bad id!", "i01", kind, OLD)),
        "interactions[3].customer",
    )
    assert_invalid(
        feedback.ImportInteractions,
        request(event("acme", "bob", "bad id!", kind, OLD)),
        "interactions[3].item_id",
    )
    assert_code(
        feedback.ImportInteractions,
        request(event("acme", "bob", "nope", kind, OLD)),
        grpc.StatusCode.NOT_FOUND,
        "ITEM_NOT_FOUND",
    )
    many = [event("acme", "bob", "i01", kind, OLD)] * 10_001
    assert_invalid(
        feedback.ImportInteractions,
        feedback_service_pb2.ImportInteractionsRequest(
            parent="shops/acme", request_id="big", interactions=many
        ),
        "interactions",
    )
    assert list(kosmos.client.list_interactions("acme", "bob")) == []  # nothing half-stored


def columns_request(request_id: str = "cols", **columns) -> Any:
    """An ImportInteractionsRequest for acme with ``columns`` (three good views by default)."""
    fields = {
        "customer_ids": ["alice", "bob", "alice"],
        "item_ids": ["i01", "i02", "i03"],
        "types": [common_pb2.INTERACTION_TYPE_VIEW] * 3,
        "event_times": [OLD, OLD + 1.5, OLD + 2],
        **columns,
    }
    return feedback_service_pb2.ImportInteractionsRequest(
        parent="shops/acme",
        request_id=request_id,
        columns=feedback_service_pb2.InteractionColumns(**fields),
    )


def test_import_interactions_as_columns_stores_what_messages_would(kosmos, feedback):
    small_shop(kosmos.client)
    purchase, rating = common_pb2.INTERACTION_TYPE_PURCHASE, common_pb2.INTERACTION_TYPE_RATING
    request = columns_request(
        types=[purchase, rating, common_pb2.INTERACTION_TYPE_VIEW],
        values=[2, 4.5, 0],
        recommendation_ids=["made-up", "", ""],
    )
    first = feedback.ImportInteractions(request, timeout=5)
    assert (first.imported_count, first.replayed) == (3, False)
    again = feedback.ImportInteractions(request, timeout=5)
    assert (again.imported_count, again.replayed) == (3, True)
    alice = list(kosmos.client.list_interactions("acme", "alice"))
    assert [(i.item_id, i.type, i.value) for i in alice] == [
        ("i03", common_pb2.INTERACTION_TYPE_VIEW, 0),
        ("i01", purchase, 2),
    ]
    # The old time, to the microsecond; a recommendation id the shop was never served is
    # dropped, as it is from a message.
    assert alice[1].event_time.seconds == OLD and alice[1].recommendation_id == ""
    (bob,) = kosmos.client.list_interactions("acme", "bob")
    assert (bob.item_id, bob.value, bob.event_time.ToMicroseconds()) == (
        "i02",
        4.5,
        (OLD + 1.5) * 1_000_000,
    )
    # The optional columns may be left empty: value 0, now, no recommendation.
    before = time.time()
    feedback.ImportInteractions(columns_request("now", event_times=[]), timeout=5)
    latest = kosmos.client.list_interactions("acme", "bob")
    assert next(iter(latest)).event_time.seconds >= int(before)


def test_import_interactions_as_columns_names_the_bad_column_and_entry(kosmos, feedback):
    small_shop(kosmos.client)
    view = common_pb2.INTERACTION_TYPE_VIEW
    future = time.time() + 3600
    for columns, field in (
        ({"customer_ids": ["alice", "bad id!", "alice"]}, "columns.customer_ids[1]"),
        ({"item_ids": ["i01", "i02", ""]}, "columns.item_ids[2]"),
        ({"types": [view, common_pb2.INTERACTION_TYPE_UNSPECIFIED, view]}, "columns.types[1]"),
        ({"types": [view, view, 99]}, "columns.types[2]"),
        ({"values": [0, -1, 0]}, "columns.values[1]"),
        ({"values": [0, 0, float("nan")]}, "columns.values[2]"),
        (
            {"types": [view, common_pb2.INTERACTION_TYPE_RATING, view], "values": [0, 6, 0]},
            "columns.values[1]",
        ),
        ({"event_times": [OLD, future, OLD]}, "columns.event_times[1]"),
        ({"event_times": [OLD, OLD, -5]}, "columns.event_times[2]"),
        ({"recommendation_ids": ["", "r" * 129, ""]}, "columns.recommendation_ids[1]"),
        ({"item_ids": ["i01", "i02"]}, "columns.item_ids"),  # shorter than customer_ids
        ({"values": [1.0]}, "columns.values"),  # optional: empty or as long
        (
            {"customer_ids": [], "item_ids": [], "types": [], "event_times": []},
            "columns.customer_ids",
        ),
    ):
        assert_invalid(feedback.ImportInteractions, columns_request(**columns), field)
    both = columns_request()
    both.interactions.append(event("acme", "bob", "i01", view, OLD))
    assert_invalid(feedback.ImportInteractions, both, "columns")
    many = ["alice"] * 10_001
    assert_invalid(
        feedback.ImportInteractions,
        columns_request(
            customer_ids=many, item_ids=["i01"] * 10_001, types=[view] * 10_001, event_times=[]
        ),
        "columns.customer_ids",
    )
    assert_code(
        feedback.ImportInteractions,
        columns_request(item_ids=["i01", "nope", "i02"]),
        grpc.StatusCode.NOT_FOUND,
        "ITEM_NOT_FOUND",
    )
    assert_code(
        feedback.ImportInteractions,
        columns_request(customer_ids=["alice", "bob", "carol"]),
        grpc.StatusCode.NOT_FOUND,
        "CUSTOMER_NOT_FOUND",
    )
    assert list(kosmos.client.list_interactions("acme", "alice")) == []  # nothing half-stored


def test_an_item_upserted_without_availability_is_offered(kosmos):
    """Regression, issue 7: proto3 sends no `available: false`, so such items were hidden."""
    client = kosmos.client
    client.create_shop("acme")
    client.upsert_items("acme", [common_pb2.Item(name="shops/acme/items/plain", title="Plain")])
    got = client.get_item("acme", "plain")
    assert got.available and not got.out_of_stock
    client.create_customer("acme", "alice")
    assert [o.item for o in client.recommend("acme", "alice").offers] == ["shops/acme/items/plain"]
    client.upsert_items("acme", [item("acme", "plain", available=False)])
    got = client.get_item("acme", "plain")
    assert got.out_of_stock and not got.available
    assert client.recommend("acme", "alice").offers == []
    stub = catalog_service_pb2_grpc.CatalogServiceStub(kosmos.channel)
    listed = stub.ListItems(catalog_service_pb2.ListItemsRequest(parent="shops/acme"), timeout=5)
    assert [i.out_of_stock for i in listed.items] == [True]


def run_cli(kosmos, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--target", kosmos.address, "--api-key", kosmos.operator_key, *args], env={})
    out = capsys.readouterr()
    return code, out.out, out.err.replace("\n", "")  # rich wraps long paths


def test_kosmos_import_loads_the_generator_output(kosmos, capsys, tmp_path):
    folder = tmp_path / "shop"
    assert write_dataset(["--customers", "40", "--items", "30", "--out", str(folder)]) == 0
    lines = {
        kind: (folder / f"{kind}.jsonl").read_text().splitlines()
        for kind in ("items", "customers", "interactions")
    }
    capsys.readouterr()
    code, out, err = run_cli(kosmos, capsys, "import", "synth", str(folder))
    assert code == 0, err
    assert f"interactions: {len(lines['interactions']):,} from" in out
    store = kosmos.store
    assert len(store.list_items("synth", "", 1000)) == len(lines["items"])
    assert len(store.list_customers("synth", "", 1000)) == len(lines["customers"])
    stored = list(store.iter_interactions("synth"))
    assert len(stored) == len(lines["interactions"])
    first = json.loads(lines["interactions"][0])
    assert (stored[0].customer_id, stored[0].item_id, stored[0].type.name.lower()) == (
        first["customer_id"],
        first["item_id"],
        first["type"],
    )
    assert stored[0].event_time == pytest.approx(first["time"], abs=1e-6)
    unavailable = {json.loads(line)["item_id"] for line in lines["items"]} - {
        i.item_id for i in store.list_items("synth", "", 1000) if i.available
    }
    assert unavailable == {
        json.loads(line)["item_id"] for line in lines["items"] if not json.loads(line)["available"]
    }
    # A customer's own exclusions survive a re-import of the customers file.
    first_customer = json.loads(lines["customers"][0])["customer_id"]
    kosmos.client.update_customer("synth", first_customer, exclusions=[("category", "Toys")])
    # Again: every batch is a replay, nothing is stored twice.
    code, _, err = run_cli(kosmos, capsys, "import", "synth", str(folder))
    assert code == 0, err
    assert len(list(store.iter_interactions("synth"))) == len(lines["interactions"])
    assert [e.value for e in store.get_customer("synth", first_customer).exclusions] == ["Toys"]


def test_kosmos_import_reads_csv_and_points_at_the_bad_line(kosmos, capsys, tmp_path):
    (tmp_path / "items.csv").write_text(
        "item_id,title,category,price,colour\ni1,Mug,Kitchen,3.5,red\ni2,Pan,Kitchen,12,\n"
    )
    (tmp_path / "customers.csv").write_text("customer_id,country\nc1,UK\n")
    (tmp_path / "interactions.csv").write_text(
        "customer_id,item_id,type,value,event_time\n"
        "c1,i1,purchase,2,2011-03-04T10:00:00\n"
        "c1,i2,1,,1300000000\n"  # the proto's number for view
    )
    code, out, err = run_cli(kosmos, capsys, "import", "csvshop", str(tmp_path))
    assert code == 0, err
    store = kosmos.store
    items = store.get_items("csvshop", ["i1", "i2"])
    assert items["i1"].attributes == {"colour": "red"} and items["i2"].price == 12
    assert items["i2"].available
    assert store.get_customer("csvshop", "c1").attributes == {"country": "UK"}
    events = list(store.iter_interactions("csvshop"))
    assert [(e.item_id, e.type.name, e.value) for e in events] == [
        ("i1", "PURCHASE", 2.0),
        ("i2", "VIEW", 0.0),
    ]
    assert events[0].event_time == 1299232800.0  # 2011-03-04 10:00 UTC
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "interactions.csv").write_text(
        "customer_id,item_id,type,event_time\nc1,i1,view,1300000000\nc1,i1,view,2999999999\n"
    )
    code, _, err = run_cli(kosmos, capsys, "import", "csvshop", str(bad))
    assert code == 2
    assert f"{bad / 'interactions.csv'}:3: event_time" in err, err
    (bad / "interactions.csv").write_text("customer_id,item_id,type\nc1,i1,teleport\n")
    code, _, err = run_cli(kosmos, capsys, "import", "csvshop", str(bad))
    assert code == 2 and "interactions.csv:2: type" in err, err


def test_count_only_answers_without_echoing_and_stores_the_same(kosmos, profiles):
    """Bulk loaders ask for a count: the response is empty, the rows are stored as ever."""
    client = kosmos.client
    client.create_shop("acme")
    catalog = catalog_service_pb2_grpc.CatalogServiceStub(kosmos.channel)
    response = catalog.UpsertItems(
        catalog_service_pb2.UpsertItemsRequest(
            parent="shops/acme",
            items=[item("acme", f"i{n}", title=f"Item {n}") for n in range(3)],
            count_only=True,
        ),
        timeout=5,
    )
    assert list(response.items) == []
    assert client.get_item("acme", "i2").title == "Item 2"
    assert len(client.upsert_items("acme", [item("acme", "i9")])) == 1  # the default echoes
    request = profile_service_pb2.CreateCustomersRequest(
        parent="shops/acme",
        customers=[customer("acme", "c1", tier="a"), customer("acme", "c2")],
        count_only=True,
    )
    response = profiles.CreateCustomers(request, timeout=5)
    assert (list(response.customers), response.created_count) == ([], 2)
    assert client.get_customer("acme", "c1").attributes == {"tier": "a"}
    assert profiles.CreateCustomers(request, timeout=5).created_count == 0  # now replaced


def test_upsert_items_names_the_bad_entry_and_stores_none(kosmos):
    client = kosmos.client
    client.create_shop("acme")
    catalog = catalog_service_pb2_grpc.CatalogServiceStub(kosmos.channel)
    good = [item("acme", f"i{n}") for n in range(3)]

    def request(bad: common_pb2.Item):
        return catalog_service_pb2.UpsertItemsRequest(
            parent="shops/acme", items=[*good, bad], count_only=True
        )

    assert_invalid(catalog.UpsertItems, request(item("acme", "x", price=-1)), "items[3].price")
    nan = item("acme", "x", price=float("nan"))
    assert_invalid(catalog.UpsertItems, request(nan), "items[3].price")
    assert_invalid(
        catalog.UpsertItems, request(item("acme", "x", title="t" * 513)), "items[3].title"
    )
    assert_invalid(catalog.UpsertItems, request(item("other", "x")), "items[3].name")
    assert_invalid(catalog.UpsertItems, request(item("acme", "bad id!")), "items[3].name")
    assert_invalid(catalog.UpsertItems, request(item("acme", "i1")), "items[3].name")  # twice
    keyed = item("acme", "x")
    keyed.attributes["k" * 65] = "v"
    assert_invalid(catalog.UpsertItems, request(keyed), "items[3].attributes['" + "k" * 65 + "']")
    listed = catalog.ListItems(catalog_service_pb2.ListItemsRequest(parent="shops/acme"), timeout=5)
    assert list(listed.items) == []  # all or nothing


def _attribute(key: str, values: list[str]) -> common_pb2.AttributeColumn:
    return common_pb2.AttributeColumn(key=key, values=values)


def test_customer_columns_create_then_replace_and_keep_stated_exclusions(kosmos, profiles):
    """`CreateCustomers` with columns (what `kosmos import` sends): new profiles counted, the
    existing ones' attributes replaced, their own exclusions kept under the mask."""
    client = kosmos.client
    small_shop(client)
    client.update_customer("acme", "alice", exclusions=[("brand", "B1")])
    columns = profile_service_pb2.CustomerColumns(
        customer_ids=["alice", "c1", "c2"],
        attributes=[
            _attribute("tier", ["gold", "", "new"]),
            _attribute("country", ["ES", "FR", ""]),
        ],
    )
    assert client.create_customer_columns("acme", columns, replace=["attributes"]) == 2
    alice = client.get_customer("acme", "alice")
    assert dict(alice.attributes) == {"tier": "gold", "country": "ES"}
    assert [e.value for e in alice.exclusions] == ["B1"]
    assert dict(client.get_customer("acme", "c1").attributes) == {"country": "FR"}
    assert dict(client.get_customer("acme", "c2").attributes) == {"tier": "new"}
    assert client.create_customer_columns("acme", columns, replace=["attributes"]) == 0
    # Without a mask both fields are replaced: no exclusions in columns means none.
    client.create_customer_columns(
        "acme", profile_service_pb2.CustomerColumns(customer_ids=["alice"])
    )
    alice = client.get_customer("acme", "alice")
    assert (dict(alice.attributes), list(alice.exclusions)) == ({}, [])

    def request(**fields: Any) -> profile_service_pb2.CreateCustomersRequest:
        return profile_service_pb2.CreateCustomersRequest(
            parent="shops/acme",
            columns=profile_service_pb2.CustomerColumns(**{"customer_ids": ["d1", "d2"], **fields}),
        )

    assert_invalid(
        profiles.CreateCustomers, request(customer_ids=["d1", "bad id!"]), "columns.customer_ids[1]"
    )
    assert_invalid(
        profiles.CreateCustomers,
        request(customer_ids=["d1", "d2", "d1"]),
        "columns.customer_ids[2]",
    )
    assert_invalid(
        profiles.CreateCustomers,
        request(attributes=[_attribute("k", ["1"])]),
        "columns.attributes[0].values",
    )
    assert_invalid(
        profiles.CreateCustomers,
        request(attributes=[_attribute("k" * 65, ["1", "2"])]),
        "columns.attributes[0].key",
    )
    both = request()
    both.customers.append(customer("acme", "d3"))
    assert_invalid(profiles.CreateCustomers, both, "columns")
    assert_invalid(
        profiles.CreateCustomers,
        request(customer_ids=[f"m{n}" for n in range(10_001)]),
        "columns.customer_ids",
    )
    names = {c.name.rsplit("/", 1)[-1] for c in client.list_customers("acme")}
    assert names == {"alice", "bob", "c1", "c2"}
    assert_code(
        profiles.CreateCustomers,
        profile_service_pb2.CreateCustomersRequest(
            parent="shops/nope", columns=profile_service_pb2.CustomerColumns(customer_ids=["x"])
        ),
        grpc.StatusCode.NOT_FOUND,
        "SHOP_NOT_FOUND",
    )


def test_kosmos_import_keeps_the_later_record_of_an_item_or_customer_named_twice(kosmos, tmp_path):
    """Two batches are in flight at once, and a batch folds a record named again into the
    earlier one's place: either way the record later in the file wins, as one at a time."""
    from kosmos import bulk

    client = kosmos.client
    client.create_shop("twice")
    lines = [{"item_id": f"i{n}", "title": f"first {n}", "price": 1.0} for n in range(12)]
    lines += [{"item_id": f"i{n}", "title": f"again {n}", "price": 2.0} for n in (3, 7, 11)]
    lines.insert(5, {"item_id": "i1", "title": "again 1 (same batch)", "price": 3.0})
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    consumed: list[int] = []
    count = bulk.import_items(
        client, "twice", bulk.read_records(path), consumed.append, batch_size=4
    )
    assert count == 15  # one record folded into its batch's earlier one
    assert sum(consumed) == path.stat().st_size
    titles = {i.item_id: i.title for i in kosmos.store.list_items("twice", "", 100)}
    assert titles == {
        f"i{n}": (
            "again 1 (same batch)" if n == 1 else f"again {n}" if n in (3, 7, 11) else f"first {n}"
        )
        for n in range(12)
    }
    people = tmp_path / "customers.jsonl"
    people.write_text(
        "".join(
            json.dumps({"customer_id": f"c{n % 5}", "attributes": {"seen": str(n)}}) + "\n"
            for n in range(13)
        )
    )
    assert bulk.import_customers(client, "twice", bulk.read_records(people), batch_size=3) == 13
    seen = {
        c.customer_id: c.attributes["seen"] for c in kosmos.store.list_customers("twice", "", 100)
    }
    assert seen == {"c0": "10", "c1": "11", "c2": "12", "c3": "8", "c4": "9"}


def test_kosmos_import_points_at_the_bad_line_of_items_and_customers(kosmos, capsys, tmp_path):
    (tmp_path / "items.jsonl").write_text(
        json.dumps({"item_id": "i1", "price": 1.0})
        + "\n"
        + json.dumps({"item_id": "i2", "price": -4.0})
        + "\n"
    )
    code, _, err = run_cli(kosmos, capsys, "import", "badshop", str(tmp_path))
    # Rich may wrap the long path at any space, which `run_cli` joins back without it.
    assert code == 2 and f"{tmp_path / 'items.jsonl'}:2:price" in err.replace(" ", ""), err
    (tmp_path / "items.jsonl").write_text(json.dumps({"item_id": "i1"}) + "\n")
    (tmp_path / "customers.jsonl").write_text(
        json.dumps({"customer_id": "c1"})
        + "\n"
        + json.dumps({"customer_id": "c2", "attributes": {"note": "x" * 1025}})
        + "\n"
    )
    code, _, err = run_cli(kosmos, capsys, "import", "badshop", str(tmp_path))
    assert code == 2 and f"{tmp_path / 'customers.jsonl'}:2:attributes" in err.replace(" ", ""), err


def test_imports_on_two_threads_leave_the_collector_as_they_found_it():
    """The collector's threshold is raised while any import runs and restored after the last,
    whatever order overlapping imports end in."""
    import gc

    from kosmos import bulk

    before = gc.get_threshold()
    first, second = bulk._fewer_collections(), bulk._fewer_collections()
    first.__enter__()
    assert gc.get_threshold()[0] == max(before[0], bulk.GC_THRESHOLD)
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first
    assert gc.get_threshold()[0] == max(before[0], bulk.GC_THRESHOLD)  # one still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
