-- sipsensor collector, SQLite schema version 4: fleet updates
-- (docs/protocol.md 12). Sensors are named by address of record, as the
-- subscriptions name them.

CREATE TABLE update_bundles (
    sha256       TEXT    PRIMARY KEY CHECK (length(sha256) = 64),
    version      TEXT    NOT NULL,
    compatible   TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    published_ns INTEGER NOT NULL
);

-- Each sensor's latest NOTIFY (12.3).
CREATE TABLE fleet_states (
    aor          TEXT    PRIMARY KEY,
    version      TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    compatible   TEXT    NOT NULL,
    slot         TEXT    NOT NULL,
    update_state TEXT    NOT NULL,
    target       TEXT,
    progress     INTEGER CHECK (progress BETWEEN 0 AND 100),
    reason       TEXT,
    reported_ns  INTEGER NOT NULL
);

-- Changes of a sensor's update state, target or version.
CREATE TABLE fleet_events (
    id           INTEGER PRIMARY KEY,
    aor          TEXT    NOT NULL,
    ts_ns        INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    update_state TEXT    NOT NULL,
    target       TEXT,
    reason       TEXT
);
CREATE INDEX fleet_events_by_sensor ON fleet_events (aor, ts_ns);
