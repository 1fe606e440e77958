#!/bin/bash
# Benchmark of `imgaudit scan` (prints figures, asserts nothing).
#
# 1. A store of 2,000 overlays (20 bases x 100 overlays, a few writes each):
#    our scan against a shell loop of `qemu-img info --backing-chain
#    --output=json` + `qemu-img map --output=json` per image, timed in the
#    same run, and the ratio.  Overlays are written with qemu-io once per base
#    (five variants) and copied with cp: the backing name is relative, so
#    copies in the same directory need no patching.
# 2. Map rows stored per second on a store with large maps: 100 overlays on a
#    raw base fragmented into 16,384 data extents (every overlay's map has
#    about 32,768 rows, composed from the base's layer mapped once).
#
# 3. Two stores shaped like real ones: golden bases written for months
#    (64 KiB clusters scattered over guest and host with a fixed seed, by
#    fragbase.py: no two clusters form one run) with 100 overlays each:
#    5 bases x 1,024 clusters (505 images) and 10 bases x 20,000 clusters
#    (1,010 images).  For each: the first scan against the qemu-img loop,
#    the unchanged rescan, a rescan after 1 % of the overlays changed, the
#    report in JSON and HTML, rows stored, database size, peak RSS.
#
# usage: scan_bench.sh [IMGAUDIT]   env: BENCH_DIR (default: a temp dir),
#        BENCH_QEMU_SAMPLE=N to time qemu-img on every Nth image only and
#        extrapolate (default 1: every image; the fragmented stores use
#        BENCH_FRAG_SAMPLE, default 5), BENCH_ONLY=frag for part 3 alone,
#        BENCH_ONLY=small for part 1 alone, BENCH_OLD=/path/to/imgaudit to
#        time another build's first scan of part 1 too, interleaved with
#        ours (BENCH_RUNS runs each, default 3; medians), and
#        BENCH_CALLGRIND=1 to add both builds' instruction counts (valgrind).
set -eu
IMGAUDIT=${1:-${IMGAUDIT:-imgaudit}}
IMGAUDIT=$(command -v "$IMGAUDIT" || echo "$IMGAUDIT")
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac # the script changes directory
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-bench.XXXXXX")}
SAMPLE=${BENCH_QEMU_SAMPLE:-1}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
cd "$WORK"
now() { date +%s.%N; }

# frag_store NAME BASES CLUSTERS: build it, then print its figures.
frag_store() {
	local name=$1 nb=$2 nc=$3 b v i t0 t1 first rescan changed json html rss
	echo "building $name: $nb bases x $nc scattered clusters x 100 overlays ..."
	t0=$(now)
	rm -rf "$name" && mkdir -p "$name/bases"
	for b in $(seq -w 1 "$nb"); do
		python3 "$BENCH_SRC/fragbase.py" "$name/bases/base$b.qcow2" "$nc" "$((10#$b))"
		mkdir -p "$name/vm$b"
		for v in 1 2 3 4 5; do
			qemu-img create -q -f qcow2 -b ../bases/base$b.qcow2 -F qcow2 "$name/vm$b/t$v.qcow2"
			qemu-io -c "write -P $v $((v * 64))M 64k" -c "write -P 9 $((v * 300))M 128k" \
				"$name/vm$b/t$v.qcow2" >/dev/null
		done
		for i in $(seq -w 1 100); do
			cp "$name/vm$b/t$(((10#$i % 5) + 1)).qcow2" "$name/vm$b/ov$i.qcow2"
		done
		rm "$name"/vm$b/t?.qcow2
	done
	find "$name" -type f -exec touch -m -d "@$(($(date +%s) - 86400))" {} +
	echo "  built in $(echo "$(now) - $t0" | bc) s"
	sync
	find "$name" -type f -exec cat {} + >/dev/null
	rm -f "$name.db" "$name.db-wal" "$name.db-shm" "$name.db.lock"
	t0=$(now)
	/usr/bin/time -f %M -o rss.txt "$IMGAUDIT" scan --db "$name.db" --quiet "$name"
	t1=$(now)
	first=$(echo "$t1 - $t0" | bc)
	rss=$(cat rss.txt)

	find "$name" -name '*.qcow2' | sort >list.txt
	local n k=0 q
	n=$(wc -l <list.txt)
	i=0
	t0=$(now)
	while read -r f; do
		i=$((i + 1))
		[ $(((i - 1) % FRAG_SAMPLE)) = 0 ] || continue
		qemu-img info --backing-chain --output=json "$f" >/dev/null
		qemu-img map --output=json "$f" >/dev/null
		k=$((k + 1))
	done <list.txt
	t1=$(now)
	q=$(echo "($t1 - $t0) * $n / $k" | bc -l)

	t0=$(now)
	"$IMGAUDIT" scan --db "$name.db" --quiet "$name"
	t1=$(now)
	rescan=$(echo "$t1 - $t0" | bc)
	# 1 % of the overlays written to (a day later), then the nightly rescan
	i=0
	for f in $(grep '/ov' list.txt | awk 'NR % 100 == 7'); do
		qemu-io -c "write -P 7 1000M 64k" "$f" >/dev/null
		i=$((i + 1))
	done
	find "$name" -type f -newer "$name.db" -exec touch -m -d "@$(($(date +%s) - 60))" {} +
	t0=$(now)
	"$IMGAUDIT" scan --db "$name.db" --quiet "$name"
	t1=$(now)
	changed=$(echo "$t1 - $t0" | bc)
	t0=$(now)
	/usr/bin/time -f %M -o rss2.txt "$IMGAUDIT" report --db "$name.db" --format=json -o r.json
	t1=$(now)
	json=$(echo "$t1 - $t0" | bc)
	t0=$(now)
	"$IMGAUDIT" report --db "$name.db" --format=html -o r.html
	t1=$(now)
	html=$(echo "$t1 - $t0" | bc)
	local images runs pieces
	read -r images <<<"$(sqlite3 "$name.db" "SELECT images FROM scans ORDER BY id DESC LIMIT 1")"
	runs=$(sqlite3 "$name.db" "SELECT count(*) FROM layer_runs")
	pieces=$(sqlite3 "$name.db" "SELECT count(*) FROM pieces")
	printf '%s: %d images, %d layer runs + %d pieces stored, database %s\n' "$name" "$images" \
		"$runs" "$pieces" "$(du -h --apparent-size "$name.db" | cut -f1)"
	printf '  first scan:          %8.2f s, peak RSS %d MiB\n' "$first" "$((rss / 1024))"
	printf '  qemu-img loop (%d of %d): %8.2f s%s\n' "$k" "$n" "$q" \
		"$([ "$FRAG_SAMPLE" = 1 ] || echo ' (extrapolated)')"
	printf '  ratio:               %8.1fx\n' "$(echo "$q / $first" | bc -l)"
	printf '  unchanged rescan:    %8.2f s\n' "$rescan"
	printf '  rescan, %d overlays changed: %6.2f s\n' "$i" "$changed"
	printf '  report json:         %8.2f s, peak RSS %d MiB\n' "$json" "$(($(cat rss2.txt) / 1024))"
	printf '  report html:         %8.2f s\n' "$html"
}
FRAG_SAMPLE=${BENCH_FRAG_SAMPLE:-5}
if [ "${BENCH_ONLY:-}" = frag ]; then
	frag_store frag505 5 1024
	frag_store frag1010 10 20000
	exit 0
fi

echo "building 20 bases x 100 overlays in $WORK ..."
t0=$(now)
mkdir -p store/bases
for b in $(seq -w 1 20); do
	qemu-img create -q -f qcow2 store/bases/base$b.qcow2 1G
	qemu-io -c "write -P 1 0 4M" -c "write -P 2 100M 1M" -c "write -z 200M 2M" \
		-c "write -P 3 512M 64k" store/bases/base$b.qcow2 >/dev/null
	mkdir -p store/vm$b
	for v in 1 2 3 4 5; do
		qemu-img create -q -f qcow2 -b ../bases/base$b.qcow2 -F qcow2 store/vm$b/t$v.qcow2
		qemu-io -c "write -P $v $((v * 3))M 64k" -c "write -P 9 $((v * 40))M 128k" \
			-c "write -z $((v * 7 + 300))M 64k" store/vm$b/t$v.qcow2 >/dev/null
	done
	for i in $(seq -w 1 100); do
		cp store/vm$b/t$(((10#$i % 5) + 1)).qcow2 store/vm$b/ov$i.qcow2
	done
	rm store/vm$b/t?.qcow2
done
echo "  built in $(echo "$(now) - $t0" | bc) s"

# A store last written yesterday, as a nightly scan finds it (a file written
# within 2 s of a scan's start would be read again by the next one).
find store -type f -exec touch -m -d "@$(($(date +%s) - 86400))" {} +
# Both tools run with the store in the page cache: read it once first.
sync
find store -type f -exec cat {} + >/dev/null
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# first_scan BINARY DB: a fresh scan of the store, its seconds on stdout
first_scan() {
	rm -f "$2" "$2-wal" "$2-shm" "$2.lock"
	local t0 t1
	t0=$(now)
	"$1" scan --db "$2" --quiet store
	t1=$(now)
	echo "$t1 - $t0" | bc
}
runs="" oldruns=""
for r in $(seq 1 "${BENCH_RUNS:-3}"); do
	[ -z "${BENCH_OLD:-}" ] || oldruns="$oldruns $(first_scan "$BENCH_OLD" old.db)"
	runs="$runs $(first_scan "$IMGAUDIT" scan.db)"
done
ours=$(median $runs)
read -r images rows layers <<<"$(sqlite3 -separator ' ' scan.db "SELECT images, map_rows, layers_mapped FROM scans ORDER BY id DESC LIMIT 1")"

find store -name '*.qcow2' | sort >list.txt
n=$(wc -l <list.txt)
t0=$(now)
k=0
i=0
while read -r f; do
	i=$((i + 1))
	[ $(((i - 1) % SAMPLE)) = 0 ] || continue
	qemu-img info --backing-chain --output=json "$f" >/dev/null
	qemu-img map --output=json "$f" >/dev/null
	k=$((k + 1))
done <list.txt
t1=$(now)
qemu=$(echo "($t1 - $t0) * $n / $k" | bc -l)

printf 'store: %d images (%d rows stored, %d layers mapped)\n' "$images" "$rows" "$layers"
printf 'imgaudit scan (-j %d):            %8.2f s (median of%s)\n' "$(nproc)" "$ours" "$runs"
printf 'qemu-img info+map loop (%d of %d): %8.2f s%s\n' "$k" "$n" "$qemu" \
	"$([ "$SAMPLE" = 1 ] || echo ' (extrapolated)')"
printf 'ratio:                            %8.1fx (target >= 50x)\n' "$(echo "$qemu / $ours" | bc -l)"
if [ -n "${BENCH_OLD:-}" ]; then
	old=$(median $oldruns)
	printf 'BENCH_OLD scan, same runs:        %8.2f s (median of%s): ours/old %.2f\n' "$old" \
		"$oldruns" "$(echo "$ours / $old" | bc -l)"
fi
if [ -n "${BENCH_CALLGRIND:-}" ]; then
	# instruction counts of a first scan (all threads), repeatable on a loaded machine
	irs() {
		rm -f cg.db cg.db-wal cg.db-shm cg.db.lock cg.out.*
		valgrind --tool=callgrind --separate-threads=no --callgrind-out-file=cg.out.%p \
			"$1" scan --db cg.db --quiet store 2>&1 | sed -n 's/.*Collected : *//p' | tail -1
	}
	printf 'callgrind, first scan:            %s instructions (ours)\n' "$(irs "$IMGAUDIT")"
	[ -z "${BENCH_OLD:-}" ] ||
		printf 'callgrind, first scan:            %s instructions (BENCH_OLD)\n' "$(irs "$BENCH_OLD")"
fi

t0=$(now)
"$IMGAUDIT" scan --db scan.db --quiet store
t1=$(now)
printf 'rescan, nothing changed:          %8.2f s (%s files read, %s carried over)\n' "$(echo "$t1 - $t0" | bc)" \
	$(sqlite3 -separator ' ' scan.db "SELECT files_read, files_reused FROM scans ORDER BY id DESC LIMIT 1")
[ "${BENCH_ONLY:-}" != small ] || exit 0

echo "building a store with large maps ..."
mkdir -p big/vm
python3 - big/frag.raw <<'PY'
import os, sys
# 128 MiB, 4 KiB of data every 8 KiB: 16,384 data extents and as many holes.
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
block = b"\x5a" * 4096
for i in range(16384):
    os.pwrite(fd, block, i * 8192)
os.ftruncate(fd, 128 << 20)
os.close(fd)
PY
qemu-img create -q -f qcow2 -b ../frag.raw -F raw big/vm/ov.qcow2
for i in $(seq -w 1 100); do cp big/vm/ov.qcow2 big/vm/ov$i.qcow2; done
rm big/vm/ov.qcow2
sync
t0=$(now)
"$IMGAUDIT" scan --db big.db --quiet big
t1=$(now)
secs=$(echo "$t1 - $t0" | bc)
rows=$(sqlite3 big.db "SELECT map_rows FROM scans ORDER BY id DESC LIMIT 1")
stored=$(sqlite3 big.db "SELECT (SELECT count(*) FROM layer_runs) || ' layer runs + ' || (SELECT count(*) FROM pieces) || ' pieces'")
printf 'large maps: %d map rows (stored as %s) in %.2f s: %.0f map rows/s\n' "$rows" "$stored" \
	"$secs" "$(echo "$rows / $secs" | bc -l)"
printf 'database size: %s\n' "$(du -h big.db | cut -f1)"

frag_store frag505 5 1024
frag_store frag1010 10 20000
