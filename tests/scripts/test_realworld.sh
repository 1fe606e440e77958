#!/bin/bash
# Every image of the real-world corpus (../shared/realworld beside the
# checkout: 103 images other software wrote) against the hand-written
# expectation table realworld_expect.tsv beside this script, one row per
# image:
#
#   identical      `imgaudit map` prints what `qemu-img map` prints (stdout and
#                  exit status), JSON and human, with and without -f FORMAT;
#   true           truth.py (beside the corpus) finds the map true against the
#                  guest content, `qemu-img convert -O raw` of the image;
#   identical+true-map  identical by default, and `map --true-map` true
#                  against the guest content (truth.py through a wrapper that
#                  adds --true-map): dmg, bochs, cloop, whose qemu map is coarse
#   true-replayed  the same, the guest content read from a copy whose log
#                  `qemu-img check -r all` replayed (a VHDX with a pending log:
#                  qemu refuses it read-only; we replay the log in memory), and
#                  our map of the image equals our map of that copy;
#   refused        exit status 1, nothing on stdout, and stderr matching the
#                  row's MESSAGE (an extended regular expression);
#   diff-vhd, diff-vhdx
#                  a differencing child whose parent is not in the corpus: a
#                  parent is built here with the identity the child records
#                  (tests/tools/diffparent.py) and every sector tagged with its
#                  number; the child's map must be, sector by sector, the one
#                  computed from its BAT and bitmaps, the parent's ranges must
#                  hold the right tags, and no parent-mismatch is reported.
#
# Every file of the corpus must have a row, and every row a file.  When the
# corpus folder is absent the test says so and is skipped (exit 77), except
# in CI (CI=true), where it fails.  REALWORLD_DIR overrides the folder.
. "$(dirname "$0")/lib.sh"
CORPUS=${REALWORLD_DIR:-$SOURCE_DIR/../shared/realworld}
TABLE=$SOURCE_DIR/tests/scripts/realworld_expect.tsv
TOOL=$SOURCE_DIR/tests/tools/diffparent.py

if [ ! -f "$CORPUS/corpus.tar.zst" ] || [ ! -f "$CORPUS/truth.py" ]; then
	echo "the real-world corpus is absent: no $CORPUS/corpus.tar.zst (or truth.py beside it)"
	if [ "${CI:-}" = true ]; then
		echo "FAIL: CI=true and the corpus folder is missing; it must be there in CI"
		exit 1
	fi
	skip "set REALWORLD_DIR to the folder holding corpus.tar.zst to run it"
fi
need qemu-img zstd python3
QEMU_COMPAT=$(qemu-img --version | sed -n 's/^qemu-img version \([0-9]*\.[0-9]*\).*/\1/p')
export IA_COMPAT=$QEMU_COMPAT
IMGAUDIT=$(command -v "$IMGAUDIT")

lib_workdir realworld
mkdir -p "$WORK/c" "$WORK/tmp"
zstd -dc "$CORPUS/corpus.tar.zst" | tar -x -C "$WORK/c" || { echo "FAIL: cannot unpack the corpus"; exit 1; }
cd "$WORK/c" || exit 1

declare -A COUNT

# The corpus and the table name the same files.
find . -type f | sed 's|^\./||' | sort >"$WORK/files"
grep -v '^#' "$TABLE" | grep -v '^$' | cut -f1 | sort >"$WORK/rows"
if ! diff "$WORK/files" "$WORK/rows" >"$WORK/rows.diff"; then
	bad "the corpus and realworld_expect.tsv differ (< only in the corpus, > only in the table):"
	sed 's/^/    /' "$WORK/rows.diff"
fi
sort "$WORK/rows" | uniq -d | sed 's/^/FAIL: two rows for /'

map_both() { # TOOL MODE ARGS...: stdout and exit status
	local tool=$1 mode=$2
	shift 2
	if [ "$tool" = qemu ]; then
		qemu-img map --output="$mode" "$@" 2>/dev/null
	else
		"$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output="$mode" "$@" 2>/dev/null
	fi
	echo "rc=$?"
}

check_identical() { # IMG FMT
	local img=$1 fmt=$2 mode q i
	for mode in json human; do
		for fa in "" "-f $fmt"; do
			[ "$fmt" = - ] && [ -n "$fa" ] && continue
			# shellcheck disable=SC2086
			q=$(map_both qemu "$mode" $fa "$img")
			# shellcheck disable=SC2086
			i=$(map_both imgaudit "$mode" $fa "$img")
			if [ "$q" != "$i" ]; then
				echo "map --output=$mode $fa differs from qemu-img map:"
				diff <(printf '%s\n' "$q") <(printf '%s\n' "$i") | head -8 | sed 's/^/    /'
				return 1
			fi
		done
	done
}

check_true() { # IMG FMT REPLAY
	local img=$1 fmt=$2 replay=$3 src=$1 raw=$WORK/tmp/guest.raw out rc
	if [ "$replay" = 1 ]; then
		# A copy as the file lies (no holes punched), replayed by qemu; then
		# our map of the original (replayed in memory) must be our map of
		# the copy (log replayed on disk), and cover what qemu-img map of
		# the copy covers.
		src=$WORK/tmp/replayed.$fmt
		cp --sparse=never "$img" "$src"
		qemu-img check -q -r all -f "$fmt" "$src" >/dev/null 2>&1
		rc=$?
		[ $rc -eq 0 ] || { echo "qemu-img check -r all of a copy exited $rc"; return 1; }
		cmp -s "$img" "$src" && { echo "the copy was not changed by the replay"; return 1; }
		if ! diff <("$IMGAUDIT" map --output=json "$img" 2>/dev/null) \
			<("$IMGAUDIT" map --output=json "$src" 2>/dev/null) >"$WORK/tmp/replay.diff"; then
			echo "the map of the original differs from the map of the copy qemu replayed:"
			head -6 "$WORK/tmp/replay.diff"
			return 1
		fi
		size_of() { python3 -c 'import json, sys; print(sum(e["length"] for e in json.load(sys.stdin)))'; }
		if [ "$(qemu-img map --output=json -f "$fmt" "$src" | size_of)" != \
			"$("$IMGAUDIT" map --output=json "$img" 2>/dev/null | size_of)" ]; then
			echo "qemu-img map of the replayed copy covers another size"
			return 1
		fi
	fi
	qemu-img convert -f "$fmt" -O raw "$src" "$raw" 2>"$WORK/tmp/convert.err" ||
		{ echo "qemu-img convert failed: $(head -c 300 "$WORK/tmp/convert.err")"; return 1; }
	out=$(python3 "$CORPUS/truth.py" "$IMGAUDIT" "$img" "$fmt" "$raw" 2>&1)
	rc=$?
	rm -f "$raw" "$WORK/tmp/replayed.$fmt"
	echo "$out"
	[ $rc -eq 0 ] && [ "${out%% *}" = TRUE ]
}

check_true_map() { # IMG FMT: identical by default, true with --true-map
	local wrap=$WORK/tmp/imgaudit-true-map
	check_identical "$1" "$2" || return 1
	printf '#!/bin/sh\ncmd=$1; shift; exec "%s" "$cmd" --true-map "$@"\n' "$IMGAUDIT" >"$wrap"
	chmod +x "$wrap"
	# the default map is one data entry: the true map must say more than that
	"$wrap" map --output=json "$1" | grep -q '"zero": true\|"compressed": true' ||
		{ echo "--true-map printed no zero or compressed range"; return 1; }
	IMGAUDIT=$wrap check_true "$1" "$2" 0
}

check_refused() { # IMG FMT REGEX
	local img=$1 fmt=$2 re=$3 fa=() out rc err
	[ "$fmt" = - ] || fa=(-f "$fmt")
	out=$("$IMGAUDIT" map --output=json "${fa[@]}" "$img" 2>"$WORK/tmp/err")
	rc=$?
	err=$(cat "$WORK/tmp/err")
	if [ $rc -ne 1 ] || [ -n "$out" ]; then
		echo "expected exit 1 and nothing on stdout, got exit $rc, stdout ${out:0:100}"
		return 1
	fi
	if ! grep -Eq -- "$re" <<<"$err"; then
		echo "stderr does not match /$re/: $err"
		return 1
	fi
}

check_diff() { # IMG KIND: build the parent the child names, check the map
	local img=$1 kind=$2 dir parent json=$WORK/tmp/child.json err=$WORK/tmp/child.err
	dir=$(dirname "$img")
	if [ "$kind" = vhd ]; then
		# the relative locator (W2ru) of the child, else its parent name
		parent=$dir/$(python3 -c "
import struct, sys
d = open(sys.argv[1], 'rb').read(); dh = d[512:1536]
for i in range(8):
    e = dh[576 + 24 * i:600 + 24 * i]
    if e[:4] == b'W2ru':
        ln, off = struct.unpack('>I', e[8:12])[0], struct.unpack('>Q', e[16:24])[0]
        print(d[off:off + ln].decode('utf-16-le').split('\\\\')[-1]); break" "$img")
	else
		parent=$dir/$(python3 -c "
import sys; sys.path.insert(0, sys.argv[2]); import diffparent
print(diffparent.Vhdx(sys.argv[1]).locator['relative_path'].split('\\\\')[-1])" "$img" "$(dirname "$TOOL")")
	fi
	python3 "$TOOL" "$kind" "$img" "$parent" || { echo "cannot build the parent $parent"; return 1; }
	"$IMGAUDIT" map --output=json "$img" >"$json" 2>"$err" ||
		{ echo "map failed: $(cat "$err")"; return 1; }
	if [ -s "$err" ]; then
		echo "unexpected warnings: $(cat "$err")"
		return 1
	fi
	python3 "$TOOL" check "$img" "$parent" "$json" || return 1
	# the human layout names the parent for its ranges
	"$IMGAUDIT" map "$img" 2>/dev/null | grep -qF "$parent" ||
		{ echo "the human layout does not name $parent"; return 1; }
}

start=$SECONDS
while IFS=$'\t' read -r path fmt expect message reason; do
	case $path in '' | '#'*) continue ;; esac
	[ -f "$path" ] || continue # reported above
	if [ -z "${reason:-}" ]; then
		bad "$path: the row gives no reason"
		continue
	fi
	case $expect in
	identical) out=$(check_identical "$path" "$fmt") ;;
	true) out=$(check_true "$path" "$fmt" 0) ;;
	true-replayed) out=$(check_true "$path" "$fmt" 1) ;;
	identical+true-map) out=$(check_true_map "$path" "$fmt") ;;
	refused) out=$(check_refused "$path" "$fmt" "$message") ;;
	diff-vhd) out=$(check_diff "$path" vhd) ;;
	diff-vhdx) out=$(check_diff "$path" vhdx) ;;
	*) out="unknown expectation '$expect'" false ;;
	esac
	rc=$?
	if [ $rc -eq 0 ]; then
		PASS=$((PASS + 1))
		COUNT[$expect]=$((${COUNT[$expect]:-0} + 1))
		[ "${VERBOSE:-0}" = 1 ] && echo "ok $expect $path ${out:0:160}"
	else
		bad "$path ($expect: $reason)"
		printf '%s\n' "$out" | head -12 | sed 's/^/    /'
	fi
done <"$TABLE"

summary=""
for k in identical identical+true-map true true-replayed refused diff-vhd diff-vhdx; do
	summary="$summary $k=${COUNT[$k]:-0}"
done
echo "images:$summary ($((SECONDS - start)) s)"
lib_summary
