-- Issue 14. The latest heartbeat of each serving process (hostname/pid): the dashboard's
-- health of each service and replica. Rows not refreshed for a while are purged by the beats.
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY,
    services   TEXT NOT NULL,
    version    TEXT NOT NULL,
    start_time DOUBLE PRECISION NOT NULL,
    seen_time  DOUBLE PRECISION NOT NULL,
    status     TEXT NOT NULL
);
CREATE INDEX replicas_seen ON replicas (seen_time);
