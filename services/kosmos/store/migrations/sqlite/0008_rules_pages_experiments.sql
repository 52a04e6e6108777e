-- Issue 13. Merchant rules and experiments are per-shop versioned documents (kind 'rules' or
-- 'experiments'); shop_document_heads holds each kind's current revision, read per request.
CREATE TABLE shop_documents (
    shop_id     TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    document    TEXT NOT NULL,
    create_time REAL NOT NULL,
    PRIMARY KEY (shop_id, kind, revision)
) WITHOUT ROWID;

CREATE TABLE shop_document_heads (
    shop_id  TEXT NOT NULL REFERENCES shops (shop_id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (shop_id, kind)
) WITHOUT ROWID;

-- The ranked list behind a recommendation id: later pages and attribution read it.
-- No foreign key to customers: an anonymous id is served before it has a profile; erasure
-- deletes a customer's lists itself.
CREATE TABLE recommendation_lists (
    shop_id           TEXT NOT NULL,
    recommendation_id TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    placement         TEXT NOT NULL DEFAULT '',
    experiment_id     TEXT NOT NULL DEFAULT '',
    variant_id        TEXT NOT NULL DEFAULT '',
    offers            TEXT NOT NULL,
    create_time       REAL NOT NULL,
    expire_time       REAL NOT NULL,
    PRIMARY KEY (shop_id, recommendation_id)
) WITHOUT ROWID;
CREATE INDEX recommendation_lists_experiment
    ON recommendation_lists (shop_id, experiment_id) WHERE experiment_id != '';
CREATE INDEX recommendation_lists_expiry ON recommendation_lists (expire_time);

-- Offers a page showed; never a positive signal.
CREATE TABLE impressions (
    shop_id           TEXT NOT NULL,
    recommendation_id TEXT NOT NULL,
    item_id           TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    event_time        REAL NOT NULL,
    PRIMARY KEY (shop_id, recommendation_id, item_id),
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX impressions_customer ON impressions (shop_id, customer_id, event_time);
CREATE INDEX interactions_recommendation
    ON interactions (shop_id, recommendation_id) WHERE recommendation_id != '';

-- The channel and device an interaction happened on (plugins may learn per channel).
ALTER TABLE interactions ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE interactions ADD COLUMN device TEXT NOT NULL DEFAULT '';
