-- Heap/Heap2 workload: every record type of heapdesc.c (run with wal_level=logical).
\set ON_ERROR_STOP 1
SELECT pg_create_logical_replication_slot('heapslot', 'test_decoding');
CREATE SEQUENCE hseq;
CREATE TABLE h (id int PRIMARY KEY, k int, v text) WITH (fillfactor = 50);
CREATE INDEX h_k ON h (k);
INSERT INTO h SELECT g, g, 'x' FROM generate_series(1, 90) g;
UPDATE h SET v = 'y' WHERE id <= 10;
UPDATE h SET k = k + 1000 WHERE id BETWEEN 11 AND 15;
UPDATE h SET id = id + 5000 WHERE id = 16;
DELETE FROM h WHERE id BETWEEN 50 AND 55;
BEGIN;
SELECT id FROM h WHERE id = 70 FOR UPDATE;
SELECT id FROM h WHERE id = 71 FOR SHARE;
SELECT id FROM h WHERE id = 72 FOR KEY SHARE;
SELECT id FROM h WHERE id = 73 FOR NO KEY UPDATE;
SELECT id FROM h WHERE id = 74 FOR SHARE;
SAVEPOINT s1;
SELECT id FROM h WHERE id = 74 FOR UPDATE;
UPDATE h SET v = 'multi' WHERE id = 74;
RELEASE s1;
COMMIT;
BEGIN;
SELECT id FROM h WHERE id = 75 FOR KEY SHARE;
SAVEPOINT s2;
DELETE FROM h WHERE id = 75;
COMMIT;
INSERT INTO h VALUES (1000, 1, 'a') ON CONFLICT DO NOTHING;
INSERT INTO h VALUES (1, 1, 'a') ON CONFLICT (id) DO UPDATE SET v = 'c';
INSERT INTO h VALUES (1001, 1, 'a') ON CONFLICT (id) DO UPDATE SET v = 'c';
-- UPDATE+INIT: full pages, every row moves to fresh pages.
CREATE TABLE full_t (a int, b text) WITH (fillfactor = 100);
INSERT INTO full_t SELECT g, 'row' FROM generate_series(1, 230) g;
UPDATE full_t SET b = 'moved row';
-- toast
CREATE TABLE tt (a int, b text);
ALTER TABLE tt ALTER COLUMN b SET STORAGE EXTERNAL;
INSERT INTO tt SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 100) g;
-- partition move (DELETE flag)
CREATE TABLE pt (a int, b int) PARTITION BY LIST (a);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES IN (1);
CREATE TABLE pt2 PARTITION OF pt FOR VALUES IN (2);
INSERT INTO pt VALUES (1, 1), (1, 2);
UPDATE pt SET a = 2 WHERE b = 1;
-- MULTI_INSERT(+INIT) via COPY
CREATE TABLE c (a int, b text);
COPY c FROM STDIN;
1	one
2	two
3	three
4	four
\.
COPY c FROM STDIN;
5	five
6	six
\.
-- TRUNCATE (logged with wal_level=logical)
CREATE TABLE tr1 (id serial PRIMARY KEY);
CREATE TABLE tr2 (id int REFERENCES tr1);
INSERT INTO tr1 DEFAULT VALUES;
TRUNCATE tr1 RESTART IDENTITY CASCADE;
CREATE TABLE tr3 (a int);
TRUNCATE tr3;
-- on-access pruning: full pages with dead tuples, and HOT chains.
CREATE TABLE p (id int, v text) WITH (fillfactor = 100);
INSERT INTO p SELECT g, 'pppppppppp' FROM generate_series(1, 250) g;
DELETE FROM p WHERE id % 3 <> 0;
SELECT count(*) FROM p;
CREATE TABLE hc (id int PRIMARY KEY, v int) WITH (fillfactor = 100);
INSERT INTO hc SELECT g, 0 FROM generate_series(1, 220) g;
UPDATE hc SET v = 1 WHERE id = 1;
UPDATE hc SET v = 2 WHERE id = 1;
UPDATE hc SET v = 3 WHERE id = 1;
UPDATE hc SET v = 1 WHERE id = 2;
UPDATE hc SET v = 2 WHERE id = 2;
SELECT count(*) FROM hc;
SELECT * FROM hc WHERE id = 1;
-- REWRITE: user catalog table rewritten while a logical slot exists
CREATE TABLE uc (a int, b text) WITH (user_catalog_table = true);
INSERT INTO uc SELECT g, 'u' FROM generate_series(1, 20) g;
UPDATE uc SET b = 'uu' WHERE a < 5;
VACUUM FULL uc;
-- vacuum: prune, vacuum, visible, freeze, inplace
VACUUM h;
VACUUM p;
VACUUM hc;
VACUUM FREEZE h;
VACUUM FREEZE full_t;
VACUUM pg_class;
VACUUM pg_database;
SELECT pg_drop_replication_slot('heapslot');
