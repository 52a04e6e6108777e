from __future__ import annotations

import pytest

from kosmos.plugin import Scored
from kosmos.plugin.routing import Routing, run_chain


def test_parse_one_chain_for_everyone():
    r = Routing.parse("als, popularity")
    assert r.chain(True) == r.chain(False) == ("als", "popularity")
    assert str(r) == "als,popularity"


def test_parse_segments():
    r = Routing.parse("warm=als,popularity; cold=lightfm,popularity")
    assert r.chain(True) == ("als", "popularity")
    assert r.chain(False) == ("lightfm", "popularity")
    assert r.names == ("als", "popularity", "lightfm")
    assert Routing.parse(str(r)) == r


@pytest.mark.parametrize(
    "text",
    ["", "warm=als", "Hot=a;cold=b", "warm=;cold=b", "a b", "warm=a;cold=b;cart=c;cart=d"],
)
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        Routing.parse(text)


def test_placements_have_their_own_chain():
    routing = Routing.parse(
        "warm=als,popularity;cold=popularity;product=bought_together,popularity"
    )
    assert routing.chain(has_history=True) == ("als", "popularity")
    assert routing.chain(has_history=False, placement="home") == ("popularity",)
    assert routing.chain(has_history=False, placement="product") == (
        "bought_together",
        "popularity",
    )
    assert routing.chain(has_history=True, placement="product") == ("bought_together", "popularity")
    assert routing.names == ("als", "popularity", "bought_together")
    assert Routing.parse(str(routing)) == routing


def test_chain_falls_back_fills_and_dedupes():
    answers = {
        "broken": RuntimeError("down"),
        "none": None,
        "first": [Scored("x", 3.0), Scored("y", 2.0)],
        "second": [Scored("y", 9.0), Scored("z", 1.0), Scored("w", 0.5)],
        "never": [Scored("q", 1.0)],
    }

    def ask(name):
        answer = answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer

    got = run_chain(["broken", "none", "first", "second", "never"], ask, k=4)
    assert [(c.scored.item_id, c.recommender) for c in got] == [
        ("x", "first"),
        ("y", "first"),
        ("z", "second"),
        ("w", "second"),
    ]
