"""A synthetic shop with real structure, seeded and sized by arguments.

What makes it useful rather than noise:
- tastes: each customer prefers a few categories, and the preference follows their attributes
  (country and age band), so features predict taste and cold-start models have signal;
- popularity: within a category a few items sell most (Zipf);
- item-level taste: items have a hidden style and customers a liking for styles, so within a
  category each customer still prefers their own items;
- funnels: views lead to clicks, carts and purchases with falling probability;
- repeat purchases: consumable categories are bought again;
- co-purchases: each item has a companion that is often bought with it;
- dismissals: now and then a customer says "not for me" to an item outside their tastes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from kosmos.store.records import InteractionType

T = TypeVar("T")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "Kitchen": ("Chef's Knife", "Frying Pan", "Espresso Cups", "Cutting Board", "Tea Towel"),
    "Garden": ("Trowel", "Watering Can", "Seed Tray", "Pruning Shears", "Bird Feeder"),
    "Toys": ("Puzzle", "Building Blocks", "Plush Bear", "Kite", "Toy Train"),
    "Books": ("Cookbook", "Thriller", "Atlas", "Poetry Collection", "Field Guide"),
    "Beauty": ("Hand Cream", "Lip Balm", "Face Mask", "Shampoo", "Bath Salts"),
    "Sports": ("Yoga Mat", "Water Bottle", "Resistance Band", "Running Socks", "Jump Rope"),
    "Electronics": ("Headphones", "Charger", "Desk Lamp", "Speaker", "Power Bank"),
    "Pets": ("Dog Treats", "Cat Toy", "Pet Bed", "Leash", "Fish Food"),
    "Stationery": ("Notebook", "Fountain Pen", "Sticky Notes", "Planner", "Watercolours"),
    "Home": ("Candle", "Cushion", "Picture Frame", "Vase", "Throw Blanket"),
}
ADJECTIVES = (
    "Classic",
    "Vintage",
    "Eco",
    "Deluxe",
    "Mini",
    "Bright",
    "Cosy",
    "Pro",
    "Rustic",
    "Nordic",
)
CONSUMABLE = {"Beauty", "Pets", "Kitchen", "Stationery"}
BASE_PRICE = {
    "Kitchen": 18,
    "Garden": 15,
    "Toys": 20,
    "Books": 12,
    "Beauty": 9,
    "Sports": 16,
    "Electronics": 40,
    "Pets": 8,
    "Stationery": 6,
    "Home": 22,
}
COUNTRIES = ("UK", "DE", "FR", "NL", "ES")
AGE_BANDS = ("18-24", "25-34", "35-49", "50-64", "65+")
DAY = 86400.0
STYLE_DIMENSIONS = 4
STYLE_WEIGHT = 0.8


@dataclass(frozen=True, slots=True)
class SyntheticItem:
    item_id: str
    title: str
    category: str
    brand: str
    price: float
    available: bool
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyntheticCustomer:
    customer_id: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class SyntheticInteraction:
    customer_id: str
    item_id: str
    type: InteractionType
    time: float
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class SyntheticShop:
    """One generated shop; interactions are sorted by time."""

    customers: list[SyntheticCustomer]
    items: list[SyntheticItem]
    interactions: list[SyntheticInteraction]
    start_time: float
    end_time: float


def generate(
    customers: int = 200,
    items: int = 120,
    days: int = 60,
    seed: int = 7,
    end_time: float = 1_767_225_600.0,  # 2026-01-01, fixed so a seed gives the same shop
    sessions_per_customer: float = 6.0,
    progress: bool = False,
) -> SyntheticShop:
    """Generates a shop.

    Args:
        customers: How many customers.
        items: How many catalog items (at least one per category is advisable: 10).
        days: How many days of history before ``end_time``.
        seed: The random seed; the same arguments give the same shop.
        end_time: The last moment of history, seconds since the epoch.
        sessions_per_customer: Mean shopping sessions per customer over the period.
        progress: Show a progress bar (rich) while generating interactions.
    """
    if customers < 1 or items < 1 or days < 1:
        raise ValueError("customers, items and days must be positive")
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    n_cat = len(names)

    catalog: list[SyntheticItem] = []
    titles: set[str] = set()
    for n in range(items):
        category = names[n % n_cat]
        noun = CATEGORIES[category][int(rng.integers(len(CATEGORIES[category])))]
        adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
        title, edition = f"{adjective} {noun}", 1
        while title in titles:  # reasons name items by title: keep titles unique
            edition += 1
            title = f"{adjective} {noun} {edition}"
        titles.add(title)
        brand = f"{category[:3].upper()}-{'ABC'[int(rng.integers(3))]}"
        price = round(float(BASE_PRICE[category] * rng.lognormal(0.0, 0.4)), 2)
        catalog.append(
            SyntheticItem(
                item_id=f"sku-{n:05d}",
                title=title,
                category=category,
                brand=brand,
                price=price,
                available=bool(rng.random() > 0.05),
                attributes={"price_band": "low" if price < 10 else "mid" if price < 30 else "high"},
            )
        )
    by_category = {c: [i for i, item in enumerate(catalog) if item.category == c] for c in names}
    # A few best sellers per category (Zipf), and a companion item for co-purchases.
    appeal = np.array([1.0 / (1 + (k // n_cat)) ** 1.1 for k in range(items)])
    companion = [int(rng.integers(items)) for _ in range(items)]
    # Item-level taste: items have a hidden style, customers a liking for styles, so two
    # customers of the same categories still prefer different items (what collaborative
    # filtering learns and category popularity cannot).
    styles = rng.normal(size=(items, STYLE_DIMENSIONS))

    # Attributes predict taste: each country and each age band leans toward some categories.
    country_lean = rng.dirichlet(np.full(n_cat, 0.5), size=len(COUNTRIES))
    age_lean = rng.dirichlet(np.full(n_cat, 0.5), size=len(AGE_BANDS))
    people: list[SyntheticCustomer] = []
    tastes = np.empty((customers, n_cat))
    for n in range(customers):
        c, a = int(rng.integers(len(COUNTRIES))), int(rng.integers(len(AGE_BANDS)))
        people.append(
            SyntheticCustomer(f"c-{n:05d}", {"country": COUNTRIES[c], "age_band": AGE_BANDS[a]})
        )
        own = rng.dirichlet(np.full(n_cat, 0.3))
        tastes[n] = 0.35 * country_lean[c] + 0.35 * age_lean[a] + 0.3 * own
    liking = rng.normal(size=(customers, STYLE_DIMENSIONS))

    start = end_time - days * DAY
    events: list[SyntheticInteraction] = []
    rows: Iterable[int] = range(customers)
    if progress:
        from rich.progress import track

        rows = track(rows, total=customers, description="generating interactions")
    for n in rows:
        events.extend(
            _customer_events(
                rng,
                people[n].customer_id,
                tastes[n],
                catalog,
                names,
                by_category,
                appeal * np.exp(STYLE_WEIGHT * (styles @ liking[n])),
                companion,
                start,
                days,
                sessions_per_customer,
            )
        )
    events = [e for e in events if e.time <= end_time]  # nothing from the future
    events.sort(key=lambda e: (e.time, e.customer_id, e.item_id))
    return SyntheticShop(people, catalog, events, start, end_time)


def _customer_events(
    rng: np.random.Generator,
    customer_id: str,
    taste: np.ndarray,
    catalog: list[SyntheticItem],
    names: list[str],
    by_category: dict[str, list[int]],
    affinity: np.ndarray,
    companion: list[int],
    start: float,
    days: int,
    sessions_per_customer: float,
) -> Iterator[SyntheticInteraction]:
    sessions = max(1, int(rng.poisson(sessions_per_customer * rng.lognormal(0, 0.5))))
    bought: list[int] = []
    for t in np.sort(rng.uniform(start, start + days * DAY, size=sessions)):
        t = float(t)
        category = names[int(rng.choice(len(names), p=taste))]
        pool = by_category[category]
        if not pool:
            continue
        weights = affinity[pool] / affinity[pool].sum()
        for _ in range(int(rng.integers(1, 5))):
            item = pool[int(rng.choice(len(pool), p=weights))]
            t += float(rng.uniform(20, 240))
            yield SyntheticInteraction(customer_id, catalog[item].item_id, InteractionType.VIEW, t)
            if rng.random() < 0.5:
                t += float(rng.uniform(5, 60))
                yield SyntheticInteraction(
                    customer_id, catalog[item].item_id, InteractionType.CLICK, t
                )
                if rng.random() < 0.45:
                    t += float(rng.uniform(5, 120))
                    yield SyntheticInteraction(
                        customer_id, catalog[item].item_id, InteractionType.ADD_TO_CART, t
                    )
                    if rng.random() < 0.6:
                        t += float(rng.uniform(30, 600))
                        yield SyntheticInteraction(
                            customer_id, catalog[item].item_id, InteractionType.PURCHASE, t, 1.0
                        )
                        bought.append(item)
                        if rng.random() < 0.3:
                            yield SyntheticInteraction(
                                customer_id,
                                catalog[companion[item]].item_id,
                                InteractionType.PURCHASE,
                                t + 1.0,
                                1.0,
                            )
                        if rng.random() < 0.15:
                            yield SyntheticInteraction(
                                customer_id,
                                catalog[item].item_id,
                                InteractionType.RATING,
                                t + DAY,
                                float(rng.integers(3, 6)),
                            )
        # Consumables run out: buy one again now and then.
        for item in list(bought):
            if catalog[item].category in CONSUMABLE and rng.random() < 0.2:
                t += float(rng.uniform(30, 300))
                yield SyntheticInteraction(
                    customer_id, catalog[item].item_id, InteractionType.PURCHASE, t, 1.0
                )
        if rng.random() < 0.05:
            disliked = names[int(np.argmin(taste))]
            if by_category[disliked]:
                item = by_category[disliked][int(rng.integers(len(by_category[disliked])))]
                yield SyntheticInteraction(
                    customer_id, catalog[item].item_id, InteractionType.DISMISS, t + 5.0
                )
