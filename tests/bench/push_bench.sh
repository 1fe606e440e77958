#!/bin/bash
# Benchmark of the fleet database (prints figures, asserts nothing).
#
# 1. imgaudit push of the fragmented store of the layered-store benchmark
#    (scan_bench.sh part 3: 10 golden bases of 20,000 scattered 64 KiB
#    clusters, by fragbase.py with a fixed seed, 100 overlays each: 1,010
#    images) to an empty central database: rows and bytes sent, rows/s;
#    then the same push again (nothing to send).
# 2. The fleet: the store pushed as HOSTS hosts (default 20; copies of the
#    store database, each with its own identity, so each host's rows are sent
#    whole), then `imgaudit report --db postgresql://...` over the whole fleet
#    (JSON, every section) and for one host.
#
# The PostgreSQL server is a throw-away cluster (initdb in the work
# directory, as nobody when run as root, Unix socket only, fsync off: the
# figures are imgaudit's and the server's CPU, not the disk's).
#
# usage: push_bench.sh [IMGAUDIT]   env: BENCH_DIR (default: a temp dir),
#        BASES (10), CLUSTERS (20000), HOSTS (20), KEEP_STORE=1 (with
#        BENCH_DIR: reuse the store and store.db a previous run left there,
#        to compare two builds on the same data; the server is always new)
set -eu
IMGAUDIT=${1:-${IMGAUDIT:-imgaudit}}
IMGAUDIT=$(command -v "$IMGAUDIT" || echo "$IMGAUDIT")
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-pushbench.XXXXXX")}
BASES=${BASES:-10}
CLUSTERS=${CLUSTERS:-20000}
HOSTS=${HOSTS:-20}
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGD=$WORK/pg
as_pg() {
	if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; else "$@"; fi
}
cleanup() {
	[ -f "$PGD/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGD/data" -w -s -m immediate stop
	[ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
chmod 711 "$WORK"
cd "$WORK"
now() { date +%s.%N; }

rm -rf "$PGD" h[0-9]*.db
mkdir -p "$PGD"
[ "$(id -u)" = 0 ] && chown nobody:nogroup "$PGD"
as_pg "$PGBIN/initdb" -D "$PGD/data" -U admin -A trust --locale=C.UTF-8 --encoding=UTF8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w -s \
	-o "-c listen_addresses='' -c unix_socket_directories=$PGD -c fsync=off -c synchronous_commit=off" start
psql "host=$PGD user=admin dbname=postgres" -X -q -c "CREATE DATABASE fleet"
CONN="host=$PGD user=admin dbname=fleet"

if [ "${KEEP_STORE:-}" = 1 ] && [ -n "${BENCH_DIR:-}" ] && [ -s store.db ] && [ -d store/bases ]; then
	echo "reusing the store of a previous run in $WORK"
else
echo "building the store: $BASES bases x $CLUSTERS scattered clusters x 100 overlays ..."
rm -rf store store.db* && mkdir -p store/bases
for b in $(seq -w 1 "$BASES"); do
	python3 "$BENCH_SRC/fragbase.py" "store/bases/base$b.qcow2" "$CLUSTERS" "$((10#$b))"
	mkdir -p "store/vm$b"
	for v in 1 2 3 4 5; do
		qemu-img create -q -f qcow2 -b ../bases/base$b.qcow2 -F qcow2 "store/vm$b/t$v.qcow2"
		qemu-io -c "write -P $v $((v * 64))M 64k" -c "write -P 9 $((v * 300))M 128k" \
			"store/vm$b/t$v.qcow2" >/dev/null
	done
	for i in $(seq -w 1 100); do
		cp "store/vm$b/t$(((10#$i % 5) + 1)).qcow2" "store/vm$b/ov$i.qcow2"
	done
	rm store/vm$b/t?.qcow2
done
find store -type f -exec touch -m -d "@$(($(date +%s) - 86400))" {} +
"$IMGAUDIT" scan --db store.db --quiet store
fi
echo "  $(sqlite3 store.db 'SELECT count(*) FROM images') images; local rows: $(sqlite3 store.db \
	"SELECT (SELECT count(*) FROM layer_runs) || ' layer_runs, ' || (SELECT count(*) FROM pieces) || ' pieces, ' || (SELECT count(*) FROM v_map) || ' v_map rows'")"
"$IMGAUDIT" pg-migrate --to "$CONN" >/dev/null

echo
echo "== 1. push of one store =="
t0=$(now)
"$IMGAUDIT" push --db store.db --to "$CONN" --host h01 | tail -1
t1=$(now)
echo "  wall time $(echo "$t1 - $t0" | bc) s (connect, migrate check, read the ids, COPY, commit)"
t0=$(now)
"$IMGAUDIT" push --db store.db --to "$CONN" --host h01 | tail -1
t1=$(now)
echo "  again, nothing to send: $(echo "$t1 - $t0" | bc) s"

echo
echo "== 2. a fleet of $HOSTS hosts =="
t0=$(now)
for h in $(seq -w 2 "$HOSTS"); do
	cp store.db h$h.db
	sqlite3 h$h.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-0000000000$h'"
	"$IMGAUDIT" push --db h$h.db --to "$CONN" --host h$h --quiet
done
t1=$(now)
echo "  $((HOSTS - 1)) more hosts pushed in $(echo "$t1 - $t0" | bc) s"
echo "  central database: $(psql "$CONN" -X -At -c "SELECT pg_size_pretty(pg_database_size('fleet'))"), $(psql "$CONN" -X -At -c "SELECT count(*) FROM images") images, $(psql "$CONN" -X -At -c "SELECT count(*) FROM layer_runs") layer_runs"
t0=$(now)
"$IMGAUDIT" report --db "$CONN" --format json -o fleet.json
t1=$(now)
echo "  fleet report (JSON, all sections, $HOSTS hosts): $(echo "$t1 - $t0" | bc) s, $(stat -c %s fleet.json) bytes"
t0=$(now)
"$IMGAUDIT" report --db "$CONN" --format human -o fleet.txt
t1=$(now)
echo "  fleet report (human): $(echo "$t1 - $t0" | bc) s"
t0=$(now)
"$IMGAUDIT" report --db "$CONN" --host h07 --format json -o one.json
t1=$(now)
echo "  one host's report from PostgreSQL: $(echo "$t1 - $t0" | bc) s"
t0=$(now)
"$IMGAUDIT" report --db store.db --format json -o local.json
t1=$(now)
echo "  the same report from the local SQLite store: $(echo "$t1 - $t0" | bc) s"
t0=$(now)
psql "$CONN" -X -At -c "SELECT host, images, allocated_bytes FROM v_fleet_hosts" >/dev/null
psql "$CONN" -X -At -c "SELECT * FROM v_fleet_bases" >bases.txt
t1=$(now)
echo "  v_fleet_hosts + v_fleet_bases: $(echo "$t1 - $t0" | bc) s ($(wc -l <bases.txt) bases on several hosts)"
