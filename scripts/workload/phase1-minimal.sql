-- Phase 1: wal_level=minimal, max_wal_senders=0, full_page_writes=off (set by the caller for the
-- first start).
--
-- Almost all DDL of the workload happens here, where catalog changes cost no full-page images:
-- phase 2 (full_page_writes=on after a checkpoint) would image every catalog page it touches.
-- Bulk data is written without WAL at all: a table created in the same transaction as its data
-- skips WAL under wal_level=minimal (wal_skip_threshold=0 makes the commit fsync the files
-- instead). Rows inserted by a rolled-back subtransaction are dead on arrival, so phase 2's VACUUM
-- finds whole index pages to delete without logging DELETEs first.
--
-- Also here: GiST ASSIGN_LSN (written only for WAL-skipped GiST indexes, 13+), and an XID burn up
-- to the next CLOG page (32768 XIDs per page) inside one transaction that never ends:
-- subtransaction XIDs spent on a temp table need no WAL under wal_level=minimal (no ASSIGNMENT
-- records), and the crash at the end means no commit/abort record lists them. That yields
-- CLOG/ZEROPAGE and CommitTs/ZEROPAGE records for about 40 bytes of WAL each.
\ir common.psql

-- The kept WAL starts with a fresh segment; initdb's WAL stays in the earlier ones.
SELECT pg_switch_wal() IS NULL AS _ \gset
SELECT 'phase1-start' AS section, :walmark;

-- Objects for phase 2.
-- The four dblink functions used (CREATE EXTENSION dblink would create ~45).
CREATE FUNCTION dblink_connect(text, text) RETURNS text AS 'dblink', 'dblink_connect' LANGUAGE C STRICT;
CREATE FUNCTION dblink_disconnect(text) RETURNS text AS 'dblink', 'dblink_disconnect' LANGUAGE C STRICT;
CREATE FUNCTION dblink(text, text) RETURNS SETOF record AS 'dblink', 'dblink_record' LANGUAGE C STRICT;
CREATE FUNCTION dblink_exec(text, text) RETURNS text AS 'dblink', 'dblink_exec' LANGUAGE C STRICT;
CREATE EXTENSION bloom;                        -- its index AM writes Generic WAL
CREATE SEQUENCE seq;
-- fillfactor 10: on-access pruning starts once a page is 10% full.
CREATE TABLE h (id int PRIMARY KEY, k int, n int, v text) WITH (fillfactor = 10, autovacuum_enabled = off);
CREATE INDEX h_k ON h (k);
CREATE INDEX h_bloom ON h USING bloom (k, n);
CREATE TABLE hc (id int, t text) WITH (autovacuum_enabled = off);
CREATE TABLE mx (id int) WITH (autovacuum_enabled = off);
INSERT INTO mx VALUES (1);
CREATE TABLE hint (id int, t text) WITH (autovacuum_enabled = off);
CREATE TABLE br (id int, pad text) WITH (fillfactor = 10, autovacuum_enabled = off);
INSERT INTO br SELECT g, 'x' FROM generate_series(1, 40) g;
-- A root-is-leaf SP-GiST index with one dead entry (VACUUM_ROOT).
CREATE TABLE sp_root (t text) WITH (autovacuum_enabled = off);
CREATE INDEX sp_root_t ON sp_root USING spgist (t);
INSERT INTO sp_root VALUES ('a'), ('b');
SELECT 'phase1-ddl' AS section, :walmark;

-- CREATE DATABASE with the file-copy strategy (the only one before 15): Database/CREATE or
-- CREATE_FILE_COPY, two checkpoints. Phase 2 copies it with the WAL_LOG strategy (15+), which logs
-- every page of every relation listed in the source's pg_class (1.3-4 MB for a stock database), so
-- its pg_class is emptied here first, but for pg_class's own row. Nobody connects to it after that.
\if :pg15
CREATE DATABASE wl_tiny TEMPLATE template0 STRATEGY file_copy;
SELECT dblink_exec(:'connstr' || ' dbname=wl_tiny', 'DELETE FROM pg_class WHERE relname <> ''pg_class''') AS _ \gset
\else
CREATE DATABASE wl_tiny TEMPLATE template0;
\endif
SELECT 'phase1-database' AS section, :walmark;

SELECT current_setting('data_directory') || '/wl_bulk.copy' AS copyfile \gset
SET wal_skip_threshold = 0;
BEGIN;
-- Heap page exactly full of 226 rows: any update must move to a new page (UPDATE+INIT).
CREATE TABLE hfull (id int) WITH (autovacuum_enabled = off);
INSERT INTO hfull SELECT g FROM generate_series(1, 226) g;

-- GIN with a pending list of 3000 rows (fastupdate): phase 2 flushes it, building a posting tree
-- for key 1 (CREATE_PTREE).
-- (The two large tables are loaded with COPY FREEZE from a file in the data directory: frozen
-- rows need no freezing later, which before 16 costs ~12 bytes of WAL per row.)
CREATE TABLE gin_pend (id int, a int[]) WITH (autovacuum_enabled = off);
CREATE INDEX gin_pend_a ON gin_pend USING gin (a) WITH (fastupdate = on);
COPY (SELECT g, ARRAY[1, 2 + g % 50] FROM generate_series(1, 3000) g) TO :'copyfile';
COPY gin_pend FROM :'copyfile' WITH (FREEZE);

-- GIN whose root entry page holds 14 480-byte keys (16 fit).
CREATE TABLE gin_wide (id int, a text[]) WITH (autovacuum_enabled = off);
INSERT INTO gin_wide SELECT g, ARRAY[lpad(g::text, 480, '-')] FROM generate_series(1, 14) g;
CREATE INDEX gin_wide_a ON gin_wide USING gin (a) WITH (fastupdate = off);

-- Hash: created on the empty table it gets 64 buckets (split threshold 64 * 40 = 2560 tuples with
-- fillfactor 10). Key 0's bucket page holds its 350 entries plus 45 others (407 fit).
CREATE TABLE hash_t (id int, k int) WITH (autovacuum_enabled = off);
CREATE INDEX hash_t_k ON hash_t USING hash (k) WITH (fillfactor = 10);
COPY (SELECT g, CASE WHEN g <= 350 THEN 0 ELSE g END FROM generate_series(1, 2550) g) TO :'copyfile';
COPY hash_t FROM :'copyfile' WITH (FREEZE);

-- Btree with 500-byte keys (14 per leaf; below the 512-byte index compression threshold), filled in
-- key order with fillfactor 100 (full leaves); the last 61 keys are dead (page deletion).
CREATE TABLE bt (id int NOT NULL, v int) WITH (autovacuum_enabled = off);
CREATE INDEX bt_wide ON bt (lpad(id::text, 500, '-')) WITH (fillfactor = 100);
INSERT INTO bt SELECT g, g FROM generate_series(1, 300, 2) g;
SAVEPOINT dead;
INSERT INTO bt SELECT g, g FROM generate_series(1000, 1060) g;
ROLLBACK TO SAVEPOINT dead;
-- Root-is-leaf btree with 15 wide keys: one more insert splits the root (NEWROOT).
CREATE TABLE bt_root (id int) WITH (autovacuum_enabled = off);
INSERT INTO bt_root SELECT g FROM generate_series(1, 15) g;
CREATE INDEX bt_root_i ON bt_root (lpad(id::text, 500, '-')) WITH (fillfactor = 100);
-- Btree whose only leaf holds 19 equal 400-byte keys, built without deduplication (20 do not fit).
CREATE TABLE btd (id int, k int) WITH (autovacuum_enabled = off);
INSERT INTO btd SELECT g, 1 FROM generate_series(1, 19) g;
CREATE INDEX btd_k ON btd (lpad(k::text, 400, '-')) WITH (fillfactor = 100, deduplicate_items = off);

-- GiST over points (0,0)..(19,19), then 200 rows far away whose insert is rolled back: they fill
-- leaves of their own, which phase 2's VACUUM deletes (PAGE_DELETE). Each insert into the
-- WAL-skipped index needs a fake LSN: GiST/ASSIGN_LSN. Then the leaf holding (0,0) is filled
-- with copies of (0,0) up to one entry short of a split; the count comes from a probe on a temp
-- copy (no WAL), so it holds for any build algorithm (14+ sort the points; 13 inserts them).
CREATE TABLE gist_t (id int, p point) WITH (autovacuum_enabled = off);
INSERT INTO gist_t SELECT g, point(g % 20, g / 20) FROM generate_series(0, 399) g;
CREATE INDEX gist_t_p ON gist_t USING gist (p) WITH (fillfactor = 100);
SAVEPOINT dead;
INSERT INTO gist_t SELECT g, point(1000 + g % 20, 1000 + g / 20) FROM generate_series(1000, 1199) g;
ROLLBACK TO SAVEPOINT dead;
CREATE TEMP TABLE gist_probe (id int, p point);
INSERT INTO gist_probe SELECT g, point(g % 20, g / 20) FROM generate_series(0, 399) g;
CREATE INDEX gist_probe_p ON gist_probe USING gist (p) WITH (fillfactor = 100);
DO $$
DECLARE
    size bigint := pg_relation_size('gist_probe_p');
    n int := 0;
BEGIN
    LOOP
        INSERT INTO gist_probe VALUES (-1, point(0, 0));
        EXIT WHEN pg_relation_size('gist_probe_p') > size;
        n := n + 1;
    END LOOP;
    INSERT INTO gist_t SELECT -g, point(0, 0) FROM generate_series(1, n) g;
END
$$;
DROP TABLE gist_probe;

-- SP-GiST (text): 65 strings under 40 different first letters fill the root leaf page; the next
-- insert splits it into 40 small leaf chains on one page, where later inserts move chains
-- (MOVE_LEAFS).
CREATE TABLE sp (id int, t text) WITH (autovacuum_enabled = off);
CREATE INDEX sp_t ON sp USING spgist (t);
INSERT INTO sp SELECT g, chr(65 + g % 40) || lpad(g::text, 100, '-') FROM generate_series(1, 65) g;
-- SP-GiST (text): 24 strings with a 301-byte common prefix fill the root leaf page; its split
-- makes an inner tuple with that prefix, which later inserts split (SPLIT_TUPLE).
CREATE TABLE sp_pfx (id int, t text) WITH (autovacuum_enabled = off);
CREATE INDEX sp_pfx_t ON sp_pfx USING spgist (t);
INSERT INTO sp_pfx SELECT g, 'P' || repeat('-', 300) || g FROM generate_series(1, 24) g;

-- BRIN, one range per page, built empty over a heap that then grows to 1360 full pages (ranges
-- stay unsummarized): summarizing range 1360 in phase 2 needs a second revmap page (REVMAP_EXTEND).
CREATE TABLE br_big (id int, pad text) WITH (autovacuum_enabled = off);
ALTER TABLE br_big ALTER COLUMN pad SET STORAGE PLAIN;
CREATE INDEX br_big_i ON br_big USING brin (id) WITH (pages_per_range = 1);
INSERT INTO br_big SELECT g, repeat('x', 8100) FROM generate_series(1, 1360) g;
COMMIT;
SELECT 'phase1-bulk' AS section, :walmark;

-- Set hint bits and mark pages all-visible while full_page_writes is off (hint bits then cost
-- only small FPI_FOR_HINT records without an image), so that phase 2's VACUUMs and reads do not
-- log a full-page image of every page. INDEX_CLEANUP
-- off keeps the GIN pending list and the dead btree and GiST entries for phase 2.
VACUUM h, hc, mx, br, sp_root, hfull, gin_wide, hash_t, bt_root, btd, sp, sp_pfx;
VACUUM (INDEX_CLEANUP FALSE) gin_pend, bt, gist_t;
CREATE TEMP TABLE burn (i int);
-- Set the hint bits of every catalog tuple now, for the same reason: otherwise phase 2's first
-- read of each catalog page would log an FPI_FOR_HINT with a full image.
DO $$
DECLARE r regclass;
BEGIN
    FOR r IN SELECT oid FROM pg_class WHERE relkind IN ('r', 't')
             AND relnamespace IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace) LOOP
        EXECUTE 'SELECT count(*) FROM ' || r;
    END LOOP;
END
$$;
SELECT 'phase1-vacuum' AS section, :walmark;

-- Settings for the next start (ALTER SYSTEM cannot run inside a transaction block).
ALTER SYSTEM SET wal_level = logical;
ALTER SYSTEM SET max_wal_senders = 10;

-- XID burn. Each plpgsql exception block is a subtransaction that gets an XID by inserting into a
-- temp table (no WAL). The subtransaction XID locks stay until top-level end, hence the raised
-- max_locks_per_transaction in the base configuration.
BEGIN;
DO $$
DECLARE
    n bigint := (txid_current() / 32768 + 1) * 32768 + 4 - txid_current();
BEGIN
    FOR i IN 1..n LOOP
        BEGIN
            INSERT INTO burn VALUES (i);
        EXCEPTION WHEN OTHERS THEN
            RAISE;
        END;
    END LOOP;
END
$$;
SELECT 'phase1-burn' AS section, :walmark;
-- Flush everything (the checkpoint record carries the new nextXid), then crash with the
-- transaction still open.
CHECKPOINT;
\! "$PGWL_DRIVER" crash
