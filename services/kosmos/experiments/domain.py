"""Experiments: deterministic splits, what a variant changes, and the report (issue 13).

A shop's experiments are one versioned document (kind ``experiments``), so every replica sees
a new or ended experiment at its next request (`kosmos.shopconfig.documents`).

**Assignment.** A customer's bucket is the first 8 bytes of SHA-256 over the experiment id and
the customer id, as a number in [0, 1): deterministic, the same on every replica and every
call, independent between experiments. Buckets below ``holdout_fraction`` are the holdout (the
shop's own configuration, reported as ``holdout``); the rest are split between the variants in
proportion to their weights. When several experiments run for one placement, the oldest wins.

Plain Python; imports no grpc.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HOLDOUT = "holdout"
KIND = "experiments"
"""The document kind experiments are stored under."""


@dataclass(frozen=True, slots=True)
class Variant:
    variant_id: str
    weight: float = 1.0
    routing: str = ""
    rules: tuple[Mapping[str, Any], ...] = ()  # merchant rules as stored (recommendation.rules)
    display_name: str = ""
    # Recommender → setting → value, over the shop's: a model of the variant's own.
    plugin_settings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    variants: tuple[Variant, ...]
    holdout_fraction: float = 0.0
    placements: frozenset[str] = frozenset()
    start_time: float = 0.0
    end_time: float | None = None
    create_time: float = 0.0
    display_name: str = ""
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def running(self, now: float) -> bool:
        return self.start_time <= now and (self.end_time is None or now < self.end_time)

    def state(self, now: float) -> str:
        if self.end_time is not None and now >= self.end_time:
            return "ended"
        return "running" if now >= self.start_time else "scheduled"

    def assign(self, customer_id: str) -> str:
        """The variant id (or `HOLDOUT`) of ``customer_id``: the same every time."""
        bucket = bucket_of(self.experiment_id, customer_id)
        if bucket < self.holdout_fraction:
            return HOLDOUT
        rest = (bucket - self.holdout_fraction) / (1.0 - self.holdout_fraction)
        total = sum(v.weight for v in self.variants)
        edge = 0.0
        for variant in self.variants:
            edge += variant.weight / total
            if rest < edge:
                return variant.variant_id
        return self.variants[-1].variant_id

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.variant_id == variant_id), None)

    @classmethod
    def from_document(cls, experiment_id: str, d: Mapping[str, Any]) -> Experiment:
        return cls(
            experiment_id=experiment_id,
            variants=tuple(
                Variant(
                    variant_id=v["variant_id"],
                    weight=float(v.get("weight") or 1.0),
                    routing=v.get("routing") or "",
                    rules=tuple(v.get("rules") or ()),
                    display_name=v.get("display_name") or "",
                    plugin_settings={
                        name: dict(values)
                        for name, values in (v.get("plugin_settings") or {}).items()
                    },
                )
                for v in d["variants"]
            ),
            holdout_fraction=float(d.get("holdout_fraction") or 0.0),
            placements=frozenset(d.get("placements") or ()),
            start_time=float(d.get("start_time") or 0.0),
            end_time=d.get("end_time"),
            create_time=float(d.get("create_time") or 0.0),
            display_name=d.get("display_name") or "",
            document=d,
        )


def variant_model(recommender: str, experiment_id: str, variant_id: str) -> str:
    """The name a variant's own model of ``recommender`` is kept and versioned under:
    ``recommender@experiment.variant``."""
    return f"{recommender}@{experiment_id}.{variant_id}"


def base_recommender(name: str) -> str:
    """The recommender a (variant) model name is of: ``als@e.v`` → ``als``."""
    return name.split("@", 1)[0]


def variant_models(
    experiments: Sequence[Experiment], now: float
) -> dict[str, tuple[str, Mapping[str, str]]]:
    """The variant models the running and scheduled experiments need: model name →
    (recommender, the variant's settings for it). Ended experiments need none."""
    found: dict[str, tuple[str, Mapping[str, str]]] = {}
    for e in experiments:
        if e.end_time is not None and now >= e.end_time:
            continue
        for v in e.variants:
            for recommender, values in v.plugin_settings.items():
                found[variant_model(recommender, e.experiment_id, v.variant_id)] = (
                    recommender,
                    values,
                )
    return found


def bucket_of(experiment_id: str, customer_id: str) -> float:
    """A number in [0, 1) from the experiment and the customer (SHA-256)."""
    digest = hashlib.sha256(f"{experiment_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse(document: Mapping[str, Any]) -> tuple[Experiment, ...]:
    """A shop's experiments document → its experiments, oldest first."""
    found = [
        Experiment.from_document(eid, d) for eid, d in (document.get("experiments") or {}).items()
    ]
    found.sort(key=lambda e: (e.create_time, e.experiment_id))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment_id: str
    variant_id: str
    variant: Variant | None  # None for the holdout


def assign(
    experiments: Sequence[Experiment], customer_id: str, placement: str, now: float
) -> Assignment | None:
    """The experiment (the oldest running one for ``placement``) and variant of a customer."""
    for e in experiments:
        if e.running(now) and (not e.placements or placement in e.placements):
            variant_id = e.assign(customer_id)
            return Assignment(e.experiment_id, variant_id, e.variant(variant_id))
    return None
