-- Phase 3: after a clean restart with a changed max_connections (CHECKPOINT_SHUTDOWN,
-- PARAMETER_CHANGE); full_page_writes=on. Ends with XLOG/SWITCH: the kept WAL ends with the
-- segment that holds it.
--
-- psql variable backup=1 adds a non-exclusive base backup (XLOG/BACKUP_END). Its start switches
-- segments as well, so it costs a second segment; make-testdata enables it for one major only.
\ir common.psql
SELECT 'phase3-start' AS section, :walmark;

-- the first OID after the restart: XLOG/NEXTOID
SELECT lo_create(0) IS NULL AS _ \gset
DROP TABLESPACE wl_ts;                         -- Tablespace/DROP
CHECKPOINT;                                    -- XLOG/CHECKPOINT_ONLINE (17+: CHECKPOINT_REDO too)
-- sets hint bits: XLOG/FPI_FOR_HINT
SELECT count(*) AS _ FROM hint \gset
-- XLOG/RESTORE_POINT
SELECT pg_create_restore_point('wl_restore_point') IS NULL AS _ \gset
-- A full-page image without compression.
SET wal_compression = off;
UPDATE h SET n = n + 1 WHERE id = 1;
RESET wal_compression;
SELECT 'phase3-misc' AS section, :walmark;

\if :backup
\if :pg15
SELECT pg_backup_start('wl_backup', true) IS NULL AS _ \gset
\else
SELECT pg_start_backup('wl_backup', true, false) IS NULL AS _ \gset
\endif
UPDATE h SET n = n + 1 WHERE id = 2;
\if :pg15
SELECT pg_backup_stop() IS NULL AS _ \gset
\else
SELECT pg_stop_backup(false) IS NULL AS _ \gset
\endif
\endif
-- XLOG/SWITCH (a no-op right after a backup's)
SELECT pg_switch_wal() IS NULL AS _ \gset
SELECT 'phase3-end' AS section, :walmark;
