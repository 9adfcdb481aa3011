#!/bin/bash
# LOCK_UPDATED: lock a row whose newer version an open transaction has made.
# usage: lock_updated.sh PSQL [psql connection options...]
psql=$1; shift
"$psql" "$@" -qAt -c "BEGIN; UPDATE h SET v = 'w' WHERE id = 80; SELECT pg_sleep(2); COMMIT;" >/dev/null &
sleep 0.7
"$psql" "$@" -qAt -c "SELECT id FROM h WHERE id = 80 FOR KEY SHARE;" >/dev/null
wait
