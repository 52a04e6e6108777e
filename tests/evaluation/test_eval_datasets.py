"""The real-data loaders, on tiny files in the real formats (and on the real data when present:
it lives outside the repository, in ../shared/data, and is never copied in)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kosmos.evaluation import (
    ONLINE_RETAIL_CUTOFF,
    DataNotFound,
    movielens_100k,
    online_retail,
    random_split,
    temporal_split,
)
from kosmos.plugin import InteractionType

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
HEART = "85123A,WHITE HANGING HEART T-LIGHT HOLDER"
WARMER = "22633,HAND WARMER UNION JACK"
UK = "17850,United Kingdom"
RETAIL_ROWS = [
    f"536365,{HEART},6.0,2010-12-01T08:26:00,2.55,{UK}",
    # The same product twice on one invoice: one purchase, quantities added.
    f"536365,{HEART},2.0,2010-12-01T08:26:00,2.55,{UK}",
    f"536366,{HEART},1.0,2010-12-02T09:00:00,2.95,{UK}",
    f"536367,{WARMER},12.0,2011-11-05T10:00:00,0.40,12583,France",
    # Dropped: a guest checkout, a cancellation, a return, a free line, postage.
    f"536368,{WARMER},1.0,2011-11-05T10:00:00,0.40,,United Kingdom",
    f"C536369,{HEART},-1.0,2010-12-03T10:00:00,2.55,{UK}",
    f"536370,{HEART},-2.0,2010-12-03T10:00:00,2.55,{UK}",
    f"536371,{WARMER},1.0,2010-12-03T10:00:00,0.0,{UK}",
    "536372,POST,POSTAGE,1.0,2010-12-03T10:00:00,18.0,12583,France",
]


def test_online_retail_cleaning_and_features(tmp_path):
    path = tmp_path / "online-retail" / "online_retail.csv.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join([RETAIL_HEADER, *RETAIL_ROWS]) + "\n")
    data = online_retail(path.parent)  # the folder works as well as the file
    assert data.name == "online-retail" and "4 purchase lines" in data.summary
    rows = [(x.customer_id, x.item_id, x.weight, x.value) for x in data.interactions]
    assert rows == [
        ("17850", "85123A", 1.0, 8.0),
        ("17850", "85123A", 1.0, 1.0),
        ("12583", "22633", 1.0, 12.0),
    ]
    assert all(x.type is InteractionType.PURCHASE for x in data.interactions)
    assert data.interactions[0].time == datetime(2010, 12, 1, 8, 26, tzinfo=UTC).timestamp()
    assert data.item_ids == ["22633", "85123A"]
    assert data.customer_features == {
        "17850": {"country": "United Kingdom"},
        "12583": {"country": "France"},
    }
    assert data.item_features["85123A"] == {
        "price": "2.55",  # the median unit price, for models that read numbers
        "price_band": "4",  # median £2.55: £2-£4
        "word:WHITE": "1",
        "word:HANGING": "1",
        "word:HEART": "1",
        "word:LIGHT": "1",
        "word:HOLDER": "1",
    }
    assert data.item_features["22633"]["price_band"] == "1"  # £0.40
    split = temporal_split(data.interactions, ONLINE_RETAIL_CUTOFF)
    assert split.test == {"12583": {"22633"}} and split.cold == {"12583"}


def _movielens(folder: Path) -> None:
    folder.mkdir()
    ratings = ["1\t10\t5\t881250949", "2\t10\t1\t881250950", "1\t20\t3\t881250900"]
    (folder / "u.data").write_text("\n".join(ratings) + "\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    flags = ["0"] * 19
    comedy = flags.copy()
    comedy[5] = "1"
    (folder / "u.item").write_bytes(
        "\n".join(
            [
                "|".join(["10", "Amélie (2001)", "01-Jan-2001", "", "http://x", *comedy]),
                "|".join(["20", "Toy Story (1995)", "01-Jan-1995", "", "http://y", *flags]),
                "|".join(["30", "Unrated (1995)", "01-Jan-1995", "", "http://z", *flags]),
            ]
        ).encode("latin-1")
    )


def test_movielens_ratings_are_implicit_feedback(tmp_path):
    _movielens(tmp_path / "ml-100k")
    data = movielens_100k(tmp_path / "ml-100k")
    assert [(x.customer_id, x.item_id, x.value) for x in data.interactions] == [
        ("1", "20", 3.0),  # oldest first
        ("1", "10", 5.0),
        ("2", "10", 1.0),
    ]
    assert {x.weight for x in data.interactions} == {1.0}  # one star counts as much as five
    assert {x.type for x in data.interactions} == {InteractionType.RATING}
    assert data.item_ids == ["10", "20", "30"]
    assert data.item_features == {"10": {"genre:Comedy": "1"}, "20": {}, "30": {}}
    assert data.customer_features["1"] == {
        "age_band": "18-24",
        "gender": "M",
        "occupation": "technician",
    }
    assert data.customer_features["2"]["age_band"] == "45-54"


@pytest.mark.parametrize("loader", [movielens_100k, online_retail])
def test_missing_data_names_the_path(tmp_path, loader):
    with pytest.raises(DataNotFound, match="not shipped") as error:
        loader(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)
    assert isinstance(error.value, FileNotFoundError)


@pytest.mark.skipif(not (SHARED / "ml-100k").is_dir(), reason="MovieLens 100k is not here")
def test_real_movielens_100k():
    data = movielens_100k(SHARED / "ml-100k")
    assert len(data.interactions) == 100_000
    assert len(data.customer_features) == 943 and len(data.item_ids) == 1682
    split = random_split(data.interactions, seed=42)
    assert len(split.cold) == 94 and len(split.warm) == 943 - 94


@pytest.mark.skipif(
    not (SHARED / "online-retail" / "online_retail.csv.gz").is_file(),
    reason="UCI Online Retail is not here",
)
def test_real_online_retail_matches_the_data_readme():
    data = online_retail(SHARED / "online-retail" / "online_retail.csv.gz")
    assert "396,337 purchase lines" in data.summary
    assert len(data.customer_features) == 4334 and len(data.item_ids) == 3659
    split = temporal_split(data.interactions, ONLINE_RETAIL_CUTOFF)
    assert (len(split.warm), len(split.cold), split.test_pairs) == (1435, 353, 44_337)
