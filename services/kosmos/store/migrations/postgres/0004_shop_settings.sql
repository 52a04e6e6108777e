-- Per-shop settings, versioned: every update stores a new revision (a JSON document of the
-- fields the shop set) and bumps shops.settings_revision, which readers poll cheaply.
ALTER TABLE shops ADD COLUMN settings_revision BIGINT NOT NULL DEFAULT 0;

CREATE TABLE shop_settings (
    shop_id     TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    revision    BIGINT NOT NULL,
    document    TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (shop_id, revision)
);
