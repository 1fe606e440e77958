#!/bin/bash
# Benchmark of `imgaudit report` memory and time (prints figures, asserts nothing).
#
# A store of 10,100 images (100 small qcow2 bases x 100 overlays, a few
# writes each, as the 2,020-image store of scan_bench.sh), scanned once; then
# the report in every layout (human, JSON, CSV into a directory, HTML,
# Prometheus, Prometheus with --prometheus-per-image) to a file.  For each:
# the median wall time and peak RSS of RUNS runs (default 3), the peak RSS
# against the scan's own, and the size of the report.  `imgaudit --version`
# alone is measured too: what the binary and its libraries (libpq, TLS)
# cost before it reads anything.
#
# usage: report_bench.sh [IMGAUDIT]   env: BENCH_DIR (default: a temp dir),
#        BASES (100), OVERLAYS (100), RUNS (3)
set -eu
IMGAUDIT=${1:-${IMGAUDIT:-imgaudit}}
IMGAUDIT=$(command -v "$IMGAUDIT" || echo "$IMGAUDIT")
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac # the script changes directory
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-rptbench.XXXXXX")}
BASES=${BASES:-100}
OVERLAYS=${OVERLAYS:-100}
RUNS=${RUNS:-3}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT
cd "$WORK"
now() { date +%s.%N; }

# measure OUT CMD...: runs it, appends "seconds KiB" to OUT
measure() {
	local out=$1 t0 t1
	shift
	t0=$(now)
	/usr/bin/time -f %M -o rss.txt "$@" >/dev/null
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc) $(cat rss.txt)" >>"$out"
}
# median COLUMN FILE
median() { cut -d' ' -f"$1" "$2" | sort -n | sed -n "$((($(wc -l <"$2") + 1) / 2))p"; }

if [ ! -f scan.txt ]; then
	echo "building $BASES bases x $OVERLAYS overlays in $WORK ..."
	t0=$(now)
	rm -rf store && mkdir -p store/bases
	for b in $(seq -w 1 "$BASES"); do
		qemu-img create -q -f qcow2 store/bases/base$b.qcow2 1G
		qemu-io -c "write -P 1 0 4M" -c "write -P 2 100M 1M" -c "write -z 200M 2M" \
			-c "write -P 3 512M 64k" store/bases/base$b.qcow2 >/dev/null
		mkdir -p store/vm$b
		for v in 1 2 3 4 5; do
			qemu-img create -q -f qcow2 -b ../bases/base$b.qcow2 -F qcow2 store/vm$b/t$v.qcow2
			qemu-io -c "write -P $v $((v * 3))M 64k" -c "write -P 9 $((v * 40))M 128k" \
				-c "write -z $((v * 7 + 300))M 64k" store/vm$b/t$v.qcow2 >/dev/null
		done
		for i in $(seq -w 1 "$OVERLAYS"); do
			cp store/vm$b/t$(((10#$i % 5) + 1)).qcow2 store/vm$b/ov$i.qcow2
		done
		rm store/vm$b/t?.qcow2
	done
	find store -type f -exec touch -m -d "@$(($(date +%s) - 86400))" {} +
	echo "  built in $(echo "$(now) - $t0" | bc) s"
	rm -f scan.txt
	rm -f store.db store.db-wal store.db-shm store.db.lock
	measure scan.txt "$IMGAUDIT" scan --db store.db --quiet store
	# a second scan, so the trend section has an earlier scan to compare with
	measure scan.txt "$IMGAUDIT" scan --db store.db --quiet store
fi
sync
rm -f version.txt
for r in $(seq "$RUNS"); do measure version.txt "$IMGAUDIT" --version; done
images=$(sqlite3 store.db "SELECT images FROM scans ORDER BY id DESC LIMIT 1")
scan_rss=0
[ -f scan.txt ] && scan_rss=$(sed -n 1p scan.txt | cut -d' ' -f2) # the first scan's peak
printf 'store: %d images, database %s\n' "$images" "$(du -h --apparent-size store.db | cut -f1)"
[ -f scan.txt ] && printf 'scan (first, rescan):      %s s, first scan peak RSS %d MiB\n' \
	"$(cut -d' ' -f1 scan.txt | paste -sd' ')" "$((scan_rss / 1024))"
printf 'imgaudit --version:        peak RSS %.1f MiB\n' "$(echo "$(median 2 version.txt) / 1024" | bc -l)"
printf '%-24s %8s %10s %8s %10s\n' layout "time s" "peak RSS" "vs scan" "size"
for f in human json csv html prometheus prometheus-per-image; do
	rm -f "f-$f.txt"
	case $f in
	csv) out=csvdir args="--format=csv" ;;
	prometheus-per-image) out=r.prom2 args="--format=prometheus --prometheus-per-image" ;;
	*) out=r.$f args="--format=$f" ;;
	esac
	for r in $(seq "$RUNS"); do
		# shellcheck disable=SC2086 # args is a word list
		measure "f-$f.txt" "$IMGAUDIT" report --db store.db $args -o "$out"
	done
	rss=$(median 2 "f-$f.txt")
	ratio=-
	[ "$scan_rss" = 0 ] || ratio=$(printf '%.2fx' "$(echo "$rss / $scan_rss" | bc -l)")
	printf '%-24s %8.2f %6.1f MiB %8s %10s\n' "$f" "$(median 1 "f-$f.txt")" \
		"$(echo "$rss / 1024" | bc -l)" "$ratio" "$(du -sh --apparent-size "$out" | cut -f1)"
done
