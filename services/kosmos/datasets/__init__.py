"""Data sets: the synthetic shop for tests and the demo (real ones load in `kosmos evaluate`)."""

from kosmos.datasets.synthetic import SyntheticShop, generate

__all__ = ["SyntheticShop", "generate"]
