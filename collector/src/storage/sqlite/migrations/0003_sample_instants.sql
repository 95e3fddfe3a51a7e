-- sipsensor collector, SQLite schema version 3 (issue 15): a sample is
-- identified by its sensor and sampling instant, so one resent in another
-- session (backfill after an interruption, with other sequence numbers) or
-- retransmitted is stored once; gaps get the kind `expired`.
--
-- The primary key (sensor_id, ts_ns) is also the range index of queries,
-- so `samples_by_sensor_time` goes; `samples_by_session` serves retention
-- (is a session left without samples?) and the close of sessions a crash
-- left open (a session's last instant).
--
-- source: how the reading came, 0 live, 1 resent (RFC 4588
-- retransmission), 2 backfilled (from the agent's spool); an integer
-- because SQLite stores 0 and 1 in no bytes.
--
-- Rows of version 2 with the same sensor and instant (none in practice)
-- keep the first by (session, seq, idx).

DROP INDEX samples_by_sensor_time;
ALTER TABLE samples RENAME TO samples_v2;

CREATE TABLE samples (
    sensor_id  INTEGER NOT NULL,
    ts_ns      INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    source     INTEGER NOT NULL DEFAULT 0 CHECK (source IN (0, 1, 2)),
    raws       TEXT    NOT NULL,
    PRIMARY KEY (sensor_id, ts_ns)
) WITHOUT ROWID;

INSERT INTO samples (sensor_id, ts_ns, session_id, seq, idx, source, raws)
SELECT sensor_id, ts_ns, session_id, seq, idx, 0, raws
FROM samples_v2 WHERE true
ORDER BY sensor_id, ts_ns, session_id, seq, idx
ON CONFLICT DO NOTHING;

DROP TABLE samples_v2;
CREATE INDEX samples_by_session ON samples (session_id, ts_ns);

ALTER TABLE gaps RENAME TO gaps_v2;
CREATE TABLE gaps (
    sensor_id  INTEGER NOT NULL,
    from_ns    INTEGER NOT NULL,
    to_ns      INTEGER NOT NULL,
    session_id INTEGER,
    samples    INTEGER NOT NULL,
    cause      TEXT    NOT NULL
               CHECK (cause IN ('loss', 'source', 'session_break', 'overload', 'expired')),
    PRIMARY KEY (sensor_id, from_ns, to_ns)
) WITHOUT ROWID;
INSERT INTO gaps (sensor_id, from_ns, to_ns, session_id, samples, cause)
SELECT sensor_id, from_ns, to_ns, session_id, samples, cause FROM gaps_v2;
DROP TABLE gaps_v2;

-- Gaps whose samples may still come (GapCause::is_fillable): the oldest
-- bounds what is committed (Storage::committed_through).
CREATE INDEX gaps_fillable ON gaps (sensor_id, from_ns)
    WHERE cause IN ('loss', 'session_break', 'overload');
