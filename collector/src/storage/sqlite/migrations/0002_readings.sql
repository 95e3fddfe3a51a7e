-- sipsensor collector, SQLite schema version 2: one row per sampling
-- instant ("reading") with every channel's value, instead of one row per
-- channel value. A 3-channel stream costs a third of the rows and index
-- entries (docs/benchmarks.md, "collector").
--
-- raws: a JSON array in channel order, null where the sensor had no
-- reading; json_extract(raws, '$[0]') reads channel 0 in plain SQL.

DROP INDEX samples_by_sensor_time;
ALTER TABLE samples RENAME TO samples_v1;

CREATE TABLE samples (
    session_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    sensor_id  INTEGER NOT NULL,
    ts_ns      INTEGER NOT NULL,
    raws       TEXT    NOT NULL,
    PRIMARY KEY (session_id, seq, idx)
) WITHOUT ROWID;

-- Each instant of version 1, its channels 0..max in order, null for a
-- channel that had no row.
WITH RECURSIVE
    channel (n) AS (
        SELECT 0
        UNION ALL
        SELECT n + 1 FROM channel
        WHERE n < (SELECT coalesce(max(channel), 0) FROM samples_v1)
    ),
    instant AS (
        SELECT session_id, seq, idx, min(sensor_id) AS sensor_id,
               min(ts_ns) AS ts_ns, max(channel) AS last
        FROM samples_v1
        GROUP BY session_id, seq, idx
    )
INSERT INTO samples (session_id, seq, idx, sensor_id, ts_ns, raws)
SELECT i.session_id, i.seq, i.idx, i.sensor_id, i.ts_ns,
       (SELECT json_group_array(v.raw ORDER BY c.n)
        FROM channel c
        LEFT JOIN samples_v1 v
          ON v.session_id = i.session_id AND v.seq = i.seq
         AND v.idx = i.idx AND v.channel = c.n
        WHERE c.n <= i.last)
FROM instant i;

DROP TABLE samples_v1;
CREATE INDEX samples_by_sensor_time ON samples (sensor_id, ts_ns);
