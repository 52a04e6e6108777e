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

import itertools
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kosmos.store.records import InteractionType

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

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


EVENT = np.dtype(
    [("time", "f8"), ("customer", "i4"), ("item", "i4"), ("type", "i1"), ("value", "f4")]
)
"""One interaction as the generator holds it: indices into the customers and the catalog."""
BLOCK = 4096
"""Customers generated together. Fixed, so that a seed gives the same shop however it is read."""
CANDIDATES = 16
"""In a large catalog, items drawn by popularity per view, of which the customer's liking for
their styles picks one."""
EXACT_POOL = 64
"""Categories up to this many items choose each view from all of their items."""
TYPE_NAMES = [""] + [t.name.lower() for t in sorted(InteractionType)]
"""``InteractionType`` number → the name the JSON Lines files use."""


def customer_id(n: int) -> str:
    return f"c-{n:05d}"


def item_id(n: int) -> str:
    return f"sku-{n:05d}"


@dataclass(frozen=True)
class Plan:
    """Everything about a shop but its events, as arrays; `events` draws those block by block.

    ``plan(...)`` makes one; `generate` collects it into lists and `write` streams it to files.
    """

    customers: int
    items: int
    start_time: float
    end_time: float
    sessions_per_customer: float
    rng: np.random.Generator
    item_category: Ints
    item_title: list[str]
    item_brand: Ints
    item_price: Floats
    item_available: npt.NDArray[np.bool_]
    companion: Ints
    styles: Floats
    customer_country: Ints
    customer_age: Ints
    tastes: Floats
    liking: Floats
    pool_start: Ints  # per category: where its items start in `pool_items`
    pool_size: Ints
    pool_items: Ints  # item indices grouped by category, best sellers first
    pool_cdf: Floats  # per category c: c + the cumulative popularity of its items

    def item_records(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """The catalog as the JSON Lines records ``kosmos import`` reads."""
        names = list(CATEGORIES)
        prices = self.item_price.tolist()
        for n in range(start, self.items if stop is None else stop):
            category = names[int(self.item_category[n])]
            price = prices[n]
            yield {
                "item_id": item_id(n),
                "title": self.item_title[n],
                "category": category,
                "brand": f"{category[:3].upper()}-{'ABC'[int(self.item_brand[n])]}",
                "price": price,
                "available": bool(self.item_available[n]),
                "attributes": {
                    "price_band": "low" if price < 10 else "mid" if price < 30 else "high"
                },
            }

    def customer_records(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        countries = self.customer_country.tolist()
        ages = self.customer_age.tolist()
        for n in range(start, self.customers if stop is None else stop):
            yield {
                "customer_id": customer_id(n),
                "attributes": {"country": COUNTRIES[countries[n]], "age_band": AGE_BANDS[ages[n]]},
            }

    def events(self) -> Iterator[npt.NDArray[np.void]]:
        """Each block of `BLOCK` customers' events (`EVENT` rows) in time order. Draws from
        the plan's random generator: iterate once."""
        for first in range(0, self.customers, BLOCK):
            yield _block_events(self, first, min(first + BLOCK, self.customers))


def plan(
    customers: int = 200,
    items: int = 120,
    days: int = 60,
    seed: int = 7,
    end_time: float = 1_767_225_600.0,
    sessions_per_customer: float = 6.0,
) -> Plan:
    """The catalog and the customers, drawn with numpy; the events come from `Plan.events`."""
    if customers < 1 or items < 1 or days < 1:
        raise ValueError("customers, items and days must be positive")
    if not sessions_per_customer > 0:
        raise ValueError("sessions_per_customer must be positive")
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    n_cat = len(names)

    category = np.arange(items, dtype=np.int64) % n_cat
    noun = rng.integers(5, size=items)
    adjective = rng.integers(len(ADJECTIVES), size=items)
    brand = rng.integers(3, size=items)
    base = np.array([BASE_PRICE[c] for c in names], dtype=np.float64)
    price = np.round(base[category] * rng.lognormal(0.0, 0.4, size=items), 2)
    available = rng.random(items) > 0.05
    # Reasons name items by title ("Because you bought ..."): keep titles unique. The second
    # "Eco Kite" is "Eco Kite 2", and so on (nouns differ between categories).
    key = category * 50 + noun * len(ADJECTIVES) + adjective
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    group_start = np.searchsorted(sorted_key, sorted_key, side="left")
    edition = np.empty(items, dtype=np.int64)
    edition[order] = np.arange(items) - group_start + 1
    titles = [
        f"{ADJECTIVES[a]} {CATEGORIES[names[c]][n]}" + (f" {e}" if e > 1 else "")
        for c, n, a, e in zip(
            category.tolist(), noun.tolist(), adjective.tolist(), edition.tolist(), strict=True
        )
    ]
    # A few best sellers per category (Zipf), and a companion item for co-purchases.
    rank = np.arange(items) // n_cat
    appeal = 1.0 / (1.0 + rank) ** 1.1  # as `_block_events` weighs candidates
    companion = rng.integers(items, size=items)
    # Item-level taste: items have a hidden style, customers a liking for styles, so two
    # customers of the same categories still prefer different items (what collaborative
    # filtering learns and category popularity cannot).
    styles = rng.normal(size=(items, STYLE_DIMENSIONS))
    pool_size = np.bincount(category, minlength=n_cat).astype(np.int64)
    pool_start = np.concatenate([[0], np.cumsum(pool_size)[:-1]]).astype(np.int64)
    pool_items = np.argsort(category, kind="stable").astype(np.int64)  # by rank within each
    cdf = np.empty(items, dtype=np.float64)
    for c in range(n_cat):
        part = slice(int(pool_start[c]), int(pool_start[c] + pool_size[c]))
        if pool_size[c]:
            cum = np.cumsum(appeal[pool_items[part]])
            cdf[part] = c + cum / cum[-1]

    # Attributes predict taste: each country and each age band leans toward some categories.
    country_lean = rng.dirichlet(np.full(n_cat, 0.5), size=len(COUNTRIES))
    age_lean = rng.dirichlet(np.full(n_cat, 0.5), size=len(AGE_BANDS))
    country = rng.integers(len(COUNTRIES), size=customers)
    age = rng.integers(len(AGE_BANDS), size=customers)
    own = rng.dirichlet(np.full(n_cat, 0.3), size=customers)
    tastes = 0.35 * country_lean[country] + 0.35 * age_lean[age] + 0.3 * own
    liking = rng.normal(size=(customers, STYLE_DIMENSIONS))
    return Plan(
        customers=customers,
        items=items,
        start_time=end_time - days * DAY,
        end_time=end_time,
        sessions_per_customer=sessions_per_customer,
        rng=rng,
        item_category=category,
        item_title=titles,
        item_brand=brand,
        item_price=price,
        item_available=available,
        companion=companion,
        styles=styles,
        customer_country=country,
        customer_age=age,
        tastes=tastes,
        liking=liking,
        pool_start=pool_start,
        pool_size=pool_size,
        pool_items=pool_items,
        pool_cdf=cdf,
    )


def _grouped_cumsum(values: Floats, group_first: Ints) -> Floats:
    """Running sums that restart at each group; ``group_first[i]`` is where i's group starts."""
    total = np.cumsum(values)
    return total - (total[group_first] - values[group_first])


def _block_events(p: Plan, first: int, stop: int) -> npt.NDArray[np.void]:
    """The events of customers ``first``..``stop-1``, sorted by time (then customer, item)."""
    rng = p.rng
    n = stop - first
    span = p.end_time - p.start_time
    tastes = p.tastes[first:stop]
    liking = p.liking[first:stop]

    # Sessions: how many per customer, when (in order per customer), and which category.
    counts = np.maximum(
        1, rng.poisson(p.sessions_per_customer * rng.lognormal(0.0, 0.5, size=n))
    ).astype(np.int64)
    cust = np.repeat(np.arange(n), counts)
    customer_first = np.cumsum(counts) - counts
    when = rng.uniform(0.0, span, size=(n, int(counts.max())))
    when[np.arange(when.shape[1]) >= counts[:, None]] = np.inf  # each customer's own count
    when = np.sort(when, axis=1)
    local = np.arange(len(cust)) - customer_first[cust]  # the session's number for its customer
    start = p.start_time + when[cust, local]
    cdf = np.cumsum(tastes, axis=1)[cust]
    category = (cdf < (rng.random(len(cust)) * cdf[:, -1])[:, None]).sum(axis=1)
    category = np.minimum(category, len(CATEGORIES) - 1)
    empty = p.pool_size[category] == 0

    # Views: 1-4 per session in its category, each item picked by popularity x the customer's
    # liking for its style. In a small catalog (categories of at most `EXACT_POOL` items) from
    # the whole category; in a large one, of CANDIDATES drawn by popularity, one by liking
    # (sampling-importance-resampling: close to the same choice at a fraction of the cost).
    views = rng.integers(1, 5, size=len(cust)) * ~empty
    vsess = np.repeat(np.arange(len(cust)), views)
    vcat = category[vsess]
    vcust = cust[vsess]
    size = p.pool_size[vcat][:, None]
    lo = p.pool_start[vcat][:, None]
    if p.pool_size.max() <= EXACT_POOL:
        offsets = np.arange(int(p.pool_size.max()))[None, :]
        candidates = p.pool_items[lo + np.minimum(offsets, size - 1)]
        prior = (offsets < size) / (1.0 + candidates // len(CATEGORIES)) ** 1.1
    else:
        draw = vcat[:, None] + rng.random((len(vsess), CANDIDATES))
        slot = np.clip(np.searchsorted(p.pool_cdf, draw, side="left"), lo, lo + size - 1)
        candidates = p.pool_items[slot]
        prior = np.ones(candidates.shape)
    liked = np.einsum("vkd,vd->vk", p.styles[candidates], liking[vcust])
    cum = np.cumsum(prior * np.exp(STYLE_WEIGHT * liked), axis=1)
    pick = (cum < (rng.random(len(vsess)) * cum[:, -1])[:, None]).sum(axis=1)
    item = candidates[np.arange(len(vsess)), np.minimum(pick, candidates.shape[1] - 1)]

    # Funnels: views lead to clicks, carts and purchases, one step after the other in time.
    u = rng.random((len(vsess), 5))
    click = u[:, 0] < 0.5
    cart = click & (u[:, 1] < 0.45)
    buy = cart & (u[:, 2] < 0.6)
    with_companion = buy & (u[:, 3] < 0.3)
    rated = buy & (u[:, 4] < 0.15)
    steps = rng.uniform((20.0, 5.0, 5.0, 30.0), (240.0, 60.0, 120.0, 600.0), size=(len(vsess), 4))
    steps[:, 1] *= click
    steps[:, 2] *= cart
    steps[:, 3] *= buy
    step = steps.sum(axis=1)
    view_first = np.cumsum(views) - views
    done = _grouped_cumsum(step, view_first[vsess])  # time into the session after this view
    t_view = start[vsess] + done - steps[:, 1:].sum(axis=1)
    t_click = t_view + steps[:, 1]
    t_cart = t_click + steps[:, 2]
    t_buy = t_cart + steps[:, 3]
    session_end = start + np.bincount(vsess, weights=step, minlength=len(cust))
    stars = rng.integers(3, 6, size=len(vsess)).astype(np.float64)

    # Consumables run out: at the end of this and each later session, each one bought may be
    # bought again (1 in 5).
    consumable = np.array([c in CONSUMABLE for c in CATEGORIES])
    bought = np.flatnonzero(buy & consumable[vcat])
    bsess = vsess[bought]
    later = counts[cust[bsess]] - local[bsess]
    which = np.repeat(np.arange(len(bought)), later)
    target = bsess[which] + (np.arange(len(which)) - np.repeat(np.cumsum(later) - later, later))
    keep = rng.random(len(which)) < 0.2
    which, target = which[keep], target[keep]
    order = np.lexsort((which, target))
    which, target = which[order], target[order]
    gap = rng.uniform(30.0, 300.0, size=len(which))
    target_first = np.searchsorted(target, target, side="left")
    t_again = session_end[target] + _grouped_cumsum(gap, target_first)
    session_end = session_end + np.bincount(target, weights=gap, minlength=len(cust))

    # Now and then a "not for me" to an item of the customer's least favourite category.
    disliked = np.argmin(tastes, axis=1)[cust]
    dismiss = (rng.random(len(cust)) < 0.05) & (p.pool_size[disliked] > 0)
    offset = np.floor(rng.random(len(cust)) * np.maximum(p.pool_size[disliked], 1)).astype(int)
    dismiss_item = p.pool_items[p.pool_start[disliked] + offset]

    parts = [
        (t_view, vcust, item, InteractionType.VIEW, 0.0),
        (t_click[click], vcust[click], item[click], InteractionType.CLICK, 0.0),
        (t_cart[cart], vcust[cart], item[cart], InteractionType.ADD_TO_CART, 0.0),
        (t_buy[buy], vcust[buy], item[buy], InteractionType.PURCHASE, 1.0),
        (
            t_buy[with_companion] + 1.0,
            vcust[with_companion],
            p.companion[item[with_companion]],
            InteractionType.PURCHASE,
            1.0,
        ),
        (t_buy[rated] + DAY, vcust[rated], item[rated], InteractionType.RATING, stars[rated]),
        (t_again, vcust[bought[which]], item[bought[which]], InteractionType.PURCHASE, 1.0),
        (
            session_end[dismiss] + 5.0,
            cust[dismiss],
            dismiss_item[dismiss],
            InteractionType.DISMISS,
            0.0,
        ),
    ]
    out = np.empty(sum(len(part[0]) for part in parts), dtype=EVENT)
    at = 0
    for times, who, what, kind, value in parts:
        k = len(times)
        row = out[at : at + k]
        row["time"], row["customer"], row["item"] = times, who + first, what
        row["type"], row["value"] = int(kind), value
        at += k
    out = out[out["time"] <= p.end_time]  # nothing from the future
    return sort_events(out)


def sort_events(events: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """By time, then customer, item and type: a total order, so any merge gives the same file."""
    order = np.lexsort((events["type"], events["item"], events["customer"], events["time"]))
    return events[order]


def generate(
    customers: int = 200,
    items: int = 120,
    days: int = 60,
    seed: int = 7,
    end_time: float = 1_767_225_600.0,  # 2026-01-01, fixed so a seed gives the same shop
    sessions_per_customer: float = 6.0,
    progress: bool = False,
) -> SyntheticShop:
    """Generates a shop in memory (`write` streams one of any size to files instead).

    Args:
        customers: How many customers.
        items: How many catalog items (at least one per category is advisable: 10).
        days: How many days of history before ``end_time``.
        seed: The random seed; the same arguments give the same shop (and the same files).
        end_time: The last moment of history, seconds since the epoch.
        sessions_per_customer: Mean shopping sessions per customer over the period.
        progress: Show a progress bar (rich) while generating interactions.
    """
    p = plan(customers, items, days, seed, end_time, sessions_per_customer)
    catalog = [SyntheticItem(**r) for r in p.item_records()]
    people = [SyntheticCustomer(**r) for r in p.customer_records()]
    blocks: Iterable[npt.NDArray[np.void]] = p.events()
    if progress:
        from rich.progress import track

        blocks = track(blocks, total=-(-customers // BLOCK), description="generating interactions")
    events = sort_events(np.concatenate(list(blocks)))
    kinds = {t: InteractionType(t) for t in range(1, len(TYPE_NAMES))}
    interactions = [
        SyntheticInteraction(customer_id(c), item_id(i), kinds[k], t, v)
        for t, c, i, k, v in zip(
            events["time"].tolist(),
            events["customer"].tolist(),
            events["item"].tolist(),
            events["type"].tolist(),
            events["value"].astype(np.float64).tolist(),
            strict=True,
        )
    ]
    return SyntheticShop(people, catalog, interactions, p.start_time, p.end_time)


SPILL = 2_000_000
"""Events held in memory before `write` sorts them into a part file on disk."""
WINDOW = 500_000
"""About how many events `write` merges, sorts and formats at a time."""
_SLICES = 4096
"""`write` cuts the period into this many slices of time; a window is a run of them."""
_EVENT_LINE = (
    '{"customer_id": "c-%05d", "item_id": "sku-%05d", "type": "%s", "time": %r, "value": %r}\n'
)
_CUSTOMER_LINE = '{"customer_id": "c-%05d", "attributes": {"country": "%s", "age_band": "%s"}}\n'


def write(
    out: Path,
    customers: int = 200,
    items: int = 120,
    days: int = 60,
    seed: int = 7,
    end_time: float = 1_767_225_600.0,
    sessions_per_customer: float = 6.0,
    console: Console | None = None,
    spill: int = SPILL,
    window: int = WINDOW,
) -> dict[str, int]:
    """Writes the shop `generate` makes from the same arguments as ``items.jsonl``,
    ``customers.jsonl`` and ``interactions.jsonl`` (time-ordered) in ``out``, the records
    ``kosmos import`` reads, streaming: memory stays bounded (about `SPILL` events) at any
    size. Events wait, sorted, in part files under ``out`` (``spill`` events each, give or
    take a block) until they are merged by time window (about ``window`` events each). Shows
    progress on ``console`` if given; returns how many records of each kind."""
    p = plan(customers, items, days, seed, end_time, sessions_per_customer)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"items": items, "customers": customers, "interactions": 0}
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=console is None,
        ) as bar,
        tempfile.TemporaryDirectory(dir=out, prefix=".parts-") as tmp,
    ):
        task = bar.add_task("items", total=items)
        with (out / "items.jsonl").open("w") as f:
            for at in range(0, items, 10_000):
                stop = min(at + 10_000, items)
                f.write("".join(json.dumps(r) + "\n" for r in p.item_records(at, stop)))
                bar.update(task, completed=stop)
        task = bar.add_task("customers", total=customers)
        countries = [COUNTRIES[c] for c in p.customer_country.tolist()]
        ages = [AGE_BANDS[a] for a in p.customer_age.tolist()]
        with (out / "customers.jsonl").open("w") as f:
            for at in range(0, customers, 100_000):
                stop = min(at + 100_000, customers)
                rows = zip(range(at, stop), countries[at:stop], ages[at:stop], strict=True)
                f.write("".join(_CUSTOMER_LINE % row for row in rows))
                bar.update(task, completed=stop)

        task = bar.add_task("generating interactions (customers)", total=customers)
        # Each part file holds events sorted by time, and where each of `_SLICES` equal slices
        # of the period starts in it; windows of consecutive slices are then read back from
        # every part (plain reads, not a memory map, so memory stays at one window).
        edges = np.linspace(p.start_time, p.end_time, _SLICES + 1)
        edges[0], edges[-1] = -np.inf, np.inf
        parts: list[tuple[Path, Ints]] = []
        held: list[npt.NDArray[np.void]] = []

        def save_part() -> None:
            path = Path(tmp) / f"part-{len(parts):04d}.bin"
            events = sort_events(np.concatenate(held))
            events.tofile(path)
            parts.append((path, np.searchsorted(events["time"], edges, side="left")))
            held.clear()

        for n, block in enumerate(p.events()):
            held.append(block)
            counts["interactions"] += len(block)
            if sum(len(b) for b in held) >= spill:
                save_part()
            bar.update(task, completed=min((n + 1) * BLOCK, customers))
        if held:
            save_part()

        task = bar.add_task("writing interactions", total=counts["interactions"])
        per_slice = np.sum([np.diff(cuts) for _, cuts in parts], axis=0)
        bounds = [0]  # windows: runs of slices holding about `window` events
        held_events = 0
        for k, size in enumerate(per_slice.tolist()):
            held_events += size
            if held_events >= window:
                bounds.append(k + 1)
                held_events = 0
        if bounds[-1] != _SLICES:
            bounds.append(_SLICES)
        files = [path.open("rb") for path, _ in parts]
        try:
            with (out / "interactions.jsonl").open("w") as f:
                for lo, hi in itertools.pairwise(bounds):
                    pieces = []
                    for part, (_, cuts) in zip(files, parts, strict=True):
                        part.seek(int(cuts[lo]) * EVENT.itemsize)
                        pieces.append(np.fromfile(part, EVENT, int(cuts[hi] - cuts[lo])))
                    chunk = sort_events(np.concatenate(pieces))
                    lines = zip(
                        chunk["customer"].tolist(),
                        chunk["item"].tolist(),
                        [TYPE_NAMES[k] for k in chunk["type"].tolist()],
                        chunk["time"].tolist(),
                        chunk["value"].astype(np.float64).tolist(),
                        strict=True,
                    )
                    f.write("".join(_EVENT_LINE % line for line in lines))
                    bar.advance(task, len(chunk))
        finally:
            for part in files:
                part.close()
    return counts
