"""Train/test splits: what a recommender may learn from, and what it should have found.

- `temporal_split`: everything before a cutoff trains; what each customer did on or after it is
  the test. Customers with history before the cutoff are *warm*; those whose first interaction
  is on or after it are *cold*, the service's two routing segments. Online Retail uses
  `ONLINE_RETAIL_CUTOFF`; the synthetic shop cuts at 80% of its interactions.
- `random_split`: MovieLens' global random 80/20 split of all interactions, with a share of
  customers held out of training altogether (cold).

With ``new_items_only`` (the default), a test item is one the customer had not touched before:
the question is "what will they discover", and recommenders are asked with
``filter_already_seen``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from kosmos.plugin import Interaction

__all__ = [
    "ONLINE_RETAIL_CUTOFF",
    "Split",
    "positive",
    "quantile_cutoff",
    "random_split",
    "temporal_split",
]

ONLINE_RETAIL_CUTOFF = datetime(2011, 11, 2, tzinfo=UTC).timestamp()
"""2011-11-02 00:00 UTC: 80% of Online Retail's purchase lines come before it."""


def positive(interaction: Interaction) -> bool:
    """The default test signal: any interaction with a positive weight (not a dismissal)."""
    return interaction.weight > 0


@dataclass(frozen=True, slots=True)
class Split:
    """A train set and, per test customer, the items they should be recommended.

    Attributes:
        train: The interactions to fit on, oldest first.
        test: Customer → the relevant items; only customers with at least one.
        warm: Test customers with training history.
        cold: Test customers without any.
        new_items_only: Test items are never in the customer's training history.
        now: The fit's reference time (seconds since the epoch): the cutoff, or the newest
            training interaction.
        description: How the split was made, for people.
    """

    train: Sequence[Interaction]
    test: Mapping[str, frozenset[str]]
    warm: frozenset[str]
    cold: frozenset[str]
    new_items_only: bool
    now: float
    description: str

    @property
    def test_pairs(self) -> int:
        """How many customer-item pairs the test holds."""
        return sum(len(items) for items in self.test.values())


def quantile_cutoff(interactions: Sequence[Interaction], share: float) -> float:
    """The time before which ``share`` of the interactions happened."""
    if not interactions:
        raise ValueError("no interactions to split")
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be between 0 and 1, not {share}")
    times = np.fromiter((i.time for i in interactions), dtype=np.float64, count=len(interactions))
    return float(np.quantile(times, share, method="higher"))


def _test_sets(
    rows: Iterable[Interaction],
    history: Mapping[str, set[str]],
    new_items_only: bool,
    relevant: Callable[[Interaction], bool],
) -> dict[str, frozenset[str]]:
    test: dict[str, set[str]] = {}
    for i in rows:
        if not relevant(i):
            continue
        if new_items_only and i.item_id in history.get(i.customer_id, ()):
            continue
        test.setdefault(i.customer_id, set()).add(i.item_id)
    return {c: frozenset(items) for c, items in test.items()}


def _history(train: Iterable[Interaction]) -> dict[str, set[str]]:
    history: dict[str, set[str]] = {}
    for i in train:
        history.setdefault(i.customer_id, set()).add(i.item_id)
    return history


def _split(
    train: list[Interaction],
    test: dict[str, frozenset[str]],
    history: Mapping[str, set[str]],
    new_items_only: bool,
    now: float,
    description: str,
) -> Split:
    warm = frozenset(c for c in test if c in history)
    return Split(
        train=train,
        test=test,
        warm=warm,
        cold=frozenset(test) - warm,
        new_items_only=new_items_only,
        now=now,
        description=description,
    )


def temporal_split(
    interactions: Sequence[Interaction],
    cutoff: float,
    *,
    new_items_only: bool = True,
    relevant: Callable[[Interaction], bool] = positive,
) -> Split:
    """Trains on what happened before ``cutoff``; tests on what happened on or after it.

    Args:
        interactions: Every interaction, oldest first.
        cutoff: Seconds since the epoch; an interaction at exactly this time is test.
        new_items_only: Leave out test items the customer had interacted with before the cutoff.
        relevant: Which test interactions count (by default, positive weights).
    """
    train = [i for i in interactions if i.time < cutoff]
    history = _history(train)
    after = (i for i in interactions if i.time >= cutoff)
    test = _test_sets(after, history, new_items_only, relevant)
    when = datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d %H:%M UTC")
    what = "items new to the customer" if new_items_only else "every item"
    return _split(
        train, test, history, new_items_only, cutoff, f"temporal: train before {when}; test {what}"
    )


def random_split(
    interactions: Sequence[Interaction],
    *,
    test_share: float = 0.2,
    cold_share: float = 0.1,
    seed: int = 42,
    new_items_only: bool = True,
    relevant: Callable[[Interaction], bool] = positive,
) -> Split:
    """A global random split, plus customers held out of training altogether.

    First each interaction goes to test with probability ``test_share`` (seed ``seed``); then
    ``cold_share`` of the customers (same generator) lose their training interactions, which
    all become test: they are the cold customers, known only by their features.

    Args:
        interactions: Every interaction, oldest first.
        test_share: The share of interactions tested.
        cold_share: The share of customers held out of training (0 for none).
        seed: The random seed; the same arguments give the same split.
        new_items_only: Leave out test items in the customer's training history.
        relevant: Which test interactions count (by default, positive weights).
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be between 0 and 1, not {test_share}")
    if not 0.0 <= cold_share < 1.0:
        raise ValueError(f"cold_share must be from 0 to below 1, not {cold_share}")
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(interactions)) < test_share
    customers = sorted({i.customer_id for i in interactions})
    n_cold = round(len(customers) * cold_share)
    held = {customers[n] for n in rng.choice(len(customers), size=n_cold, replace=False)}
    train: list[Interaction] = []
    tested: list[Interaction] = []
    for i, t in zip(interactions, is_test.tolist(), strict=True):
        (tested if t or i.customer_id in held else train).append(i)
    history = _history(train)
    test = _test_sets(tested, history, new_items_only, relevant)
    now = max((i.time for i in train), default=0.0)
    return _split(
        train,
        test,
        history,
        new_items_only,
        now,
        f"random: {test_share:.0%} of interactions tested (seed {seed}), "
        f"{n_cold:,} customers ({cold_share:.0%}) held out of training",
    )
