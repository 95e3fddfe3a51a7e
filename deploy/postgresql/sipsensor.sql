-- The shared store of several collectors (docs/deploy-scale-out.md).
-- Run once as the postgres superuser:  psql -f deploy/postgresql/sipsensor.sql
-- The collectors create and migrate their tables themselves (an advisory
-- lock serialises collectors that start together).
CREATE ROLE sipsensor LOGIN PASSWORD 'CHANGE-ME';
CREATE DATABASE sipsensor OWNER sipsensor;
