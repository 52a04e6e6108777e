"""Which recommenders serve which customer, and how a chain falls back.

``KOSMOS_ROUTING`` is either one chain for everyone (``als,popularity``) or a chain per segment:
``warm=als,popularity;cold=lightfm,popularity``. A customer is *cold* when they have no
interactions yet and *warm* otherwise. A placement (the request's ``context.page``: ``product``,
``cart``, ``buy_again``...) may have a chain of its own, which then serves everyone there:
``warm=als,popularity;cold=popularity;product=bought_together,item_item,popularity``.

A chain is tried in order: each recommender adds the items the earlier ones did not give, until
there are enough; one that fails or has no model is skipped. The service and ``kosmos
evaluate`` both route through `run_chain`, so offline figures describe what the service does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry import metrics

from kosmos.plugin import Scored

log = logging.getLogger(__name__)

# The OTel API only (no SDK here): a no-op unless the process installed a meter provider.
_DURATION = metrics.get_meter("kosmos.plugin").create_histogram(
    "kosmos.recommender.duration",
    unit="s",
    description="One recommender's answer inside a routed chain (in process or remote), by "
    "outcome: ok, no_model or failed.",
    explicit_bucket_boundaries_advisory=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)  # fmt: skip

SEGMENTS = ("warm", "cold")
_PLACEMENT = re.compile(r"[a-z][a-z0-9_]{0,39}")


def parse_names(text: str) -> tuple[str, ...]:
    """``"a, b"`` → ``("a", "b")``; ValueError for a name that is not letters, digits, - and _."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if not name.replace("-", "_").replace("_", "a").isalnum():
            raise ValueError(f"bad recommender name {name!r}")
    return names


def _chain(text: str) -> tuple[str, ...]:
    names = parse_names(text)
    if not names:
        raise ValueError("a chain names no recommender")
    return names


@dataclass(frozen=True, slots=True)
class Routing:
    """The chain for customers with history (``warm``), without (``cold``), and per placement."""

    warm: tuple[str, ...] = ("popularity",)
    cold: tuple[str, ...] = ("popularity",)
    placements: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Routing:
        """Reads ``a,b`` or ``warm=a,b;cold=c,b[;placement=d,b...]``; raises ValueError on
        anything else."""
        if "=" not in text:
            chain = _chain(text)
            return cls(chain, chain)
        chains: dict[str, tuple[str, ...]] = {}
        for part in text.split(";"):
            if not part.strip():
                continue
            key, sep, names = part.partition("=")
            key = key.strip()
            if not sep or not _PLACEMENT.fullmatch(key):
                raise ValueError(
                    f"expected warm=..., cold=... or <placement>=..., got {part.strip()!r}"
                )
            if key in chains:
                raise ValueError(f"two chains for {key!r}")
            chains[key] = _chain(names)
        missing = [s for s in SEGMENTS if s not in chains]
        if missing:
            raise ValueError(f"no chain for {' and '.join(missing)} customers")
        warm, cold = chains.pop("warm"), chains.pop("cold")
        return cls(warm, cold, chains)

    def chain(self, has_history: bool, placement: str = "") -> tuple[str, ...]:
        """The placement's own chain if it has one, else the customer's segment's."""
        if placement and placement in self.placements:
            return self.placements[placement]
        return self.warm if has_history else self.cold

    @property
    def names(self) -> tuple[str, ...]:
        """Every recommender routed to, once, in first-mention order."""
        placed = (n for chain in self.placements.values() for n in chain)
        return tuple(dict.fromkeys((*self.warm, *self.cold, *placed)))

    def __str__(self) -> str:
        if self.warm == self.cold and not self.placements:
            return ",".join(self.warm)
        parts = [f"warm={','.join(self.warm)}", f"cold={','.join(self.cold)}"]
        parts += [f"{p}={','.join(c)}" for p, c in self.placements.items()]
        return ";".join(parts)


@dataclass(slots=True)
class Candidate:
    """An item a recommender proposed, with the recommender's name. Not frozen, for the cost
    of building one per candidate (see `kosmos.recommendation.domain.Offer`); never changed."""

    scored: Scored
    recommender: str


def run_chain(
    chain: Sequence[str],
    ask: Callable[[str], Sequence[Scored] | None],
    k: int,
    before_each: Callable[[], None] = lambda: None,
) -> list[Candidate]:
    """Runs a chain until it has ``k`` distinct items.

    Args:
        chain: Recommender names, in order.
        ask: Asks one recommender; None when it has no model. An exception skips it.
        k: How many distinct items are wanted.
        before_each: Runs before each recommender (the service checks its deadline here).
    """
    candidates: list[Candidate] = []
    seen: set[str] = set()
    for name in chain:
        if len(candidates) >= k:
            break
        before_each()
        started = time.perf_counter()
        try:
            results = ask(name)
        except Exception as exc:
            _DURATION.record(
                time.perf_counter() - started,
                {"kosmos.recommender": name, "kosmos.outcome": "failed"},
            )
            # A shopper never sees a recommender's failure: the chain moves on.
            log.warning("recommender %r failed: %s: %s", name, type(exc).__name__, exc)
            from opentelemetry import trace  # the API only; cheap after the first import

            trace.get_current_span().add_event(
                "recommender.failed",
                {"kosmos.recommender": name, "exception.type": type(exc).__name__},
            )
            continue
        outcome = "no_model" if results is None else "ok"
        _DURATION.record(
            time.perf_counter() - started, {"kosmos.recommender": name, "kosmos.outcome": outcome}
        )
        for scored in results or ():
            if scored.item_id not in seen:
                seen.add(scored.item_id)
                candidates.append(Candidate(scored, name))
    return candidates
