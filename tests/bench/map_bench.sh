#!/bin/bash
# Map benchmark: imgaudit map against qemu-img map, measured in the same run.
#
#   tests/bench/map_bench.sh [IMGAUDIT]     (default: build/imgaudit)
#
# Builds (once, in $BENCH_DIR, default /var/tmp/imgaudit-bench):
#   * a qcow2 with 512-byte clusters whose every other cluster is allocated:
#     over 1 M map entries;
#   * a raw file with 131072 separate 4 KiB data extents: 262144 entries;
#   * a monolithicSparse vmdk with every other 64 KiB grain allocated
#     (4 GiB virtual): 65536 entries;
#   * a dynamic vhdx with 1 MiB blocks, every other one allocated (2 GiB
#     virtual): 2048 entries in our true map; qemu-img prints one entry
#     without offsets for any vhdx (no block status), so that ratio compares
#     a real map with a constant answer.
# For each, prints the entries, the best of N runs of each tool (JSON to
# /dev/null), the ratio, and imgaudit's peak RSS.  Prints figures only; it
# asserts nothing (speed is not a test).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
IMGAUDIT=${1:-$here/../../build/imgaudit}
case $IMGAUDIT in /*) ;; *) IMGAUDIT=$PWD/$IMGAUDIT ;; esac # the script changes directory
RUNS=${RUNS:-3}
dir=${BENCH_DIR:-/var/tmp/imgaudit-bench}
mkdir -p "$dir"
cd "$dir"

if [ ! -f frag.qcow2 ]; then
	echo "building frag.qcow2 (1 M entries)..." >&2
	python3 - <<'PY'
with open("frag.raw", "wb") as f:
    block = (b"\x5a" * 512 + b"\0" * 512) * 1024   # 1 MiB: 1024 data + 1024 zero clusters
    for _ in range(512):                            # 512 MiB
        f.write(block)
PY
	qemu-img convert -q -S 512 -O qcow2 -o cluster_size=512 frag.raw frag.qcow2
	rm -f frag.raw
fi
if [ ! -f extents.raw ]; then
	echo "building extents.raw (131072 data extents)..." >&2
	python3 - <<'PY'
import os
fd = os.open("extents.raw", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
data = b"\xa5" * 4096
for i in range(131072):
    os.pwrite(fd, data, i * 8192)
os.ftruncate(fd, 131072 * 8192)
os.fsync(fd)
os.close(fd)
PY
fi

# every_other FILE SIZE CHUNK: a sparse raw file with data in every other CHUNK.
every_other() {
	python3 - "$@" <<'PY'
import os, sys
path, size, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
data = b"\x3c" * chunk
for off in range(0, size, 2 * chunk):
    os.pwrite(fd, data, off)
os.ftruncate(fd, size)
os.close(fd)
PY
}
if [ ! -f grains.vmdk ]; then
	echo "building grains.vmdk (65536 entries)..." >&2
	every_other grains.raw $((4 << 30)) 65536
	qemu-img convert -q -O vmdk grains.raw grains.vmdk
	rm -f grains.raw
fi
if [ ! -f blocks.vhdx ]; then
	echo "building blocks.vhdx (2048 entries)..." >&2
	every_other blocks.raw $((2 << 30)) $((1 << 20))
	qemu-img convert -q -O vhdx -o block_size=1M,subformat=dynamic blocks.raw blocks.vhdx
	rm -f blocks.raw
fi

# best_time CMD...: the best wall time of $RUNS runs, in seconds.
best_time() {
	local best="" t0 t1 t
	for _ in $(seq "$RUNS"); do
		t0=$(date +%s%N)
		# A failed run must not pass for a fast one.
		if ! "$@" >/dev/null 2>"$dir/.err"; then
			echo "map_bench: '$*' failed: $(head -c 300 "$dir/.err")" >&2
			exit 1
		fi
		t1=$(date +%s%N)
		t=$(( (t1 - t0) / 1000 ))
		if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
	done
	awk "BEGIN{ printf \"%.4f\", $best / 1e6 }"
}

peak_rss_kib() {
	if ! /usr/bin/time -f "%M" -o "$dir/.time" "$@" >/dev/null 2>"$dir/.err"; then
		echo "map_bench: '$*' failed: $(head -c 300 "$dir/.err")" >&2
		exit 1
	fi
	tail -1 "$dir/.time"
}

printf '%-14s %-6s %10s %12s %12s %8s %12s\n' image output entries "qemu-img s" "imgaudit s" ratio "peak RSS"
for img in frag.qcow2 extents.raw grains.vmdk blocks.vhdx; do
	for out in json human; do
		# qemu-img cannot print a vhdx in the human layout (data without offsets).
		[ "$img" = blocks.vhdx ] && [ "$out" = human ] && continue
		entries=$("$IMGAUDIT" map --output=json "$img" | wc -l)
		tq=$(best_time qemu-img map --output=$out "$img")
		ti=$(best_time "$IMGAUDIT" map --output=$out "$img")
		rss=$(peak_rss_kib "$IMGAUDIT" map --output=$out "$img")
		ratio=$(awk "BEGIN{ if ($ti > 0) printf \"%.1fx\", $tq / $ti; else print \"inf\" }")
		printf '%-14s %-6s %10s %12s %12s %8s %9s KiB\n' "$img" "$out" "$entries" "$tq" "$ti" "$ratio" "$rss"
	done
done
