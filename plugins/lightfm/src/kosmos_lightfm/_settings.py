"""The plugin's settings: strings from ``KOSMOS_PLUGIN__LIGHTFM__*`` parsed into a typed value."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

NAME = "lightfm"

LOSSES = ("warp", "bpr", "logistic", "warp-kos")
"""The LightFM losses the plugin accepts."""


@dataclass(frozen=True, slots=True)
class LightFMSettings:
    """How the LightFM model is built and trained.

    Attributes:
        loss: ``warp`` (default), ``bpr``, ``logistic`` or ``warp-kos``.
        no_components: Length of the latent vectors (default 64).
        epochs: Passes over the interactions (default 30).
        learning_rate: Initial Adagrad learning rate (default 0.05).
        item_alpha: L2 penalty on item features (default 0.0).
        user_alpha: L2 penalty on customer features (default 0.0).
        max_sampled: Negatives WARP samples per positive before giving up (default 10).
        random_state: Seed; with ``num_threads=1`` two fits give the same model (default 42).
        num_threads: Training threads; more than 1 is faster but not bit-reproducible
            (default 1).
        use_features: Train on customer and item features besides their ids (default true).
            Without them, unseen customers get the average customer and unsold items are not
            recommended.
    """

    loss: str = "warp"
    no_components: int = 64
    epochs: int = 30
    learning_rate: float = 0.05
    item_alpha: float = 0.0
    user_alpha: float = 0.0
    max_sampled: int = 10
    random_state: int = 42
    num_threads: int = 1
    use_features: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"{NAME}: loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        for name in ("no_components", "epochs", "max_sampled", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{NAME}: {name} must be at least 1, not {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"{NAME}: learning_rate must be positive, not {self.learning_rate}")
        for name in ("item_alpha", "user_alpha"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{NAME}: {name} must not be negative, not {getattr(self, name)}")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, str]) -> Self:
        """Parses settings given as strings; raises ValueError naming any bad or unknown one."""
        known = {f.name for f in fields(cls)}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"{NAME}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
        parsed: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in settings:
                parsed[f.name] = _PARSERS[f.name](f.name, settings[f.name])
        return cls(**parsed)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return asdict(self)


def _int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{NAME}: {name} must be an integer, not {value!r}") from None


def _float(name: str, value: str) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise ValueError(f"{NAME}: {name} must be a number, not {value!r}") from None


def _bool(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{NAME}: {name} must be true or false, not {value!r}")


def _loss(name: str, value: str) -> str:
    return value.strip().lower()


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "loss": _loss,
    "no_components": _int,
    "epochs": _int,
    "learning_rate": _float,
    "item_alpha": _float,
    "user_alpha": _float,
    "max_sampled": _int,
    "random_state": _int,
    "num_threads": _int,
    "use_features": _bool,
}
