-- Shops, profiles, the catalog, interactions and the request ids that make feedback idempotent.
CREATE TABLE shops (
    shop_id      TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    create_time  REAL NOT NULL
);

CREATE TABLE customers (
    shop_id     TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}',
    exclusions  TEXT NOT NULL DEFAULT '[]',
    create_time REAL NOT NULL,
    update_time REAL NOT NULL,
    PRIMARY KEY (shop_id, customer_id)
) WITHOUT ROWID;

CREATE TABLE items (
    shop_id     TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    item_id     TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    category    TEXT NOT NULL DEFAULT '',
    brand       TEXT NOT NULL DEFAULT '',
    price       REAL NOT NULL DEFAULT 0,
    available   INTEGER NOT NULL DEFAULT 1,
    attributes  TEXT NOT NULL DEFAULT '{}',
    update_time REAL NOT NULL,
    PRIMARY KEY (shop_id, item_id)
) WITHOUT ROWID;

CREATE TABLE feedback_requests (
    shop_id      TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    create_time  REAL NOT NULL,
    PRIMARY KEY (shop_id, request_id)
) WITHOUT ROWID;

CREATE TABLE interactions (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    shop_id           TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    item_id           TEXT NOT NULL,
    type              INTEGER NOT NULL,
    value             REAL NOT NULL DEFAULT 0,
    event_time        REAL NOT NULL,
    recommendation_id TEXT NOT NULL DEFAULT '',
    request_id        TEXT NOT NULL,
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX interactions_by_customer ON interactions (shop_id, customer_id, seq);
CREATE INDEX interactions_by_request ON interactions (shop_id, request_id);
CREATE INDEX interactions_by_shop ON interactions (shop_id, seq);
