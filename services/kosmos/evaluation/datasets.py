"""Data sets for offline evaluation, all in one shape: `Dataset`.

- `synthetic`: the generator's shop (`kosmos.datasets.generate`), weights from the service's
  signals, so it evaluates exactly what the demo serves.
- `movielens_100k`: GroupLens' MovieLens 100k (``u.data``, ``u.user``, ``u.item``), every rating
  as implicit feedback (weight 1), customer features age band, gender and occupation, item
  features the genres.
- `online_retail`: UCI Online Retail (``online_retail.csv.gz``), cleaned as the data README
  describes; one interaction per customer, product and invoice, so a pair's summed weight is the
  number of invoices that had it.

The real data sets are not shipped with Kosmos (MovieLens forbids redistribution): each loader
takes the folder or file and raises `DataNotFound`, naming the path, when it is missing.
"""

from __future__ import annotations

import csv
import gzip
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kosmos.datasets import generate
from kosmos.plugin import Interaction, InteractionType
from kosmos.plugin.features import item_features
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights, weight

__all__ = [
    "MOVIELENS_GENRES",
    "DataNotFound",
    "Dataset",
    "movielens_100k",
    "online_retail",
    "synthetic",
]

MOVIELENS_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""The 19 genre flags of ``u.item``, in column order (as ``u.genre`` lists them)."""

_PRODUCT = re.compile(r"^\d{5}")
_RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)


class DataNotFound(FileNotFoundError):
    """A real data set is not where the caller said; Kosmos does not ship it."""

    def __init__(self, name: str, path: Path, expected: str) -> None:
        super().__init__(
            f"{name}: {path} is missing (expected {expected}). The data set is not shipped with "
            "Kosmos; download it and pass the folder that holds it (kosmos evaluate --data-dir)."
        )
        self.path = path


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """An item as a shop's catalog would hold it."""

    title: str = ""
    category: str = ""
    price: float = 0.0


@dataclass(frozen=True, slots=True)
class Dataset:
    """Interactions, features and catalog of one shop, as offline evaluation reads them.

    Attributes:
        name: ``synthetic``, ``ml-100k`` or ``online-retail``.
        interactions: Every interaction, oldest first, with the weight a recommender fits on.
        item_ids: The catalog, including items nobody interacted with.
        customer_features: Customer id → feature name → value.
        item_features: Item id → feature name → value.
        summary: One line on what was loaded, for people.
        weights: The signal weights ``interactions`` carry, as a shop would configure them, so
            that the served path (`kosmos.evaluation.served`) weighs exactly as the fit did.
        catalog: Item id → what a shop's catalog holds besides features (title, category,
            price), for the served path.
    """

    name: str
    interactions: Sequence[Interaction]
    item_ids: Sequence[str]
    customer_features: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    item_features: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    summary: str = ""
    weights: Weights = DEFAULT_WEIGHTS
    catalog: Mapping[str, CatalogEntry] = field(default_factory=dict)


def synthetic(customers: int = 1000, items: int = 300, seed: int = 7) -> Dataset:
    """The synthetic shop the demo loads, with the service's interaction weights.

    Item features are what the service fits on (`kosmos.plugin.features.item_features`).
    """
    shop = generate(customers=customers, items=items, seed=seed)
    interactions = [
        Interaction(i.customer_id, i.item_id, i.type, weight(i.type, i.value), i.time, i.value)
        for i in shop.interactions
    ]
    features = {
        item.item_id: item_features(
            item.attributes,
            title=item.title,
            category=item.category,
            brand=item.brand,
            price=item.price,
        )
        for item in shop.items
    }
    return Dataset(
        name="synthetic",
        interactions=interactions,
        item_ids=[item.item_id for item in shop.items],
        customer_features={c.customer_id: dict(c.attributes) for c in shop.customers},
        item_features=features,
        catalog={i.item_id: CatalogEntry(i.title, i.category, i.price) for i in shop.items},
        summary=(
            f"synthetic shop (seed {seed}): {len(interactions):,} interactions, "
            f"{customers:,} customers, {items:,} items"
        ),
    )


def _age_band(age: int) -> str:
    for top, band in ((17, "<18"), (24, "18-24"), (34, "25-34"), (44, "35-44"), (54, "45-54")):
        if age <= top:
            return band
    return "55+"


def movielens_100k(path: Path) -> Dataset:
    """MovieLens 100k from its folder: ``u.data``, ``u.user`` and ``u.item`` (latin-1).

    Every rating is a `RATING` interaction of weight 1 (implicit feedback: having rated a movie
    is the signal, whatever the stars; the value keeps them). Customers have ``age_band``,
    ``gender`` and ``occupation``; movies one ``genre:<name>`` feature per genre flag.

    Raises:
        DataNotFound: The folder or one of the three files is missing.
    """
    path = Path(path)
    files = {name: path / name for name in ("u.data", "u.user", "u.item")}
    for file in files.values():
        if not file.is_file():
            raise DataNotFound("MovieLens 100k", file, "u.data, u.user and u.item from ml-100k")
    interactions = []
    with files["u.data"].open(encoding="latin-1") as f:
        for line in f:
            if not line.strip():
                continue
            user, movie, rating, when = line.split("\t")
            interactions.append(
                Interaction(user, movie, InteractionType.RATING, 1.0, float(when), float(rating))
            )
    interactions.sort(key=lambda i: i.time)  # stable: file order breaks ties
    customer_features: dict[str, dict[str, str]] = {}
    with files["u.user"].open(encoding="latin-1") as f:
        for line in f:
            if line.strip():
                user, age, gender, occupation, _zip = line.rstrip("\n").split("|")
                customer_features[user] = {
                    "age_band": _age_band(int(age)),
                    "gender": gender,
                    "occupation": occupation,
                }
    item_ids: list[str] = []
    item_features: dict[str, dict[str, str]] = {}
    catalog: dict[str, CatalogEntry] = {}
    with files["u.item"].open(encoding="latin-1") as f:
        for line in f:
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("|")
            movie, flags = fields[0], fields[-len(MOVIELENS_GENRES) :]
            item_ids.append(movie)
            catalog[movie] = CatalogEntry(title=fields[1])
            item_features[movie] = {
                f"genre:{genre}": "1"
                for genre, flag in zip(MOVIELENS_GENRES, flags, strict=True)
                if flag == "1"
            }
    return Dataset(
        name="ml-100k",
        interactions=interactions,
        item_ids=item_ids,
        customer_features=customer_features,
        item_features=item_features,
        # Having rated a film is the signal, whatever the stars, as in the fit above.
        weights=Weights(rating=1.0, rating_per_star=False),
        catalog=catalog,
        summary=(
            f"MovieLens 100k: {len(interactions):,} ratings, {len(customer_features):,} users, "
            f"{len(item_ids):,} movies"
        ),
    )


def online_retail(path: Path) -> Dataset:
    """UCI Online Retail from ``online_retail.csv.gz`` (or the folder holding it).

    Cleaning, as in the data README: rows without CustomerID, cancellations (InvoiceNo ``C...``),
    Quantity <= 0, UnitPrice <= 0 and StockCodes not starting with 5 digits are dropped. The lines
    of one invoice for one product become one `PURCHASE` of weight 1 (value: the quantity), so a
    customer-product pair weighs its invoice count. Customers have ``country`` (their latest);
    products the features `kosmos.plugin.features.item_features` gives their most frequent
    description (as the title: one ``word:<TOKEN>`` per word) and median unit price (``price``
    and ``price_band``), as the service builds them for a catalog loaded through the API.

    Raises:
        DataNotFound: The file is missing.
    """
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / "online_retail.csv.gz"
    if not path.is_file():
        raise DataNotFound("UCI Online Retail", path, "online_retail.csv.gz")
    purchases: dict[tuple[str, str, str], list[float]] = {}  # (customer, item, invoice) → t, q
    country: dict[str, str] = {}
    prices: dict[str, list[float]] = {}
    descriptions: dict[str, Counter[str]] = {}
    times: dict[str, float] = {}  # InvoiceDate → seconds; an invoice's lines share one
    lines = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        missing = [c for c in _RETAIL_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: not the Online Retail CSV (no {', '.join(missing)})")
        at = [header.index(c) for c in _RETAIL_COLUMNS]
        for row in rows:
            invoice, code, description, qty, date, unit_price, customer, where = (
                row[n] for n in at
            )
            if not customer or invoice.startswith("C") or not _PRODUCT.match(code):
                continue
            quantity, price = float(qty), float(unit_price)
            if quantity <= 0 or price <= 0:
                continue
            lines += 1
            customer = customer.removesuffix(".0")
            when = times.get(date)
            if when is None:
                when = times[date] = datetime.fromisoformat(date).replace(tzinfo=UTC).timestamp()
            seen = purchases.get((customer, code, invoice))
            if seen is None:
                purchases[(customer, code, invoice)] = [when, quantity]
            else:
                seen[1] += quantity
            country[customer] = where
            prices.setdefault(code, []).append(price)
            descriptions.setdefault(code, Counter())[description] += 1
    interactions = sorted(
        (
            Interaction(customer, code, InteractionType.PURCHASE, 1.0, when, quantity)
            for (customer, code, _), (when, quantity) in purchases.items()
        ),
        key=lambda i: (i.time, i.customer_id, i.item_id),
    )
    item_ids = sorted(prices)
    features: dict[str, dict[str, str]] = {}
    catalog: dict[str, CatalogEntry] = {}
    for code in item_ids:
        price = statistics.median(prices[code])
        title = descriptions[code].most_common(1)[0][0]
        catalog[code] = CatalogEntry(title=title.strip().capitalize(), price=price)
        features[code] = item_features({}, title=title, price=price)
    return Dataset(
        name="online-retail",
        interactions=interactions,
        item_ids=item_ids,
        customer_features={c: {"country": v} for c, v in country.items()},
        item_features=features,
        # One invoice line is one purchase whatever its quantity, as in the fit above.
        weights=Weights(purchase=1.0, quantity_exponent=0.0),
        catalog=catalog,
        summary=(
            f"UCI Online Retail: {lines:,} purchase lines → {len(interactions):,} "
            f"invoice × product interactions, {len(country):,} customers, "
            f"{len(item_ids):,} products"
        ),
    )
