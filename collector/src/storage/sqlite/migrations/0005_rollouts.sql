-- sipsensor collector, SQLite schema version 4 (issue 16): staged rollouts
-- (docs/protocol.md 12.7) and each sensor's place in them, written as the
-- rollout decides, so that a restarted collector goes on where it was.
--
-- A sensor is named as the subscriptions name it (its address of record),
-- not by sensors.id: a rollout may list a sensor that has not registered
-- yet, and it simply waits.

CREATE TABLE rollouts (
    id           INTEGER PRIMARY KEY,
    version      TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    reboot       TEXT    NOT NULL CHECK (reboot IN ('now', 'window')),
    canary       INTEGER NOT NULL,
    growth       INTEGER NOT NULL,
    max_failures INTEGER NOT NULL,
    timeout_ms   INTEGER NOT NULL,
    created_ns   INTEGER NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'halted', 'finished')),
    reason       TEXT,
    -- The wave last started, 0 the canaries; NULL before the first.
    wave         INTEGER,
    ended_ns     INTEGER
);

CREATE TABLE rollout_sensors (
    rollout_id  INTEGER NOT NULL REFERENCES rollouts (id),
    -- Targeting order: the first `canary` are the canaries.
    position    INTEGER NOT NULL,
    sensor      TEXT    NOT NULL,
    phase       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (phase IN ('pending', 'targeted', 'done', 'failed', 'stopped')),
    targeted_ns INTEGER,
    finished_ns INTEGER,
    last_update TEXT,
    detail      TEXT,
    PRIMARY KEY (rollout_id, position),
    UNIQUE (rollout_id, sensor)
);
