"""The experiment report: rates and revenue per variant, intervals and tests (issue 13).

Units. A variant's *impressions* are the distinct (list, item) pairs shown from lists it
decided (`FeedbackService.RecordImpressions`). A click, add-to-cart or purchase counts once per
shown (list, item) pair that an interaction citing the list's ``recommendation_id`` names; the
rates are those counts per impression. Revenue is price × quantity of those purchases (the
catalog price now), summed per customer served in the variant.

Tests, with no dependency beyond the standard library (`statistics.NormalDist`):

* rates: the two-proportion z-test against the control (pooled standard error for the
  p-value), a Wilson score interval for each rate and a Wald interval for the difference;
* revenue per customer: Welch's t-test (unequal variances, Welch–Satterthwaite degrees of
  freedom), with t turned into z by ``t (1 - 1/(4 df)) / sqrt(1 + t² / (2 df))`` (Abramowitz
  and Stegun 26.7.8; within 0.01 of the exact p-value from about 10 degrees of freedom) and
  the interval from the Cornish–Fisher expansion of the t quantile.

Impressions are treated as independent trials, which overstates confidence when one
customer sees many lists; compare revenue per customer (one value per customer) for a
customer-level test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from kosmos.store.records import ExperimentOutcomes, InteractionType

Z_TEST = "two-proportion z-test"
WELCH = "Welch t-test"
METHOD = (
    "rates per impression (distinct list and item shown), two-proportion z-test against the"
    " control with Wilson intervals; revenue per customer served, Welch t-test; two-sided"
)
_N = NormalDist()


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    difference: float = 0.0
    difference_ci_low: float = 0.0
    difference_ci_high: float = 0.0
    p_value: float = 1.0
    significant: bool = False
    test: str = Z_TEST


@dataclass(frozen=True, slots=True)
class VariantFigures:
    variant_id: str
    customers: int
    recommendations: int
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    revenue: float
    click_through_rate: Estimate
    add_to_cart_rate: Estimate
    conversion_rate: Estimate
    revenue_per_customer: Estimate


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(
    successes: int, n: int, control: tuple[int, int] | None, confidence: float
) -> Estimate:
    """A rate, its Wilson interval and, against ``control`` (successes, n), the z-test."""
    z = _N.inv_cdf(0.5 + confidence / 2)
    low, high = wilson(successes, n, z)
    value = successes / n if n else 0.0
    if control is None:
        return Estimate(value, low, high)
    c_successes, c_n = control
    c_value = c_successes / c_n if c_n else 0.0
    difference = value - c_value
    p_value = 1.0
    wald_low = wald_high = difference
    if n and c_n:
        pooled = (successes + c_successes) / (n + c_n)
        se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / c_n))
        if se_pooled > 0:
            p_value = 2 * (1 - _N.cdf(abs(difference) / se_pooled))
        se = math.sqrt(value * (1 - value) / n + c_value * (1 - c_value) / c_n)
        wald_low, wald_high = difference - z * se, difference + z * se
    return Estimate(
        value,
        low,
        high,
        difference,
        wald_low,
        wald_high,
        p_value,
        p_value < 1 - confidence,
        Z_TEST,
    )


def _t_quantile(z: float, df: float) -> float:
    """Cornish–Fisher: the t quantile with ``df`` degrees of freedom for the normal's ``z``."""
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def welch(values: Sequence[float], control: Sequence[float] | None, confidence: float) -> Estimate:
    """A mean, its t interval and, against ``control``, Welch's t-test."""
    z = _N.inv_cdf(0.5 + confidence / 2)
    n = len(values)
    mean, var = _mean_var(values)
    if n > 1:
        half = _t_quantile(z, n - 1) * math.sqrt(var / n)
        low, high = mean - half, mean + half
    else:
        low = high = mean
    if control is None:
        return Estimate(mean, low, high, test=WELCH)
    c_n = len(control)
    c_mean, c_var = _mean_var(control)
    difference = mean - c_mean
    p_value = 1.0
    d_low = d_high = difference
    if n > 1 and c_n > 1:
        a, b = var / n, c_var / c_n
        se = math.sqrt(a + b)
        if se > 0:
            df = (a + b) ** 2 / (a * a / (n - 1) + b * b / (c_n - 1))
            t = difference / se
            zt = abs(t) * (1 - 1 / (4 * df)) / math.sqrt(1 + t * t / (2 * df))
            p_value = 2 * (1 - _N.cdf(zt))
            half = _t_quantile(z, df) * se
            d_low, d_high = difference - half, difference + half
    return Estimate(
        mean, low, high, difference, d_low, d_high, p_value, p_value < 1 - confidence, WELCH
    )


def figures(
    outcomes: ExperimentOutcomes, variant_ids: Sequence[str], confidence: float
) -> list[VariantFigures]:
    """One `VariantFigures` per id in ``variant_ids`` (the first is the control)."""
    variant_of = {rid: variant for rid, _, variant in outcomes.lists}
    customer_of = {rid: customer for rid, customer, _ in outcomes.lists}
    shown = set(outcomes.impressions)
    acted: dict[InteractionType, set[tuple[str, str]]] = {
        t: set() for t in (InteractionType.CLICK, InteractionType.ADD_TO_CART)
    }
    bought: set[tuple[str, str]] = set()
    revenue: dict[str, dict[str, float]] = {v: {} for v in variant_ids}
    for rid, item_id, kind, value, price in outcomes.interactions:
        if (rid, item_id) not in shown:
            continue
        if kind in acted:
            acted[kind].add((rid, item_id))
        elif kind is InteractionType.PURCHASE:
            bought.add((rid, item_id))
            per = revenue.setdefault(variant_of[rid], {})
            customer = customer_of[rid]
            per[customer] = per.get(customer, 0.0) + price * (value if value > 0 else 1.0)
    counts: dict[str, dict[str, int]] = {}
    customers: dict[str, set[str]] = {v: set() for v in variant_ids}
    lists: dict[str, int] = dict.fromkeys(variant_ids, 0)
    for _rid, customer, variant in outcomes.lists:
        customers.setdefault(variant, set()).add(customer)
        lists[variant] = lists.get(variant, 0) + 1
    for variant in variant_ids:
        counts[variant] = {"impressions": 0, "clicks": 0, "carts": 0, "purchases": 0}
    for pairs, key in (
        (shown, "impressions"),
        (acted[InteractionType.CLICK], "clicks"),
        (acted[InteractionType.ADD_TO_CART], "carts"),
        (bought, "purchases"),
    ):
        for rid, _ in pairs:
            owner = variant_of.get(rid)
            if owner is not None and owner in counts:
                counts[owner][key] += 1

    def per_customer(variant: str) -> list[float]:
        spent = revenue.get(variant, {})
        return [spent.get(c, 0.0) for c in sorted(customers.get(variant, ()))]

    control = variant_ids[0]
    c = counts[control]
    result = []
    for variant in variant_ids:
        k = counts[variant]
        base = None if variant == control else c
        result.append(
            VariantFigures(
                variant_id=variant,
                customers=len(customers.get(variant, ())),
                recommendations=lists.get(variant, 0),
                impressions=k["impressions"],
                clicks=k["clicks"],
                add_to_carts=k["carts"],
                purchases=k["purchases"],
                revenue=sum(revenue.get(variant, {}).values()),
                click_through_rate=proportion(
                    k["clicks"],
                    k["impressions"],
                    None if base is None else (base["clicks"], base["impressions"]),
                    confidence,
                ),
                add_to_cart_rate=proportion(
                    k["carts"],
                    k["impressions"],
                    None if base is None else (base["carts"], base["impressions"]),
                    confidence,
                ),
                conversion_rate=proportion(
                    k["purchases"],
                    k["impressions"],
                    None if base is None else (base["purchases"], base["impressions"]),
                    confidence,
                ),
                revenue_per_customer=welch(
                    per_customer(variant),
                    None if base is None else per_customer(control),
                    confidence,
                ),
            )
        )
    return result
