"""Data sets: the synthetic shop for tests and the demo (real ones load in `kosmos evaluate`).

`generate` returns a shop in memory; `write` streams the same shop, of any size, to the JSON
Lines files ``kosmos import`` reads (``python -m kosmos.datasets``).
"""

from kosmos.datasets.synthetic import Plan, SyntheticShop, generate, plan, write

__all__ = ["Plan", "SyntheticShop", "generate", "plan", "write"]
