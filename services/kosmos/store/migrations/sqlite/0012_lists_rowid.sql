-- Issue 12: the lists behind recommendation ids move to a rowid table. A kept list is about
-- 5 KB of JSON (50 offers), more than one 4 KB page, and a WITHOUT ROWID table keeps whole
-- rows in its primary key's B-tree, which wants rows far smaller than a page: there every
-- insert at a random id split interior pages and chained overflow pages. Into a rowid table
-- (the key in an index of its own) the same plain inserts cost 45 microseconds of CPU a list
-- against 115-120, and keeping a list through the store 103 against 160
-- (tools/bench_store.py --only-lists). The rows are copied as they are.
CREATE TABLE recommendation_lists_rowid (
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
);
INSERT INTO recommendation_lists_rowid (shop_id, recommendation_id, customer_id, placement,
    experiment_id, variant_id, offers, create_time, expire_time)
    SELECT shop_id, recommendation_id, customer_id, placement, experiment_id, variant_id, offers,
        create_time, expire_time FROM recommendation_lists;
DROP TABLE recommendation_lists;
ALTER TABLE recommendation_lists_rowid RENAME TO recommendation_lists;
CREATE INDEX recommendation_lists_experiment
    ON recommendation_lists (shop_id, experiment_id) WHERE experiment_id != '';
CREATE INDEX recommendation_lists_expiry ON recommendation_lists (expire_time);
