#!/bin/bash
# Regenerates testdata/desc/misc/<MAJOR>/ for the XLOG, Transaction, Storage, CLOG, Database,
# Tablespace, MultiXact, RelMap, Standby, CommitTs, ReplicationOrigin and LogicalMessage
# descriptions: runs workload.sql (plus concurrent sessions, a full_page_writes toggle, a restart
# with a changed parameter and a promotion) on a fresh cluster of that major, keeps the WAL
# segment of timeline 2 that holds it all (wal.zst, cut after the page that ends its final
# XLOG SWITCH) and those resource managers' lines of the reference pg_waldump output
# (waldump.txt.zst). Run as root; servers run as the postgres user.
# usage: generate.sh MAJOR   (binaries from scripts/install-postgres in /var/cache/pgwal/pg)
#
# No pg_waldump 14 exists: 14 runs with wal_level = replica (so that its WAL has no top-level
# xid fragments) and pg_waldump 13 reads it with the page magic rewritten to 13's; 13 and 14
# describe these records alike except LogicalMessage, taken from pg_waldump 15 on the WAL
# rewritten by ../heap/wal14to15.py (14 and 15 describe it alike), and tablespace paths
# (PG_14_<catversion>), whose lines are left out.
set -euo pipefail
v=$1
here=$(cd "$(dirname "$0")" && pwd)
pg=/var/cache/pgwal/pg; bin=$pg/server/$v/bin; psql=$pg/tools/bin/psql
work=$(mktemp -d); chown postgres "$work"; chmod 755 "$work"
data=$work/data; stby=$work/stby; sock=$work; port=$((56500 + v))
as() { runuser -u postgres -- "$@"; }
trap 'as "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
      as "$bin/pg_ctl" -D "$stby" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
as mkdir "$work/ts"
as "$bin/initdb" -U postgres -D "$data" -A trust >/dev/null
level=logical; compress=on
# (14: wal14to15.py does not handle compressed images)
[ "$v" = 14 ] && { level=replica; compress=off; }
cat >> "$data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$sock'
wal_level = $level
max_prepared_transactions = 10
track_commit_timestamp = on
wal_log_hints = on
wal_compression = $compress
autovacuum = off
max_wal_size = 1GB
wal_keep_size = 1GB
checkpoint_timeout = 1h
fsync = off
CONF
as "$bin/pg_ctl" -D "$data" -l "$work/log" -w start >/dev/null
q() { as "$psql" -X -q -h "$sock" -p "$port" -U postgres -d postgres "$@"; }
q -c "CREATE TABLE sx (a int)"
q -Atc "SELECT pg_switch_wal()" >/dev/null
q -c "CHECKPOINT"
seg=$(q -Atc "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
# Standby RUNNING_XACTS with an overflowed subxid cache (and Transaction ASSIGNMENT), then with
# a few subtransactions (listed from 16).
sub() { # N: a transaction with N subtransactions held open across a checkpoint
  { echo "BEGIN;"; for i in $(seq 1 "$1"); do echo "SAVEPOINT s$i; INSERT INTO sx VALUES ($i);"; done
    echo "SELECT pg_sleep(3); COMMIT;"; } | q >/dev/null &
  sleep 1.5; q -c "CHECKPOINT"; wait
}
sub 70; sub 2
q -v tsdir="$work/ts" -f "$here/workload.sql" >/dev/null 2>&1
# MultiXact CREATE_ID with two lockers and an updater
q -c "BEGIN; SELECT 1 FROM mx WHERE id = 1 FOR KEY SHARE; SELECT pg_sleep(2); COMMIT" >/dev/null &
q -c "BEGIN; SELECT 1 FROM mx WHERE id = 1 FOR SHARE; SELECT pg_sleep(2); COMMIT" >/dev/null &
sleep 0.5; q -c "UPDATE mx SET v = 5 WHERE id = 1" >/dev/null; wait
# XLOG FPW_CHANGE (the checkpointer logs it when it reloads), then PARAMETER_CHANGE across a
# restart
for fpw in off on; do
  q -c "ALTER SYSTEM SET full_page_writes = $fpw" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 1
done
q -c "ALTER SYSTEM SET max_connections = 42"
as "$bin/pg_ctl" -D "$data" -m fast -w restart >/dev/null
end=$(q -Atc "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
[ "$seg" = "$end" ] || { echo "workload spans $seg..$end; expected one segment" >&2; exit 1; }
as "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
# XLOG END_OF_RECOVERY: promote a copy; its timeline 2 segment starts with timeline 1's WAL.
as cp -a "$data" "$stby"
as touch "$stby/standby.signal"
as "$bin/pg_ctl" -D "$stby" -l "$work/stby.log" -w start >/dev/null
as "$bin/pg_ctl" -D "$stby" -w promote >/dev/null
sleep 1
q -c "CREATE TABLE after_promote (a int)" -c "SELECT pg_switch_wal()" >/dev/null
sleep 1
as "$bin/pg_ctl" -D "$stby" -m fast -w stop >/dev/null
seg2=00000002${seg:8}
cp "$stby/pg_wal/$seg2" "$work/$seg2"
mine='^rmgr: (XLOG|Transaction|Storage|CLOG|Database|Tablespace|MultiXact|RelMap|Standby|CommitTs|ReplicationOrigin|LogicalMessage) '
if [ "$v" = 14 ]; then
  mkdir "$work/as13" "$work/as15"
  python3 - "$work/$seg2" "$work/as13/$seg2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
for p in range(0, len(d), 8192):
    if struct.unpack_from('<H', d, p)[0] == 0xD10D:
        struct.pack_into('<H', d, p, 0xD106)
open(sys.argv[2], 'wb').write(d)
PY
  python3 "$here/../heap/wal14to15.py" "$work/$seg2" "$work/as15/$seg2" 2>/dev/null
  "$pg/waldump/13/pg_waldump" "$work/as13/$seg2" > "$work/dump13" || true
  # (-r: 15 would misread 14's PREPARE records, whose header lacks the stats counts)
  "$pg/waldump/15/pg_waldump" -r LogicalMessage "$work/as15/$seg2" > "$work/dump15" || true
  { grep -E "$mine" "$work/dump13" | grep -v '^rmgr: LogicalMessage' | grep -v 'pg_tblspc/'
    grep '^rmgr: LogicalMessage' "$work/dump15"; } > "$work/mine.unordered"
  cp "$work/dump13" "$work/dump"
  # back in WAL order (one segment: the low LSN word orders it)
  python3 - "$work/mine.unordered" > "$work/mine" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
key = lambda l: int(re.search(r'lsn: [0-9A-F]+/([0-9A-F]+)', l).group(1), 16)
print('\n'.join(sorted(lines, key=key)))
PY
else
  "$pg/waldump/$v/pg_waldump" "$work/$seg2" > "$work/dump" || true
  grep -E "$mine" "$work/dump" > "$work/mine"
fi
# Keep the segment up to the page holding the end of the final XLOG SWITCH record.
last=$(grep 'desc: SWITCH' "$work/dump" | tail -1 | grep -o 'lsn: [0-9A-F]*/[0-9A-F]*' | cut -d/ -f2)
bytes=$(( ((0x$last & 0xFFFFFF) + 24 + 8191) / 8192 * 8192 ))
mkdir -p "$here/$v"
head -c "$bytes" "$work/$seg2" | zstd --ultra -22 -q -f -o "$here/$v/wal.zst"
zstd -19 -q -f "$work/mine" -o "$here/$v/waldump.txt.zst"
echo "major $v: $(wc -l < "$work/mine") records, wal.zst $(stat -c %s "$here/$v/wal.zst") bytes"
