"""Properties of `kosmos.recommendation.pages.vary`: the variety every page of a list keeps."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from kosmos.recommendation.pages import VARIETY_WINDOW, vary


@dataclass(frozen=True)
class _Item:
    item_id: str
    category: str


@dataclass(frozen=True)
class _Offer:
    item: _Item


offers_st = st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=60).map(
    lambda cats: [_Offer(_Item(f"i{n}", c)) for n, c in enumerate(cats)]
)


@given(offers_st, st.integers(0, 70), st.integers(0, 4))
def test_vary_keeps_the_cap_in_every_window_while_others_are_left(offers, limit, cap):
    chosen = vary(offers, limit, cap)
    assert len(chosen) == min(limit, len(offers))
    assert len({o.item.item_id for o in chosen}) == len(chosen)
    assert set(chosen) <= set(offers)
    for end in range(len(chosen)):
        window = chosen[max(0, end - VARIETY_WINDOW + 1) : end + 1]
        category = chosen[end].item.category
        if not category or cap <= 0:
            continue
        if sum(o.item.category == category for o in window) > cap:
            # Over the cap only when nothing of another (or no) category was left to place.
            left = [o for o in offers if o not in chosen[:end]]
            assert all(
                o.item.category and counts_over(window[:-1], o.item.category, cap) for o in left
            )


def counts_over(window, category, cap):
    return sum(o.item.category == category for o in window) >= cap


@given(offers_st, st.integers(0, 4), st.integers(1, 30))
def test_vary_is_prefix_stable(offers, cap, page):
    # The first page of a short list is the first page of a long one (stable pages).
    assert vary(offers, page, cap) == vary(offers, 60, cap)[:page]


def test_vary_keeps_the_order_when_the_cap_never_binds():
    offers = [_Offer(_Item(f"i{n}", f"c{n % 5}")) for n in range(20)]
    assert vary(offers, 20, 2) == offers


def _vary_by_rescanning(offers, limit, cap):
    """The rule `vary` follows, spelled out: each place takes the first offer left whose
    category is under the cap in the window (rescanning what is left each time)."""
    pending = list(offers)
    if cap <= 0 or not pending:
        return pending[:limit]
    chosen, window = [], []
    while pending and len(chosen) < limit:
        recent = window[-(VARIETY_WINDOW - 1) :] if VARIETY_WINDOW > 1 else []
        pick = next(
            (
                n
                for n, o in enumerate(pending)
                if not o.item.category or recent.count(o.item.category) < cap
            ),
            0,
        )
        offer = pending.pop(pick)
        window.append(offer.item.category)
        chosen.append(offer)
    return chosen


@given(
    st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=80).map(
        lambda cats: [_Offer(_Item(f"i{n}", c)) for n, c in enumerate(cats)]
    ),
    st.integers(0, 90),
    st.integers(-1, 5),
)
def test_vary_places_each_offer_as_the_rule_says(offers, limit, cap):
    assert vary(offers, limit, cap) == _vary_by_rescanning(offers, limit, cap)
