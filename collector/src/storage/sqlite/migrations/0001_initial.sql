-- sipsensor collector, SQLite schema version 1.
-- Times are nanoseconds since the Unix epoch (UTC).

CREATE TABLE sensors (
    id           INTEGER PRIMARY KEY,
    aor          TEXT    NOT NULL UNIQUE,
    display_name TEXT,
    state        TEXT    NOT NULL DEFAULT 'offline'
                 CHECK (state IN ('offline', 'registered', 'streaming')),
    last_seen_ns INTEGER
);

-- One row per negotiated stream; a re-INVITE that changes the stream opens
-- a new row with the same call_id.
CREATE TABLE sessions (
    id                 INTEGER PRIMARY KEY,
    sensor_id          INTEGER NOT NULL REFERENCES sensors (id),
    call_id            TEXT    NOT NULL,
    ssrc               INTEGER NOT NULL CHECK (ssrc BETWEEN 0 AND 4294967295),
    rate_hz            REAL    NOT NULL,
    samples_per_packet INTEGER NOT NULL,
    started_ns         INTEGER NOT NULL,
    ended_ns           INTEGER,
    UNIQUE (sensor_id, call_id, ssrc, started_ns)
);
CREATE INDEX sessions_by_sensor ON sessions (sensor_id, started_ns);

CREATE TABLE session_channels (
    session_id INTEGER NOT NULL REFERENCES sessions (id),
    channel    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    unit       TEXT    NOT NULL,
    scale      REAL    NOT NULL,
    PRIMARY KEY (session_id, channel)
) WITHOUT ROWID;

-- The primary key is the duplicate key: a sample is stored exactly once.
-- Key order (session, seq, idx, channel) puts the channels of one packet
-- side by side: a commit dirties one leaf page per stream, not one per channel.
-- No foreign keys on the bulk tables: their check would cost a lookup per
-- row at 10^5 rows/s; sessions are written before their samples instead.
CREATE TABLE samples (
    session_id INTEGER NOT NULL,
    channel    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    sensor_id  INTEGER NOT NULL,
    ts_ns      INTEGER NOT NULL,
    raw        INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq, idx, channel)
) WITHOUT ROWID;
CREATE INDEX samples_by_sensor_time ON samples (sensor_id, ts_ns);

CREATE TABLE events (
    session_id INTEGER NOT NULL,
    channel    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    sensor_id  INTEGER NOT NULL,
    ts_ns      INTEGER NOT NULL,
    value      INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq, idx, channel)
) WITHOUT ROWID;
CREATE INDEX events_by_sensor_time ON events (sensor_id, ts_ns);

CREATE TABLE gaps (
    sensor_id  INTEGER NOT NULL,
    from_ns    INTEGER NOT NULL,
    to_ns      INTEGER NOT NULL,
    session_id INTEGER,
    samples    INTEGER NOT NULL,
    cause      TEXT    NOT NULL CHECK (cause IN ('loss', 'source', 'session_break', 'overload')),
    PRIMARY KEY (sensor_id, from_ns, to_ns)
) WITHOUT ROWID;
