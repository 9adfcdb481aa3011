-- Records of the XLOG, Transaction, Storage, CLOG, Database, Tablespace, MultiXact, RelMap,
-- Standby, CommitTs, ReplicationOrigin and LogicalMessage resource managers (see generate.sh).
-- psql variables: tsdir (an empty directory for a tablespace).
SELECT current_setting('server_version_num')::int >= 150000 AS v15 \gset
-- Storage CREATE (main and init forks), XLOG FPI (index build), FPI_FOR_HINT
CREATE TABLE t1 (id int PRIMARY KEY, v text);
INSERT INTO t1 SELECT g, 'x' || g FROM generate_series(1, 100) g;
CREATE INDEX t1_v ON t1 (v);
CREATE UNLOGGED TABLE ul (a int);
CHECKPOINT;
SELECT count(*) FROM t1;
-- Storage TRUNCATE
CREATE TABLE t2 (a int);
INSERT INTO t2 SELECT generate_series(1, 600);
DELETE FROM t2 WHERE a > 100;
VACUUM t2;
-- commits and aborts with rels, subxacts, dropped stats (15+)
BEGIN;
SAVEPOINT s1; INSERT INTO t2 VALUES (1);
SAVEPOINT s2; INSERT INTO t2 VALUES (2);
RELEASE s2;
DROP TABLE t2;
COMMIT;
BEGIN;
CREATE TABLE t4 (a int);
SAVEPOINT s1; INSERT INTO t4 VALUES (1);
SAVEPOINT s2; INSERT INTO t4 VALUES (1);
ROLLBACK;
-- apply_feedback (15+ prints it)
SET synchronous_commit = remote_apply;
INSERT INTO t1 VALUES (100000, 'fb');
RESET synchronous_commit;
-- relcache init file invalidation, RelMap UPDATE
ANALYZE pg_class;
VACUUM pg_class;
VACUUM FULL pg_database;
-- Tablespace, Database (sync commits), relation paths in a tablespace. (CREATE_WAL_LOG is left
-- out: it logs every page of the template database.)
CREATE TABLESPACE ts1 LOCATION :'tsdir';
CREATE TABLE t_ts (a int) TABLESPACE ts1;
DROP TABLE t_ts;
\if :v15
CREATE DATABASE d3 STRATEGY file_copy;
\else
CREATE DATABASE d3;
\endif
DROP DATABASE d3;
DROP TABLESPACE ts1;
-- two-phase commit
BEGIN; CREATE TABLE t5 (a int); SAVEPOINT q; INSERT INTO t5 VALUES (2); PREPARE TRANSACTION 'gid-one';
COMMIT PREPARED 'gid-one';
BEGIN; DROP TABLE t5; CREATE TABLE t6 (a int); PREPARE TRANSACTION 'gid two';
ROLLBACK PREPARED 'gid two';
-- LogicalMessage
SELECT pg_logical_emit_message(true, 'pfx', 'hello world');
SELECT pg_logical_emit_message(false, 'p2', '\x00ff10'::bytea);
SELECT pg_logical_emit_message(false, '', '');
-- ReplicationOrigin SET / DROP, origins in commit, abort and prepare records
SELECT pg_replication_origin_create('o1');
SELECT pg_replication_origin_advance('o1', '0/12345678');
SELECT pg_replication_origin_session_setup('o1');
BEGIN; SELECT pg_replication_origin_xact_setup('0/AABBCC', '2020-01-01 00:00:00+00'); INSERT INTO t1 VALUES (100002, 'o'); COMMIT;
BEGIN; SELECT pg_replication_origin_xact_setup('0/AABBCD', '2021-06-01 12:00:00+00'); INSERT INTO t1 VALUES (100003, 'o'); ROLLBACK;
BEGIN; SELECT pg_replication_origin_xact_setup('0/AABBCE', '2022-06-01 12:00:00+00'); INSERT INTO t1 VALUES (100004, 'o'); PREPARE TRANSACTION 'gorigin';
COMMIT PREPARED 'gorigin';
SELECT pg_replication_origin_session_reset();
SELECT pg_replication_origin_drop('o1');
-- publication changes (18: relsync invalidations)
CREATE PUBLICATION pub1 FOR TABLE t1;
ALTER PUBLICATION pub1 RENAME TO pub2;
DROP PUBLICATION pub2;
-- XLOG RESTORE_POINT (BACKUP_END is left out: starting and stopping a backup switch segments)
SELECT pg_create_restore_point('my restore point');
-- CommitTs ZEROPAGE (819 transactions per page)
CREATE PROCEDURE burn(n int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..n LOOP PERFORM txid_current(); COMMIT; END LOOP; END $$;
CALL burn(900);
-- MultiXact CREATE_ID from one session (a subtransaction locks the row again)
CREATE TABLE mx (id int PRIMARY KEY, v int);
INSERT INTO mx VALUES (1, 1);
BEGIN;
SELECT 1 FROM mx WHERE id = 1 FOR KEY SHARE;
SAVEPOINT a;
SELECT 1 FROM mx WHERE id = 1 FOR NO KEY UPDATE;
COMMIT;
