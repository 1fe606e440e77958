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
# measure CMD...: W wall seconds, C its CPU seconds (with its children: a
# report's workers), S the server's CPU seconds (the backends that ended
# meanwhile, from the postmaster's children times).  On a loaded machine
# the CPU seconds are the figures to compare: the wall time depends on the
# other jobs.
TCK=$(getconf CLK_TCK)
srv_ticks() { awk '{print $16 + $17}' "/proc/$(head -1 "$PGD/data/postmaster.pid")/stat"; }
measure() {
	local s0 s1 t0 t1
	s0=$(srv_ticks)
	t0=$(now)
	{ time "$@" 2>&3; } 3>&2 2>"$WORK/cpu.txt"
	t1=$(now)
	sleep 0.3
	s1=$(srv_ticks)
	W=$(echo "$t1 - $t0" | bc)
	C=$(awk '{print $1 + $2}' "$WORK/cpu.txt")
	S=$(echo "scale=2; ($s1 - $s0) / $TCK" | bc)
}
TIMEFORMAT='%3U %3S'
cpu() { echo "CPU: imgaudit $C s, server $S s"; }

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
	"SELECT (SELECT count(*) FROM layer_runs) || ' layer_runs, ' || (SELECT count(*) FROM pieces) || ' pieces'")"
"$IMGAUDIT" pg-migrate --to "$CONN" >/dev/null

echo
echo "== 1. push of one store =="
measure "$IMGAUDIT" push --db store.db --to "$CONN" --host h01 >push.out
tail -1 push.out
rows=$(sed -n 's/.*; \([0-9]*\) rows,.*/\1/p' push.out | tail -1)
echo "  wall time $W s (connect, migrate check, read the ids, COPY, commit); $(cpu)"
echo "  CPU-bound rate (rows / the busier side's CPU seconds: client and server each on a core of an idle machine): $(awk -v r="$rows" -v c="$C" -v s="$S" 'BEGIN { m = (c + 0 > s + 0) ? c : s; printf "%d", (m > 0) ? r / m : 0 }') rows/s"
measure "$IMGAUDIT" push --db store.db --to "$CONN" --host h01 >push.out
tail -1 push.out
echo "  again, nothing to send: $W s"

echo "== 2. a fleet of $HOSTS hosts =="
t0=$(now)
for h in $(seq -f %02g 2 "$HOSTS"); do
	cp store.db h$h.db
	sqlite3 h$h.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-0000000000$h'"
done
push_all() {
	for h in $(seq -f %02g 2 "$HOSTS"); do
		"$IMGAUDIT" push --db h$h.db --to "$CONN" --host h$h --quiet
	done
}
measure push_all
echo "  $((HOSTS - 1)) more hosts pushed in $W s; $(cpu)"
packed=
[ "$(psql "$CONN" -X -At -c "SELECT to_regclass('layer_runs_packed') IS NOT NULL")" = t ] &&
	packed=" in $(psql "$CONN" -X -At -c "SELECT count(*) FROM layer_runs_packed") packed rows"
echo "  central database: $(psql "$CONN" -X -At -c "SELECT pg_size_pretty(pg_database_size('fleet'))"), $(psql "$CONN" -X -At -c "SELECT count(*) FROM images") images, $(psql "$CONN" -X -At -c "SELECT count(*) FROM layer_runs") layer_runs$packed"
measure "$IMGAUDIT" report --db "$CONN" --format json -o fleet.json
echo "  fleet report (JSON, all sections, $HOSTS hosts): $W s, $(stat -c %s fleet.json) bytes; $(cpu)"
measure "$IMGAUDIT" report --db "$CONN" --format human -o fleet.txt
echo "  fleet report (human): $W s; $(cpu)"
measure "$IMGAUDIT" report --db "$CONN" --host h07 --format json -o one.json
echo "  one host's report from PostgreSQL: $W s; $(cpu)"
measure "$IMGAUDIT" report --db store.db --format json -o local.json
echo "  the same report from the local SQLite store: $W s; CPU: imgaudit $C s"
t0=$(now)
psql "$CONN" -X -At -c "SELECT host, images, allocated_bytes FROM v_fleet_hosts" >/dev/null
psql "$CONN" -X -At -c "SELECT * FROM v_fleet_bases" >bases.txt
t1=$(now)
echo "  v_fleet_hosts + v_fleet_bases: $(echo "$t1 - $t0" | bc) s ($(wc -l <bases.txt) bases on several hosts)"
