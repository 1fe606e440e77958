#!/bin/bash
# Build the fuzz targets with clang's libFuzzer (+ASan+UBSan) and run each
# for a while on a copy of its seed corpus.  A crash leaves its input in
# build-fuzz/crashes/<target>/: keep it as tests/fuzz-regressions/<target>/NAME
# so that CTest replays it forever.
#   contrib/fuzz/run.sh [SECONDS_PER_TARGET]   (default 30)
#   contrib/fuzz/run.sh --ci    a fixed seed and a fixed number of runs per
#                               target, each capped at 120 s of wall time:
#                               reproducible, about a minute in all
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
ci=false
if [ "${1:-}" = --ci ]; then ci=true; shift; fi
secs=${1:-30}
declare -A ci_runs=([image]=200000 [probe]=4000000 [archive]=40000)
out=$src/build-fuzz
mkdir -p "$out"
cflags="-std=c11 -D_FILE_OFFSET_BITS=64 -g -O1 -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=undefined -I$src/formats -I$src/scanner"
formats=$(ls "$src"/formats/*.c)
status=0
for target in image probe archive; do
	extra=""
	# the archive reader (scanner/archive*.c) reads OVF descriptors through
	# vmdefs_ovf.c (libxml2), which shares vmdefs.c's XML reading
	[ "$target" = archive ] && extra="$(ls "$src"/scanner/archive*.c) $src/scanner/spool.c
		$(ls "$src"/scanner/vmdefs*.c) $(pkg-config --cflags --libs libxml-2.0) -larchive"
	clang $cflags -o "$out/fuzz_$target" "$src/contrib/fuzz/fuzz_$target.c" $formats $extra -lz -lzstd
	rm -rf "$out/corpus-$target" && cp -r "$src/contrib/fuzz/corpus/$target" "$out/corpus-$target"
	rm -rf "$out/crashes/$target" && mkdir -p "$out/crashes/$target"
	if $ci; then
		budget=(-seed=1 -runs="${ci_runs[$target]}" -max_total_time=120)
		echo "== fuzz_$target: ${ci_runs[$target]} runs (at most 120 s), seed 1"
	else
		budget=(-max_total_time="$secs")
		echo "== fuzz_$target for ${secs}s"
	fi
	if ! (cd "$out/crashes/$target" && "$out/fuzz_$target" "${budget[@]}" -timeout=10 \
		-rss_limit_mb=1024 -max_len=300000 -print_final_stats=0 "$out/corpus-$target" 2>&1 | tail -3); then
		status=1
	fi
	if ls "$out/crashes/$target"/crash-* "$out/crashes/$target"/timeout-* "$out/crashes/$target"/oom-* >/dev/null 2>&1; then
		echo "fuzz_$target found problems: $(ls "$out/crashes/$target")"
		status=1
	fi
done
exit $status
