-- A counter bumped by every catalog write, so readers can cache a shop's catalog and know
-- exactly when to reload it.
ALTER TABLE shops ADD COLUMN catalog_version INTEGER NOT NULL DEFAULT 0;
