-- API keys: who may call which RPCs for which shop. Only a hash of each secret is kept; the
-- secret itself is shown once, when the key is created. shop_id is '' for operator keys.
CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    shop_id      TEXT NOT NULL DEFAULT '',
    scope        TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    create_time  REAL NOT NULL,
    revoke_time  REAL
);
CREATE INDEX api_keys_by_shop ON api_keys (shop_id, key_id);
