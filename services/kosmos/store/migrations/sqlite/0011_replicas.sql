-- Issue 14. The latest heartbeat of each serving process (hostname/pid): the dashboard's
-- health of each service and replica. Rows not refreshed for a while are purged by the beats.
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY,
    services   TEXT NOT NULL,
    version    TEXT NOT NULL,
    start_time REAL NOT NULL,
    seen_time  REAL NOT NULL,
    status     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX replicas_seen ON replicas (seen_time);
