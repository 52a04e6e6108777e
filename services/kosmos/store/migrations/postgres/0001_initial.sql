-- Shops, profiles, the catalog, interactions and the request ids that make feedback idempotent.
-- The same tables as the SQLite store's migrations 1-3, in PostgreSQL's types.
CREATE TABLE shops (
    shop_id         TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL DEFAULT '',
    create_time     DOUBLE PRECISION NOT NULL,
    catalog_version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE customers (
    shop_id     TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}',
    exclusions  TEXT NOT NULL DEFAULT '[]',
    create_time DOUBLE PRECISION NOT NULL,
    update_time DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (shop_id, customer_id)
);

CREATE TABLE items (
    shop_id     TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    item_id     TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    category    TEXT NOT NULL DEFAULT '',
    brand       TEXT NOT NULL DEFAULT '',
    price       DOUBLE PRECISION NOT NULL DEFAULT 0,
    available   BOOLEAN NOT NULL DEFAULT TRUE,
    attributes  TEXT NOT NULL DEFAULT '{}',
    update_time DOUBLE PRECISION NOT NULL,
    -- The shop's catalog_version that wrote this row: readers load only what changed.
    version     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (shop_id, item_id)
);
CREATE INDEX items_by_version ON items (shop_id, version);

CREATE TABLE feedback_requests (
    shop_id      TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    create_time  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (shop_id, request_id)
);

CREATE TABLE interactions (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id           TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    item_id           TEXT NOT NULL,
    type              SMALLINT NOT NULL,
    value             DOUBLE PRECISION NOT NULL DEFAULT 0,
    event_time        DOUBLE PRECISION NOT NULL,
    recommendation_id TEXT NOT NULL DEFAULT '',
    request_id        TEXT NOT NULL,
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX interactions_by_customer ON interactions (shop_id, customer_id, seq);
CREATE INDEX interactions_by_request ON interactions (shop_id, request_id);
CREATE INDEX interactions_by_shop ON interactions (shop_id, seq);
CREATE INDEX interactions_dismissed ON interactions (shop_id, customer_id, item_id) WHERE type = 6;
