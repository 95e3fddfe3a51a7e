-- sipsensor collector, PostgreSQL schema version 2: one row per sampling
-- instant ("reading") with every channel's value, instead of one row per
-- channel value. A 3-channel stream costs a third of the rows and index
-- entries (docs/benchmarks.md, "collector").
--
-- raws: the values in channel order, NULL where the sensor had no reading;
-- raws[1] is channel 0.

DROP INDEX samples_by_sensor_time;
ALTER TABLE samples RENAME TO samples_v1;
ALTER TABLE samples_v1 RENAME CONSTRAINT samples_pkey TO samples_v1_pkey;

CREATE TABLE samples (
    session_id BIGINT   NOT NULL,
    seq        BIGINT   NOT NULL,
    idx        BIGINT   NOT NULL,
    sensor_id  BIGINT   NOT NULL,
    ts_ns      BIGINT   NOT NULL,
    raws       BIGINT[] NOT NULL,
    PRIMARY KEY (session_id, seq, idx)
);

-- Each instant of version 1, its channels 0..max in order, NULL for a
-- channel that had no row.
INSERT INTO samples (session_id, seq, idx, sensor_id, ts_ns, raws)
SELECT i.session_id, i.seq, i.idx, i.sensor_id, i.ts_ns,
       ARRAY(SELECT v.raw
             FROM generate_series(0, i.last) AS c (n)
             LEFT JOIN samples_v1 v
               ON v.session_id = i.session_id AND v.seq = i.seq
              AND v.idx = i.idx AND v.channel = c.n
             ORDER BY c.n)
FROM (SELECT session_id, seq, idx, min(sensor_id) AS sensor_id,
             min(ts_ns) AS ts_ns, max(channel) AS last
      FROM samples_v1
      GROUP BY session_id, seq, idx) AS i;

DROP TABLE samples_v1;
CREATE INDEX samples_by_sensor_time ON samples (sensor_id, ts_ns);
