#!/bin/bash
# Benchmark of the walk of `imgaudit scan` on a store of small files (prints
# figures, asserts nothing): 200,000 small non-image files (sizes lognormal,
# median about 660 bytes) in 2,052 directories, and 20 qcow2 images, built by
# smallfiles.py with a fixed seed.  In the same run, RUNS times each:
#   * `imgaudit scan` into a new database (every file read),
#   * `imgaudit scan` again (unchanged: nothing read),
#   * `duc index` into a new database, `ncdu -0 -o /dev/null`, `find`,
# warm (the tree in the page cache) and cold (after
# `echo 3 > /proc/sys/vm/drop_caches`, when that is permitted: as root, not
# in most containers; else said so and skipped).  Prints wall and CPU
# (user + system) seconds, medians, and the ratios to duc.
#
# usage: walk_bench.sh [IMGAUDIT]   env: BENCH_DIR (default: a temp dir),
#        BENCH_RUNS (default 5), BENCH_FILES / BENCH_DIRS (default 200000 / 2052)
set -eu
IMGAUDIT=${1:-${IMGAUDIT:-imgaudit}}
IMGAUDIT=$(command -v "$IMGAUDIT" || echo "$IMGAUDIT")
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-walkbench.XXXXXX")}
RUNS=${BENCH_RUNS:-5}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
cd "$WORK"
for t in duc ncdu qemu-img; do
	command -v $t >/dev/null || { echo "walk_bench: $t is not installed (tests/setup.sh)"; exit 1; }
done

if [ ! -d store ]; then
	echo "building the store ..."
	python3 "$BENCH_SRC/smallfiles.py" store 10 "${BENCH_FILES:-200000}" "${BENCH_DIRS:-2052}"
	for i in $(seq 1 20); do
		qemu-img create -q -f qcow2 "store/d$(printf %04d $((i + 10)))/img$i.qcow2" 1G
	done
	find store -type f -exec touch -m -d "@$(($(date +%s) - 86400))" {} +
fi
echo "store: $(find store -type f | wc -l) files, $(find store -type d | wc -l) directories, load $(cut -d' ' -f1-3 /proc/loadavg)"

cold=0
if [ -w /proc/sys/vm/drop_caches ] && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
	cold=1
else
	echo "cold runs skipped: /proc/sys/vm/drop_caches is not writable here (not root, or a container)"
fi
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# one NAME CMD...: run it, append "wall cpu" to NAME.times
one() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S" -o t.txt "$@" >/dev/null 2>&1 || true
	awk '{ printf "%s %.3f\n", $1, $2 + $3 }' t.txt >>"$name.times"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

round() {
	local mode=$1 r
	rm -f ./*.times
	for r in $(seq 1 "$RUNS"); do
		rm -f scan.db scan.db-wal scan.db-shm scan.db.lock duc.db
		[ "$mode" = warm ] || drop
		one scan "$IMGAUDIT" scan --db scan.db --quiet store
		[ "$mode" = warm ] || drop
		one rescan "$IMGAUDIT" scan --db scan.db --quiet store
		[ "$mode" = warm ] || drop
		one duc duc index -q -d duc.db store
		[ "$mode" = warm ] || drop
		one ncdu ncdu -0 -o /dev/null store
		[ "$mode" = warm ] || drop
		one find find store
	done
	local dw dc
	dw=$(cut -d' ' -f1 duc.times | median)
	dc=$(cut -d' ' -f2 duc.times | median)
	printf '%s (%s runs, medians)      wall s   cpu s   wall/duc  cpu/duc\n' "$mode" "$RUNS"
	for t in scan rescan duc ncdu find; do
		local w c
		w=$(cut -d' ' -f1 $t.times | median)
		c=$(cut -d' ' -f2 $t.times | median)
		printf '  %-26s %7.2f %7.2f %9.2f %8.2f\n' "$t" "$w" "$c" \
			"$(echo "$w / $dw" | bc -l)" "$(echo "$c / ($dc + 0.0001)" | bc -l)"
	done
}

find store -type f -exec cat {} + >/dev/null
round warm
[ $cold = 0 ] || round cold
echo "rows: $(sqlite3 scan.db 'SELECT count(*) FROM files') files, $(sqlite3 scan.db 'SELECT count(*) FROM entries') entries; database $(stat -c %s scan.db) bytes"
