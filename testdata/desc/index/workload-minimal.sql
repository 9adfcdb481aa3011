-- wal_level = minimal: GiST in a table created in the same transaction logs ASSIGN_LSN.
\set ON_ERROR_STOP 1
BEGIN;
CREATE TABLE gm(p point);
CREATE INDEX gm_g ON gm USING gist(p);
INSERT INTO gm SELECT point(g % 100, g / 100) FROM generate_series(1, 20000) g;
COMMIT;
