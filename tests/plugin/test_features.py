"""One tokenizer and one item-feature builder for serving, training and evaluation (issue 7)."""

from __future__ import annotations

from rich.console import Console

from kosmos.datasets import generate
from kosmos.demo import SHOP, load
from kosmos.evaluation.datasets import synthetic
from kosmos.plugin.features import categorical, item_features, price_band, tokenize
from kosmos.training.data import training_data


def test_tokenize_splits_words_and_drops_short_ones():
    assert tokenize("Set of 3 Cake Tins, Pantry design; cake!") == [
        "SET",
        "CAKE",
        "TINS",
        "PANTRY",
        "DESIGN",
    ]
    assert tokenize("Größe XL-Bär") == ["GRÖSSE", "BÄR"]
    assert tokenize("") == []


def test_item_features_turn_free_text_into_shared_words():
    a = item_features(
        {"description": "Red retro spot mug", "colour": "red"},
        title="Retro Mug",
        category="Kitchen",
        brand="Acme",
        price=3.5,
    )
    assert a == {
        "colour": "red",
        "word:RETRO": "1",
        "word:MUG": "1",
        "word:RED": "1",
        "word:SPOT": "1",
        "category": "Kitchen",
        "brand": "Acme",
        "price": "3.5",
        "price_band": "4",
    }
    b = item_features({"description": "Blue retro spot plate"}, price=0.0)
    shared = set(a) & set(b)
    assert {"word:RETRO", "word:SPOT"} <= shared and "price" not in b
    assert "price" not in categorical(a) and categorical(a)["price_band"] == "4"
    assert [price_band(p) for p in (0.3, 1.0, 1.99, 2.0, 1000.0)] == ["1", "3", "3", "4", "9"]
    # A shop's own attribute of the same name wins over the computed one.
    assert item_features({"price_band": "high"}, price=50.0)["price_band"] == "high"


def test_service_and_evaluation_build_the_same_item_features(kosmos):
    shop = generate(customers=20, items=15, seed=3)
    load(kosmos.client, shop, Console(quiet=True))
    served = training_data(kosmos.store, SHOP, now=shop.end_time).item_features
    evaluated = synthetic(customers=20, items=15, seed=3).item_features
    assert served == evaluated
    some = served[shop.items[0].item_id]
    assert some["category"] == shop.items[0].category
    assert {f"word:{w}" for w in tokenize(shop.items[0].title)} <= set(some)
    assert some["price"] == f"{shop.items[0].price:g}"
    assert some["price_band"] == shop.items[0].attributes["price_band"]  # the shop's own wins
