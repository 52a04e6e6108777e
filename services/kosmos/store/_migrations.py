"""Schema migrations: numbered SQL files applied once each, in order, recorded in a table."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    """The migrations of ``dialect`` (a folder under ``migrations/``), by version."""
    folder = resources.files("kosmos.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    # Unique and from 1 on; a gap is allowed while branches that own the numbers in between
    # are merged (migrations are applied by set membership, so a late lower number still runs).
    if len(set(versions)) != len(versions) or (versions and versions[0] != 1):
        raise RuntimeError(f"{dialect} migrations are not numbered uniquely from 1: {versions}")
    return found
