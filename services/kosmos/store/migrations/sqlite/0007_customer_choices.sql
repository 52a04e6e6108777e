-- Issue 11, every customer their own ecosystem: stated preferences and a price range on the
-- profile, anonymous profiles, consent per purpose (the current state and every change, with
-- its time and source), identity links, and model masks: the hash of an erased or
-- training-withdrawn id with the time from which older models must not use its vector.
ALTER TABLE customers ADD COLUMN preferences TEXT NOT NULL DEFAULT '[]';
ALTER TABLE customers ADD COLUMN price_range TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 0;
-- Bumped by every erasure and training consent change: part of data_version, so a trainer
-- refits a shop whose customers took their data back.
ALTER TABLE shops ADD COLUMN privacy_version INTEGER NOT NULL DEFAULT 0;
-- "Recent" is event time, not arrival order.
CREATE INDEX interactions_by_event_time ON interactions (shop_id, customer_id, event_time);

CREATE TABLE consents (
    shop_id     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    purpose     INTEGER NOT NULL,
    granted     INTEGER NOT NULL,
    source      TEXT NOT NULL,
    update_time REAL NOT NULL,
    PRIMARY KEY (shop_id, customer_id, purpose),
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE consent_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    shop_id     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    purpose     INTEGER NOT NULL,
    granted     INTEGER NOT NULL,
    source      TEXT NOT NULL,
    update_time REAL NOT NULL,
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX consent_changes_by_customer ON consent_changes (shop_id, customer_id, seq);

CREATE TABLE identity_links (
    shop_id     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    linked_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    create_time REAL NOT NULL,
    PRIMARY KEY (shop_id, customer_id, linked_id),
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE,
    FOREIGN KEY (shop_id, linked_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX identity_links_by_linked ON identity_links (shop_id, linked_id);

CREATE TABLE model_masks (
    shop_id   TEXT NOT NULL,
    subject   TEXT NOT NULL,
    mask_time REAL NOT NULL,
    PRIMARY KEY (shop_id, subject)
) WITHOUT ROWID;
