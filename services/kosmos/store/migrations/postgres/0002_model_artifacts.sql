-- Model versions travel through the database, not a volume every replica must mount: the
-- trainer writes each version whole (one row, its files packed), replicas read the current one.
CREATE TABLE model_artifacts (
    shop_id     TEXT NOT NULL,
    recommender TEXT NOT NULL,
    version     TEXT NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    manifest    TEXT NOT NULL,
    artifact    BYTEA NOT NULL,
    PRIMARY KEY (shop_id, recommender, version)
);

CREATE TABLE model_current (
    shop_id     TEXT NOT NULL,
    recommender TEXT NOT NULL,
    version     TEXT NOT NULL,
    PRIMARY KEY (shop_id, recommender)
);
