-- The hot path: items carry the catalog version that wrote them, so a reader loads only what
-- changed since the version it holds; dismissals are found by index instead of by scanning a
-- customer's whole history.
ALTER TABLE items ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX items_by_version ON items (shop_id, version);
CREATE INDEX interactions_dismissed ON interactions (shop_id, customer_id, item_id) WHERE type = 6;
