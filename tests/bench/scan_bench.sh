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
# usage: scan_bench.sh [IMGAUDIT]   env: BENCH_DIR (default: a temp dir),
#        BENCH_QEMU_SAMPLE=N to time qemu-img on every Nth image only and
#        extrapolate (default 1: every image).
set -eu
IMGAUDIT=${1:-${IMGAUDIT:-imgaudit}}
IMGAUDIT=$(command -v "$IMGAUDIT" || echo "$IMGAUDIT")
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac # the script changes directory
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-bench.XXXXXX")}
SAMPLE=${BENCH_QEMU_SAMPLE:-1}
trap '[ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT
cd "$WORK"
now() { date +%s.%N; }

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
runs=""
for r in 1 2 3; do
	rm -f scan.db scan.db-wal scan.db-shm
	t0=$(now)
	"$IMGAUDIT" scan --db scan.db --quiet store
	t1=$(now)
	runs="$runs $(echo "$t1 - $t0" | bc)"
done
ours=$(printf '%s\n' $runs | sort -n | sed -n 2p) # the median of three fresh scans
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

t0=$(now)
"$IMGAUDIT" scan --db scan.db --quiet store
t1=$(now)
printf 'rescan, nothing changed:          %8.2f s (%s files read, %s carried over)\n' "$(echo "$t1 - $t0" | bc)" \
	$(sqlite3 -separator ' ' scan.db "SELECT files_read, files_reused FROM scans ORDER BY id DESC LIMIT 1")

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
printf 'large maps: %d rows in %.2f s: %.0f rows/s (target >= 1,000,000)\n' "$rows" "$secs" \
	"$(echo "$rows / $secs" | bc -l)"
printf 'database size: %s\n' "$(du -h big.db | cut -f1)"
