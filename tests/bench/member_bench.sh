#!/bin/bash
# Benchmark of big non-image archive members (prints figures, asserts
# nothing): a .zip and a .tar.gz each holding a 2 GiB member of log text
# (tests/scripts/big_member_archive.py) and a small qcow2 image after it.
# `imgaudit scan` of each into a new database, RUNS times, and, when
# BENCH_OLD names another build (e.g. one from before members were probed
# before spooling), that build in the same run, alternating.  Prints wall and
# CPU (user + system) seconds and peak RSS, medians.
#
# usage: member_bench.sh [IMGAUDIT]   env: BENCH_OLD, BENCH_RUNS (default 3),
#        BENCH_MIB (default 2048), BENCH_DIR (default: a temp dir)
set -eu
abs() { local p; p=$(command -v "$1" || echo "$1"); case $p in /*) echo "$p" ;; *) echo "$PWD/$p" ;; esac; }
IMGAUDIT=$(abs "${1:-${IMGAUDIT:-imgaudit}}")
OLD=${BENCH_OLD:+$(abs "$BENCH_OLD")}
RUNS=${BENCH_RUNS:-3}
MIB=${BENCH_MIB:-2048}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-memberbench.XXXXXX")}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$WORK"
command -v qemu-img >/dev/null || { echo "member_bench: qemu-img is not installed (tests/setup.sh)"; exit 1; }

mkdir -p img zip tgz
qemu-img create -q -f qcow2 img/disk.qcow2 64M
qemu-io -c 'write -P 7 0 1M' img/disk.qcow2 >/dev/null
(cd img && python3 "$SRC/scripts/big_member_archive.py" zip ../zip/big.zip app.log "$MIB" disk.qcow2 &&
	python3 "$SRC/scripts/big_member_archive.py" tgz ../tgz/big.tar.gz app.log "$MIB" disk.qcow2)
echo "a $MIB MiB member: zip $(stat -c %s zip/big.zip) bytes, tar.gz $(stat -c %s tgz/big.tar.gz) bytes; load $(cut -d' ' -f1-3 /proc/loadavg)"

# one LABEL BINARY STORE: a scan into a new database; appends "wall cpu rss_kib" to LABEL.times
one() {
	rm -f db.sqlite*
	/usr/bin/time -f "%e %U %S %M" -o t.out "$2" scan --db db.sqlite --quiet "$3" || true
	awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' t.out >>"$1.times"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rm -f ./*.times
for r in $(seq 1 "$RUNS"); do
	for store in zip tgz; do
		one "new-$store" "$IMGAUDIT" "$store"
		[ -z "$OLD" ] || one "old-$store" "$OLD" "$store"
	done
done
printf '%-10s %-8s %10s %10s %12s\n' build archive "wall s" "CPU s" "peak RSS MiB"
for b in new old; do
	for store in zip tgz; do
		f=$b-$store.times
		[ -f "$f" ] || continue
		printf '%-10s %-8s %10s %10s %12s\n' "$b" "$store" "$(cut -d' ' -f1 "$f" | median)" \
			"$(cut -d' ' -f2 "$f" | median)" "$(($(cut -d' ' -f3 "$f" | median) / 1024))"
	done
done
