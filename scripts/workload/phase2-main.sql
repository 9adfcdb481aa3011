-- Phase 2: wal_level=logical. The server came up through crash recovery (end-of-recovery
-- checkpoint, PARAMETER_CHANGE). full_page_writes is still off from phase 1; it is on for the
-- middle part (2b), so that each page touched there gets one full-page image (compressed with the
-- configured wal_compression), and off again for the catalog-heavy parts (2a, 2c) to keep the WAL
-- small. Each switch logs XLOG/FPW_CHANGE.
\ir common.psql
SELECT 'phase2-start' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- 2a (full_page_writes=off): slot, tablespace, database, relmap, index builds
------------------------------------------------------------------------------------------------
-- A logical slot: catalog rewrites log Heap2/REWRITE mappings only while one exists. It is dropped
-- right after: its catalog_xmin would keep deleted index pages (btree, GiST) and SP-GiST
-- redirects from becoming recyclable in 14/15, and catalogs from being frozen.
SELECT pg_create_logical_replication_slot('wl_slot', 'test_decoding') IS NULL AS _ \gset
CREATE TABLESPACE wl_ts LOCATION :'tsdir';     -- Tablespace/CREATE
CREATE TABLE ts_t (id int) TABLESPACE wl_ts;   -- Storage/CREATE in the tablespace
INSERT INTO ts_t VALUES (1);
DROP TABLE ts_t;
-- pg_tablespace is a mapped shared catalog: RelMap/UPDATE for the global map, and Heap2/REWRITE
-- for the wl_ts row (newer than the slot's catalog_xmin).
VACUUM FULL pg_tablespace;
SELECT pg_drop_replication_slot('wl_slot') IS NULL AS _ \gset
-- A small mapped index of this database: RelMap/UPDATE for the local map.
REINDEX INDEX pg_toast.pg_toast_1247_index;
\if :pg15
-- wl_tiny (phase 1) has an almost empty pg_class, which keeps this copy small.
CREATE DATABASE wl_wallog TEMPLATE wl_tiny STRATEGY wal_log;   -- Database/CREATE_WAL_LOG
\endif
-- Index builds that log their pages (XLOG/FPI) or build records.
CREATE INDEX h_id_hash ON h USING hash (id);  -- Hash/INIT_META_PAGE, INIT_BITMAP_PAGE
CREATE INDEX br_id ON br USING brin (id) WITH (pages_per_range = 1);  -- BRIN/CREATE_INDEX, INSERT(+INIT)
SELECT 'phase2a' AS section, :walmark;

ALTER SYSTEM SET full_page_writes = on;
SELECT pg_reload_conf() AS _ \gset
-- the checkpointer logs XLOG/FPW_CHANGE when it processes the reload
SELECT pg_sleep(1) AS _ \gset

------------------------------------------------------------------------------------------------
-- 2b (full_page_writes=on). Heap
------------------------------------------------------------------------------------------------
INSERT INTO h SELECT g, g, 0, 'v' || g FROM generate_series(1, 6) g;   -- INSERT(+INIT)
UPDATE h SET n = n + 1 WHERE id <= 5;          -- HOT_UPDATE
UPDATE h SET n = n + 1 WHERE id <= 5;
UPDATE h SET n = n + 1 WHERE id <= 5;
-- the page is more than 10% full (fillfactor 10): on-access pruning (13: CLEAN, 14-16: PRUNE,
-- 17+: PRUNE_ON_ACCESS)
SELECT count(*) AS _ FROM h WHERE n >= 0 \gset
UPDATE h SET k = k + 100 WHERE id IN (1, 2);   -- UPDATE (indexed column: not HOT)
UPDATE hfull SET id = 0 WHERE id = 1;          -- the page is full: UPDATE+INIT
DELETE FROM h WHERE id = 6;                    -- DELETE
INSERT INTO h VALUES (7, 7, 0, 'seven') ON CONFLICT (id) DO NOTHING;            -- HEAP_CONFIRM
INSERT INTO h VALUES (1, 1, 0, 'one') ON CONFLICT (id) DO UPDATE SET n = h.n + 1; -- (update)
-- LOCK, in each mode
SELECT 1 AS _ FROM h WHERE id = 1 FOR UPDATE \gset
SELECT 1 AS _ FROM h WHERE id = 2 FOR NO KEY UPDATE \gset
SELECT 1 AS _ FROM h WHERE id = 3 FOR SHARE \gset
SELECT 1 AS _ FROM h WHERE id = 5 FOR KEY SHARE \gset
-- Two sessions share a row lock: MultiXact/CREATE_ID and a LOCK with IS_MULTI.
SELECT dblink_connect('a', :'connstr') AS _ \gset
SELECT dblink_exec('a', 'BEGIN') AS _ \gset
SELECT id AS _ FROM dblink('a', 'SELECT id FROM h WHERE id = 4 FOR SHARE') AS t(id int) \gset
SELECT 1 AS _ FROM h WHERE id = 4 FOR KEY SHARE \gset
SELECT dblink_exec('a', 'COMMIT') AS _ \gset
-- A KEY SHARE lock on a row that another transaction has updated (not its key) also locks the new
-- version: Heap2/LOCK_UPDATED, and a multixact with an updater.
SELECT dblink_exec('a', 'BEGIN') AS _ \gset
SELECT dblink_exec('a', 'UPDATE h SET n = n + 1 WHERE id = 5') AS _ \gset
SELECT 1 AS _ FROM h WHERE id = 5 FOR KEY SHARE \gset
SELECT dblink_exec('a', 'COMMIT') AS _ \gset
-- COPY: Heap2/MULTI_INSERT(+INIT)
COPY hc FROM STDIN;
1	one
2	two
3	three
\.
COPY hc FROM STDIN;
4	four
5	five
\.
-- VACUUM FREEZE: Heap2 prune/vacuum/freeze records (names differ per major), VISIBLE, Heap/INPLACE
VACUUM FREEZE h;
SELECT 'heap' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- Btree (500-byte keys, 14 per leaf)
------------------------------------------------------------------------------------------------
INSERT INTO bt_root VALUES (16);               -- the root leaf splits: NEWROOT, SPLIT_R
-- bt: the dead keys (phase 1) fill the last leaves.
VACUUM bt;                                     -- VACUUM, MARK_PAGE_HALFDEAD, UNLINK_PAGE, META_CLEANUP
INSERT INTO bt VALUES (2001, 0);               -- an XID, so that the deleted pages become reusable
VACUUM bt;                                     -- the deleted pages go to the FSM
-- splits of full leaves, on reused pages: SPLIT_L, SPLIT_R, INSERT_UPPER, REUSE_PAGE
INSERT INTO bt VALUES (2, 0), (28, 0), (150, 0);
-- Simple deletion: kill index entries through an index scan, then insert into the full leaf.
DELETE FROM bt WHERE id IN (101, 103, 105, 107);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS _ FROM bt WHERE lpad(id::text, 500, '-') BETWEEN lpad('100', 500, '-') AND lpad('109', 500, '-') \gset
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO bt VALUES (102, 0), (104, 0);      -- DELETE (dead items go instead of a split)
-- Drain the left leaf of bt_root: its deletion leaves one page on the level (UNLINK_PAGE_META).
DELETE FROM bt_root WHERE id <= 15;
VACUUM bt_root;
-- Deduplication: btd's only leaf is full of equal keys built with deduplicate_items = off.
ALTER INDEX btd_k SET (deduplicate_items = on);
INSERT INTO btd VALUES (100, 1);               -- DEDUP
DELETE FROM btd WHERE id = 5;
VACUUM btd;                                    -- VACUUM updating a posting list
INSERT INTO btd VALUES (101, 1);               -- takes heap TID (0,5): posting list split, INSERT_POST
SELECT 'btree' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- Hash (hash_t: key 0's bucket page has room for 12 more entries; 10 tuples to the first split)
------------------------------------------------------------------------------------------------
INSERT INTO hash_t SELECT g, 0 FROM generate_series(2551, 2562) g;   -- INSERT; SPLIT_ALLOCATE_PAGE, SPLIT_PAGE, SPLIT_COMPLETE
DELETE FROM hash_t WHERE id <= 5;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
-- marks the deleted entries LP_DEAD
SELECT count(*) AS _ FROM hash_t WHERE k = 0 \gset
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO hash_t VALUES (2563, 0);           -- full page with dead entries: VACUUM_ONE_PAGE
INSERT INTO hash_t SELECT g, 0 FROM generate_series(2564, 2573) g;   -- ADD_OVFL_PAGE
DELETE FROM hash_t WHERE id BETWEEN 6 AND 8;
VACUUM hash_t;                                 -- DELETE, MOVE_PAGE_CONTENTS, SPLIT_CLEANUP, UPDATE_META_PAGE
DELETE FROM hash_t WHERE id BETWEEN 9 AND 13;
VACUUM hash_t;                                 -- SQUEEZE_PAGE
SELECT 'hash' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- GIN
------------------------------------------------------------------------------------------------
-- Flush gin_pend's pending list: CREATE_PTREE for key 1, INSERT, DELETE_LISTPAGE, UPDATE_META_PAGE
SELECT gin_clean_pending_list('gin_pend_a') AS _ \gset
INSERT INTO gin_pend VALUES (3001, ARRAY[1, 2]);   -- fastupdate: INSERT_LISTPAGE, UPDATE_META_PAGE
ALTER INDEX gin_pend_a SET (fastupdate = off);
INSERT INTO gin_pend VALUES (3002, ARRAY[1, 3]);   -- INSERT (posting tree leaf, entry leaf)
DELETE FROM gin_pend WHERE id <= 20;
VACUUM gin_pend;                               -- VACUUM_DATA_LEAF_PAGE, VACUUM_PAGE
-- gin_wide's root entry page overflows: SPLIT
INSERT INTO gin_wide VALUES (100, ARRAY[lpad('100', 480, '-'), lpad('101', 480, '-'), lpad('102', 480, '-')]);
SELECT 'gin' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- GiST (gist_t: the leaf holding (0,0) is one entry short of a split; dead far-away leaves)
------------------------------------------------------------------------------------------------
DELETE FROM gist_t WHERE id IN (-1, -2);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
-- marks the deleted entries LP_DEAD (a non-root leaf: GiST does not kill items on a root leaf)
SELECT count(*) AS _ FROM gist_t WHERE p <@ box '((0,0),(0,0))' \gset
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO gist_t VALUES (-1001, point(0, 0)), (-1002, point(0, 0));  -- full page with dead entries: DELETE
-- PAGE_UPDATE, PAGE_DELETE; the dead rows were the last heap pages: Storage/TRUNCATE
VACUUM gist_t;
INSERT INTO gist_t VALUES (-1003, point(19, 19));
VACUUM gist_t;                                 -- the deleted pages go to the FSM
INSERT INTO gist_t VALUES (-1004, point(0, 0)), (-1005, point(0, 0));  -- PAGE_SPLIT on a reused page: PAGE_REUSE
SELECT 'gist' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- SP-GiST
------------------------------------------------------------------------------------------------
INSERT INTO sp VALUES (66, chr(65 + 66 % 40) || lpad('66', 100, '-'));  -- PICKSPLIT, MOVE_LEAFS
INSERT INTO sp SELECT g, chr(65 + g % 40) || lpad(g::text, 100, '-') FROM generate_series(67, 68) g;  -- ADD_LEAF, MOVE_LEAFS
INSERT INTO sp VALUES (69, 'z');               -- a new first letter: ADD_NODE
DELETE FROM sp WHERE id <= 10;
VACUUM sp;                                     -- VACUUM_LEAF, VACUUM_REDIRECT (MOVE_LEAFS' redirects)
INSERT INTO sp_pfx VALUES (25, 'P' || repeat('-', 300) || '25');    -- PICKSPLIT (prefix 'P---...')
INSERT INTO sp_pfx VALUES (26, 'Q' || repeat('-', 300));           -- SPLIT_TUPLE, ADD_NODE
INSERT INTO sp_pfx VALUES (27, 'P' || repeat('-', 150) || 'z');    -- SPLIT_TUPLE
DELETE FROM sp_root WHERE t = 'a';
VACUUM sp_root;                                -- VACUUM_ROOT (the root is a leaf)
SELECT 'spgist' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- BRIN
------------------------------------------------------------------------------------------------
INSERT INTO br VALUES (5, 'x');                -- inside a summarized range: nothing or SAMEPAGE_UPDATE
UPDATE br SET id = -1000000 WHERE id = 1;      -- the summary grows: (SAMEPAGE_)UPDATE
INSERT INTO br SELECT g, 'x' FROM generate_series(41, 60) g;  -- new, unsummarized ranges
-- INSERT
SELECT brin_summarize_new_values('br_id') AS _ \gset
-- DESUMMARIZE
SELECT brin_desummarize_range('br_id', 0) AS _ \gset
SELECT brin_summarize_range('br_id', 0) AS _ \gset
INSERT INTO br_big VALUES (0, 'x');            -- heap page 1360 (the others are full)
-- REVMAP_EXTEND, INSERT+INIT
SELECT brin_summarize_range('br_big_i', 1360) AS _ \gset
SELECT 'brin' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- Generic WAL (bloom), sequence
------------------------------------------------------------------------------------------------
INSERT INTO h VALUES (8, 8, 0, 'eight'), (9, 9, 0, 'nine');   -- Generic
DELETE FROM h WHERE id = 8;
VACUUM h;                                      -- Generic
-- Sequence/LOG
SELECT nextval('seq') AS _ \gset
SELECT setval('seq', 1000) AS _ \gset
SELECT 'generic-sequence' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- Transactions, standby, logical messages, replication origins
------------------------------------------------------------------------------------------------
-- 70 subtransactions with XIDs: Transaction/ASSIGNMENT after 64, a COMMIT listing subxacts.
BEGIN;
INSERT INTO hc VALUES (10, 'top');
DO $$
BEGIN
    FOR i IN 1..70 LOOP
        BEGIN
            INSERT INTO hc VALUES (i, 'sub');
        EXCEPTION WHEN OTHERS THEN
            RAISE;
        END;
    END LOOP;
END
$$;
COMMIT;
BEGIN;
INSERT INTO hc VALUES (11, 'a');
SAVEPOINT s1;
INSERT INTO hc VALUES (12, 'b');
ROLLBACK TO SAVEPOINT s1;                      -- ABORT of a subtransaction
SAVEPOINT s2;
INSERT INTO hc VALUES (13, 'c');
RELEASE SAVEPOINT s2;
COMMIT;
BEGIN;
INSERT INTO hc VALUES (14, 'd');
ROLLBACK;                                      -- ABORT
BEGIN;
INSERT INTO hc VALUES (15, 'e');
PREPARE TRANSACTION 'wl_p1';                   -- PREPARE
COMMIT PREPARED 'wl_p1';                       -- COMMIT_PREPARED
BEGIN;
INSERT INTO hc VALUES (16, 'f');
PREPARE TRANSACTION 'wl_p2';
ROLLBACK PREPARED 'wl_p2';                     -- ABORT_PREPARED
BEGIN;
LOCK TABLE hc IN ACCESS EXCLUSIVE MODE;        -- Standby/LOCK
COMMIT;
\if :pg16
-- Standby/RUNNING_XACTS (also logged by every checkpoint)
SELECT pg_log_standby_snapshot() IS NULL AS _ \gset
\endif
SELECT pg_logical_emit_message(false, 'wl', 'non-transactional') IS NULL AS _ \gset
BEGIN;
SELECT pg_logical_emit_message(true, 'wl', 'transactional') IS NULL AS _ \gset
COMMIT;
SELECT pg_replication_origin_create('wl_origin') IS NULL AS _ \gset
SELECT pg_replication_origin_session_setup('wl_origin') IS NULL AS _ \gset
BEGIN;
SELECT pg_replication_origin_xact_setup('0/AB000000', '2000-01-01 00:00:00+00') IS NULL AS _ \gset
INSERT INTO hc VALUES (17, 'origin');
COMMIT;                                        -- a COMMIT carrying origin LSN and time
SELECT pg_replication_origin_session_reset() IS NULL AS _ \gset
-- ReplicationOrigin/SET, ReplicationOrigin/DROP
SELECT pg_replication_origin_advance('wl_origin', '0/AC000000') IS NULL AS _ \gset
SELECT pg_replication_origin_drop('wl_origin') IS NULL AS _ \gset
-- Heap/TRUNCATE (wal_level=logical), Storage/CREATE for the new relfilenodes
TRUNCATE hc;
SELECT 'xact-standby-logical-origin' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- MultiXact member page: 57 sessions pile FOR SHARE locks onto one row. Each new locker makes a
-- multixact of all lockers so far (2 + 3 + ... + 57 members), past the 1636 members of the first
-- member page: MultiXact/ZERO_MEM_PAGE.
------------------------------------------------------------------------------------------------
DO $$
BEGIN
    FOR i IN 1..57 LOOP
        PERFORM dblink_connect('m' || i, current_setting('wl.connstr'));
        PERFORM dblink_exec('m' || i, 'BEGIN');
        PERFORM * FROM dblink('m' || i, 'SELECT id FROM mx FOR SHARE') AS t(id int);
    END LOOP;
    FOR i IN 1..57 LOOP
        PERFORM dblink_exec('m' || i, 'COMMIT');
        PERFORM dblink_disconnect('m' || i);
    END LOOP;
END
$$;
SELECT 'multixact' AS section, :walmark;

------------------------------------------------------------------------------------------------
-- 2c (full_page_writes=off): SLRU truncation.
-- CommitTs/TRUNCATE needs every database's datfrozenxid past the first commit_ts segment (26208
-- XIDs; phase 1 burned past 32768), MultiXact/TRUNCATE_ID a datminmxid past the oldest multixact.
-- This database is frozen for real; the untouched template0 and template1 (frozen by initdb, but
-- with their initdb-time datfrozenxid) get their horizons set directly.
------------------------------------------------------------------------------------------------
ALTER SYSTEM SET full_page_writes = off;
SELECT pg_reload_conf() AS _ \gset
SELECT pg_sleep(1) AS _ \gset
\if :pg15
DROP DATABASE wl_wallog;                       -- Database/DROP
\endif
DROP DATABASE wl_tiny;
DROP TABLE br_big, gin_pend;                   -- big; no need to freeze them
-- phase 1's crashed session left its temp table behind (VACUUM skips it; its relfrozenxid is old)
DO $$
DECLARE r regclass;
BEGIN
    FOR r IN SELECT oid FROM pg_class WHERE relpersistence = 't' AND relkind = 'r' LOOP
        EXECUTE 'DROP TABLE ' || r;
    END LOOP;
END
$$;
UPDATE pg_database
   SET datfrozenxid = (txid_current() % 4294967296)::text::xid,
       datminmxid = ((datminmxid::text::bigint + mxid_age(datminmxid)) % 4294967296)::text::xid
 WHERE datname IN ('template0', 'template1');
VACUUM FREEZE;                                 -- CommitTs/TRUNCATE, MultiXact/TRUNCATE_ID
-- Rows whose hint bits phase 3 sets after a checkpoint (FPI_FOR_HINT).
INSERT INTO hint SELECT g, 'hint' FROM generate_series(1, 20) g;
ALTER SYSTEM SET full_page_writes = on;
SELECT pg_reload_conf() AS _ \gset
SELECT pg_sleep(1) AS _ \gset
SELECT 'freeze-truncate' AS section, :walmark;
