"""Versioned model artifacts: on a filesystem (`Artifacts`) or in the database (`StoreArtifacts`).

Layout, one folder per version, and a ``CURRENT`` file naming the one that serves::

    {root}/{shop}/{recommender}/20261122T234501Z-3f2a/manifest.json   + the plugin's own files
    {root}/{shop}/{recommender}/CURRENT

A version folder appears whole (written under a temporary name, then renamed) and ``CURRENT``
changes by an atomic rename, so a reader never sees half a model. Rolling back is pointing
``CURRENT`` at an older version; recommendation replicas notice and swap it in.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kosmos.common.errors import NotFound
from kosmos.store import Store
from kosmos.store.records import ModelArtifact

MANIFEST = "manifest.json"
CURRENT = "CURRENT"


@dataclass(frozen=True, slots=True)
class Version:
    """One stored model version, as its manifest describes it."""

    shop: str
    recommender: str
    version: str
    create_time: float
    interactions: int
    fit_seconds: float
    distribution: str
    settings: Mapping[str, str]
    data_version: str = ""
    """The store's `data_version` the model was fitted on (skip a fit when it is unchanged)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Holdout figures of this recipe on the shop's latest data (`kosmos.training.holdout`)."""


class ArtifactError(RuntimeError):
    """A version is missing or unreadable."""


def _new_version(
    shop: str,
    recommender: str,
    interactions: int,
    fit_seconds: float,
    distribution: str,
    settings: Mapping[str, str],
    data_version: str,
    metrics: Mapping[str, float] | None,
) -> Version:
    """The manifest of a version published now, under a fresh, sortable name."""
    now = time.time()
    return Version(
        shop,
        recommender,
        _version_name(now),
        now,
        interactions,
        fit_seconds,
        distribution,
        dict(settings),
        data_version,
        dict(metrics or {}),
    )


def _version_name(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + uuid.uuid4().hex[:6]


class Artifacts:
    """Model versions under one root directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, shop: str, recommender: str) -> Path:
        return self.root / shop / recommender

    def publish(
        self,
        shop: str,
        recommender: str,
        save: Callable[[Path], None],
        *,
        interactions: int,
        fit_seconds: float,
        distribution: str,
        settings: Mapping[str, str],
        make_current: bool = True,
        data_version: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> Version:
        """Writes a new version with ``save(folder)`` and (by default) makes it current."""
        version = _new_version(
            shop,
            recommender,
            interactions,
            fit_seconds,
            distribution,
            settings,
            data_version,
            metrics,
        )
        name = version.version
        base = self._dir(shop, recommender)
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".{name}.tmp"
        tmp.mkdir()
        try:
            save(tmp)
            (tmp / MANIFEST).write_text(json.dumps(asdict(version), indent=2))
            tmp.rename(base / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if make_current:
            self.set_current(shop, recommender, name)
        return version

    def set_current(self, shop: str, recommender: str, version: str) -> None:
        """Points ``CURRENT`` at ``version`` atomically. Raises ArtifactError if it is missing."""
        base = self._dir(shop, recommender)
        if not (base / version / MANIFEST).is_file():
            raise ArtifactError(f"no version {version!r} of {recommender!r} for shop {shop!r}")
        tmp = base / f".{CURRENT}.{uuid.uuid4().hex}"
        tmp.write_text(version + "\n")
        os.replace(tmp, base / CURRENT)

    def current(self, shop: str, recommender: str) -> str | None:
        try:
            return (self._dir(shop, recommender) / CURRENT).read_text().strip() or None
        except FileNotFoundError:
            return None

    def versions(self, shop: str, recommender: str) -> list[Version]:
        """Every complete version, oldest first."""
        base = self._dir(shop, recommender)
        if not base.is_dir():
            return []
        found = []
        for folder in base.iterdir():
            manifest = folder / MANIFEST
            if folder.name.startswith(".") or not manifest.is_file():
                continue
            found.append(Version(**json.loads(manifest.read_text())))
        return sorted(found, key=lambda v: (v.create_time, v.version))

    def folder(self, shop: str, recommender: str, version: str) -> Path:
        return self._dir(shop, recommender) / version

    def shops(self) -> list[str]:
        return (
            sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        )

    def recommenders(self, shop: str) -> list[str]:
        base = self.root / shop
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def rollback(self, shop: str, recommender: str, version: str | None = None) -> str:
        """Makes ``version`` (default: the one before the current) current; returns it."""
        if version is None:
            names = [v.version for v in self.versions(shop, recommender)]
            current = self.current(shop, recommender)
            if current not in names or names.index(current) == 0:
                raise ArtifactError(
                    f"no version before {current!r} of {recommender!r} for shop {shop!r}"
                )
            version = names[names.index(current) - 1]
        self.set_current(shop, recommender, version)
        return version

    def prune(self, shop: str, recommender: str, keep: int) -> list[str]:
        """Deletes all but the newest ``keep`` versions, never the current one."""
        current = self.current(shop, recommender)
        old = [v.version for v in self.versions(shop, recommender)][:-keep] if keep > 0 else []
        removed = [v for v in old if v != current]
        for name in removed:
            shutil.rmtree(self.folder(shop, recommender, name), ignore_errors=True)
        return removed

    def prune_masked(self, shop: str, recommender: str, masked_time: float | None) -> list[str]:
        """Deletes every version but the current one fitted at or before ``masked_time`` (the
        shop's latest erasure or training withdrawal, `Store.latest_mask_time`): they may
        hold a customer who is gone, so no rollback may serve them again (issue 11)."""
        if masked_time is None:
            return []
        current = self.current(shop, recommender)
        removed = [
            v.version
            for v in self.versions(shop, recommender)
            if v.create_time <= masked_time and v.version != current
        ]
        self._remove(shop, recommender, removed)
        return removed

    def _remove(self, shop: str, recommender: str, versions: list[str]) -> None:
        for name in versions:
            shutil.rmtree(self.folder(shop, recommender, name), ignore_errors=True)

    def drop(self, shop: str, recommender: str) -> None:
        """Deletes every version of ``recommender`` (an ended experiment's variant model)."""
        self._remove(shop, recommender, [v.version for v in self.versions(shop, recommender)])
        shutil.rmtree(self._dir(shop, recommender), ignore_errors=True)


class StoreArtifacts(Artifacts):
    """Model versions in the store's ``model_artifacts`` table (``KOSMOS_MODEL_STORE=database``).

    No volume is shared: the trainer packs a version's files into one row (written whole, in
    one transaction) and points ``model_current`` at it; each replica unpacks the current
    version into its own local cache folder and loads it from there. Rolling back is pointing
    ``model_current`` at an older row.
    """

    def __init__(self, store: Store, cache: str | Path | None = None) -> None:
        made = None if cache else tempfile.mkdtemp(prefix="kosmos-models-")
        super().__init__(cache or made or "")
        self.store = store
        # A cache folder of our own making (no KOSMOS_MODEL_DIR) holds unpacked copies of
        # what the database keeps: removed when this is collected or the process exits, so a
        # process that restarts does not leave a folder of models behind each time. A folder
        # that was given is the operator's and stays.
        self.close = weakref.finalize(self, shutil.rmtree, made, True) if made else _nothing

    def publish(
        self,
        shop: str,
        recommender: str,
        save: Callable[[Path], None],
        *,
        interactions: int,
        fit_seconds: float,
        distribution: str,
        settings: Mapping[str, str],
        make_current: bool = True,
        data_version: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> Version:
        version = _new_version(
            shop,
            recommender,
            interactions,
            fit_seconds,
            distribution,
            settings,
            data_version,
            metrics,
        )
        name, now = version.version, version.create_time
        with tempfile.TemporaryDirectory(prefix="kosmos-publish-") as tmp:
            save(Path(tmp))
            (Path(tmp) / MANIFEST).write_text(json.dumps(asdict(version), indent=2))
            packed = io.BytesIO()
            with tarfile.open(fileobj=packed, mode="w:gz") as tar:
                tar.add(tmp, arcname=".")
        self.store.put_model_artifact(
            ModelArtifact(shop, recommender, name, now, json.dumps(asdict(version))),
            packed.getvalue(),
        )
        if make_current:
            self.set_current(shop, recommender, name)
        return version

    def set_current(self, shop: str, recommender: str, version: str) -> None:
        try:
            self.store.set_current_model(shop, recommender, version)
        except NotFound:
            raise ArtifactError(
                f"no version {version!r} of {recommender!r} for shop {shop!r}"
            ) from None

    def current(self, shop: str, recommender: str) -> str | None:
        return self.store.current_model(shop, recommender)

    def versions(self, shop: str, recommender: str) -> list[Version]:
        return [
            Version(**json.loads(a.manifest)) for a in self.store.model_artifacts(shop, recommender)
        ]

    def folder(self, shop: str, recommender: str, version: str) -> Path:
        """The version unpacked in the local cache (fetched from the store the first time)."""
        target = super().folder(shop, recommender, version)
        if (target / MANIFEST).is_file():
            return target
        blob = self.store.model_blob(shop, recommender, version)
        if blob is None:
            raise ArtifactError(f"no version {version!r} of {recommender!r} for shop {shop!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{version}.{uuid.uuid4().hex}.tmp"
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")  # no paths outside the folder, no devices
            tmp.rename(target)  # appears whole
        except FileExistsError:  # OSError on some systems: another thread unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / MANIFEST).is_file():
                raise
        return target

    def shops(self) -> list[str]:
        return [s for s in self.store.list_shop_ids() if self.store.model_recommenders(s)]

    def recommenders(self, shop: str) -> list[str]:
        return self.store.model_recommenders(shop)

    def _remove(self, shop: str, recommender: str, versions: list[str]) -> None:
        self.store.delete_model_artifacts(shop, recommender, versions)
        for name in versions:
            shutil.rmtree(super().folder(shop, recommender, name), ignore_errors=True)

    def prune(self, shop: str, recommender: str, keep: int) -> list[str]:
        current = self.current(shop, recommender)
        old = [v.version for v in self.versions(shop, recommender)][:-keep] if keep > 0 else []
        removed = [v for v in old if v != current]
        self.store.delete_model_artifacts(shop, recommender, removed)
        for name in removed:
            shutil.rmtree(super().folder(shop, recommender, name), ignore_errors=True)
        return removed


def _nothing() -> None:
    pass


def open_artifacts(model_store: str, model_dir: str, store: Store) -> Artifacts | None:
    """The artifact source ``KOSMOS_MODEL_STORE`` and ``KOSMOS_MODEL_DIR`` name; None when
    models are only fitted in process (files, no directory)."""
    if model_store == "database":
        return StoreArtifacts(store, model_dir or None)
    return Artifacts(model_dir) if model_dir else None
