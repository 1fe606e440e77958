#!/bin/bash
# Planning benchmark: an unchanged rescan, where the scan's plan
# (scanner/scan_plan.c over schema/store_plan.c) decides that every file is
# carried over and reads none.
#
#   tests/bench/plan_bench.sh [IMGAUDIT]     (default: build/imgaudit)
#   BENCH_OLD=/path/to/other/imgaudit        the same, measured in the same run
#   N=150                                    overlays (each over its own base)
#   RUNS=3                                   callgrind runs of each binary
#
# Builds (once, in $BENCH_DIR, default /var/tmp/imgaudit-bench/plan-N): N
# qcow2 bases with one overlay each and a tar of 5 qcow2 images.  For each
# binary: a first scan into a fresh database, then RUNS unchanged rescans
# under callgrind (all threads); prints the instructions of each rescan, their
# median, and the part spent in scan_plan().  Prints figures only; it asserts
# nothing (speed is not a test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
IMGAUDIT=${1:-$here/../../build/imgaudit}
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac # the script changes directory
N=${N:-150}
RUNS=${RUNS:-3}
dir=${BENCH_DIR:-/var/tmp/imgaudit-bench}/plan-$N
mkdir -p "$dir"
cd "$dir"
command -v valgrind >/dev/null || { echo "valgrind is not installed (run tests/setup.sh)"; exit 1; }

if [ ! -f store/pack.tar ]; then
	echo "building $N overlays over $N bases and a tar of 5 images..." >&2
	rm -rf store arch && mkdir -p store arch
	for i in $(seq 1 "$N"); do
		qemu-img create -q -f qcow2 "store/base$i.qcow2" 64M
		qemu-img create -q -f qcow2 -b "base$i.qcow2" -F qcow2 "store/over$i.qcow2"
	done
	for i in 1 2 3 4 5; do qemu-img create -q -f qcow2 "arch/m$i.qcow2" 16M; done
	tar -C arch -cf store/pack.tar .
fi

bench() { # NAME BINARY
	local name=$1 bin=$2 r all=() plan=()
	rm -f "$name.db" "$name.db-wal" "$name.db-shm"
	"$bin" scan --db "$name.db" store >/dev/null 2>&1
	for r in $(seq 1 "$RUNS"); do
		valgrind --tool=callgrind --callgrind-out-file="cg.$name.$r" "$bin" scan --db "$name.db" \
			store >/dev/null 2>"cg.$name.$r.err"
		all+=("$(sed -n 's/.*Collected : //p' "cg.$name.$r.err")")
		plan+=("$(callgrind_annotate --inclusive=yes "cg.$name.$r" 2>/dev/null |
			awk '!done && / [^ ]*:scan_plan / {gsub(",", "", $1); print $1; done = 1}')")
	done
	echo "$name: unchanged rescan ${all[*]} instructions (median $(printf '%s\n' "${all[@]}" |
		sort -n | sed -n "$(((RUNS + 1) / 2))p")), scan_plan ${plan[*]}"
	echo "$name: $(sqlite3 "$name.db" 'SELECT files_read, files_reused FROM scans ORDER BY id DESC LIMIT 1' |
		awk -F'|' '{print $1 " files read, " $2 " reused"}')"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
bench new "$IMGAUDIT"
[ -n "${BENCH_OLD:-}" ] && bench old "$BENCH_OLD"
exit 0
