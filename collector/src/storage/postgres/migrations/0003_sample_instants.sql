-- sipsensor collector, PostgreSQL schema version 3 (issue 15): a sample is
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
-- retransmission), 2 backfilled (from the agent's spool).
--
-- Rows of version 2 with the same sensor and instant (none in practice)
-- keep the first by (session, seq, idx).

DELETE FROM samples a USING samples b
WHERE a.sensor_id = b.sensor_id AND a.ts_ns = b.ts_ns
  AND (a.session_id, a.seq, a.idx) > (b.session_id, b.seq, b.idx);

ALTER TABLE samples DROP CONSTRAINT samples_pkey;
DROP INDEX samples_by_sensor_time;
ALTER TABLE samples ADD COLUMN source SMALLINT NOT NULL DEFAULT 0
    CHECK (source IN (0, 1, 2));
ALTER TABLE samples ADD PRIMARY KEY (sensor_id, ts_ns);
CREATE INDEX samples_by_session ON samples (session_id, ts_ns);

ALTER TABLE gaps DROP CONSTRAINT gaps_cause_check;
ALTER TABLE gaps ADD CONSTRAINT gaps_cause_check
    CHECK (cause IN ('loss', 'source', 'session_break', 'overload', 'expired'));

-- Gaps whose samples may still come (GapCause::is_fillable): the oldest
-- bounds what is committed (Storage::committed_through).
CREATE INDEX gaps_fillable ON gaps (sensor_id, from_ns)
    WHERE cause IN ('loss', 'session_break', 'overload');
