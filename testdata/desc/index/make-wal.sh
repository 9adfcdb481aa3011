#!/bin/bash
# Writes WAL with a server of one major and the reference pg_waldump output for it, for the
# desc::nbtree::golden tests (run as root: the server runs as the postgres OS user).
#
#   make-wal.sh MAJOR N SQL OUTDIR [postgresql.conf lines...]
#
# OUTDIR gets the WAL segments (1 MB) of the run and waldump.txt. For 14, which has no reference
# pg_waldump, waldump.txt comes from pg_waldump 15 on a copy translated by wal14to15.py.
set -euo pipefail
M=$1 N=$2 SQL=$(readlink -f "$3") OUT=$4; shift 4
PG=${PGWAL_PG_DIR:-/var/cache/pgwal/pg}
HERE=$(dirname "$(readlink -f "$0")")
DATA=$(mktemp -d); PORT=$((56400 + M))
mkdir -p "$OUT"; chown postgres "$DATA" "$OUT"; chmod 755 "$DATA"
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$PG/server/$M/bin/initdb" -D "$DATA/pgdata" --wal-segsize=1 -A trust -U postgres >/dev/null
{ echo "port = $PORT"; echo "listen_addresses = ''"; echo "unix_socket_directories = '$DATA'"
  echo "autovacuum = off"; echo "max_wal_size = 1GB"; echo "wal_keep_size = 1GB"
  for line in "$@"; do echo "$line"; done; } >> "$DATA/pgdata/postgresql.conf"
as_pg "$PG/server/$M/bin/pg_ctl" -D "$DATA/pgdata" -l "$DATA/log" -w start >/dev/null
as_pg "$PG/tools/bin/psql" -h "$DATA" -p "$PORT" -U postgres -d postgres -q -v n="$N" -f "$SQL" >/dev/null
as_pg "$PG/server/$M/bin/pg_ctl" -D "$DATA/pgdata" -m fast -w stop >/dev/null
cp "$DATA"/pgdata/pg_wal/0* "$OUT"/
rm -rf "$DATA"
segs=$(ls "$OUT" | grep -E '^[0-9A-F]{24}$')
first=$(echo "$segs" | head -1); last=$(echo "$segs" | tail -1)
if [ "$M" = 14 ]; then
  tmp=$(mktemp -d); python3 "$HERE/wal14to15.py" "$OUT" "$tmp"
  "$PG/waldump/15/pg_waldump" -p "$tmp" "$first" "$last" > "$OUT/waldump.txt" 2>/dev/null || true
  rm -rf "$tmp"
else
  "$PG/waldump/$M/pg_waldump" -p "$OUT" "$first" "$last" > "$OUT/waldump.txt" 2>/dev/null || true
fi
echo "$OUT: $(grep -c '' "$OUT/waldump.txt") records"
