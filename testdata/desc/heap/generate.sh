#!/bin/bash
# Regenerates testdata/desc/heap/<MAJOR>/: runs workload.sql on a fresh cluster of that major and
# keeps the start of the WAL segment it wrote (wal.zst) and the Heap/Heap2 lines of the reference
# pg_waldump's output for it (waldump.txt.zst). Run as root; servers run as the postgres user.
# usage: generate.sh MAJOR   (binaries from scripts/install-postgres in /var/cache/pgwal/pg)
set -euo pipefail
v=$1
here=$(cd "$(dirname "$0")" && pwd)
pg=/var/cache/pgwal/pg; bin=$pg/server/$v/bin; psql=$pg/tools/bin/psql
work=$(mktemp -d); chown postgres "$work"
data=$work/data; sock=$work; port=$((56400 + v))
trap 'runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
runuser -u postgres -- "$bin/initdb" -U postgres -D "$data" -A trust >/dev/null
cat >> "$data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$sock'
wal_level = logical
full_page_writes = off
autovacuum = off
max_wal_size = 1GB
checkpoint_timeout = 1h
fsync = off
CONF
runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$work/log" -w start >/dev/null
conn=(-h "$sock" -p "$port" -U postgres -d postgres)
"$psql" "${conn[@]}" -qAt -c "SELECT pg_switch_wal()" >/dev/null
"$psql" "${conn[@]}" -qAt -c "CHECKPOINT" >/dev/null
seg=$("$psql" "${conn[@]}" -qAt -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
"$psql" "${conn[@]}" -q -f "$here/workload.sql" >/dev/null 2>&1
bash "$here/lock_updated.sh" "$psql" "${conn[@]}"
"$psql" "${conn[@]}" -qAt -c "VACUUM h" -c "VACUUM pg_class" >/dev/null
end=$("$psql" "${conn[@]}" -qAt -c "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
[ "$seg" = "$end" ] || { echo "workload spans $seg..$end; expected one segment" >&2; exit 1; }
"$psql" "${conn[@]}" -qAt -c "SELECT pg_switch_wal()" >/dev/null
sleep 1
cp "$data/pg_wal/$seg" "$work/$seg"
if [ "$v" = 14 ]; then
  # No pg_waldump 14 exists: 15's reads the WAL rewritten to 15's page magic and image flags.
  mkdir "$work/as15"
  python3 "$here/wal14to15.py" "$work/$seg" "$work/as15/$seg"
  "$pg/waldump/15/pg_waldump" "$work/as15/$seg" > "$work/dump"
else
  "$pg/waldump/$v/pg_waldump" "$work/$seg" > "$work/dump"
fi
# Keep the segment up to the page holding the end of the final XLOG SWITCH record.
last=$(tail -1 "$work/dump" | grep -o 'lsn: [0-9A-F]*/[0-9A-F]*' | cut -d/ -f2)
bytes=$(( ((0x$last & 0xFFFFFF) + 24 + 8191) / 8192 * 8192 ))
mkdir -p "$here/$v"
head -c "$bytes" "$work/$seg" | zstd -19 -q -f -o "$here/$v/wal.zst"
grep '^rmgr: Heap' "$work/dump" | zstd -19 -q -f -o "$here/$v/waldump.txt.zst"
echo "major $v: $(grep -c '^rmgr: Heap' "$work/dump") Heap/Heap2 records"
