#!/bin/bash
# dmg (Apple UDIF): qemu-img cannot create dmg images, so this case runs on
# the 12 dmg images of the real-world corpus (../shared/realworld beside the
# checkout, unpacked here into the work directory; never copied into the
# tree), and on copies of them patched here.
#
# * qemu recognises dmg by a ".dmg" name and has no block status for it: one
#   data entry without offset.  imgaudit map must print exactly that, in both
#   layouts, probed and with -f dmg, on every corpus image.
# * imgaudit map --true-map prints the chunk map: checked by the corpus's
#   truth.py against `qemu-img convert -O raw` wherever qemu can read the
#   image, and for the bzip2, lzfse and ADC images (which qemu 7.2 without
#   qemu-block-extra cannot read; ADC it never reads) also against the map of
#   the zlib image made from the same disk (same chunk layout, table below).
# * imgaudit scan files a .dmg as an image of format dmg, its v_map equal to
#   imgaudit map's.
#
# Images written by tests/tools/mkdmg.py run in any case.  Without the corpus
# the case then exits 77 (CTest: skipped) and says so, unless
# IMGAUDIT_CORPUS_REQUIRED=1, where that is a failure.
. "$(dirname "$0")/../lib.sh"

SRC_ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
CORPUS=${IMGAUDIT_CORPUS:-$SRC_ROOT/../shared/realworld}
MKDMG=$SRC_ROOT/tests/tools/mkdmg.py

# A wrapper that adds --true-map, for truth.py (which runs IMGAUDIT map ...).
TRUE_IA=$ORACLE_WORK/imgaudit-true-map
printf '#!/bin/sh\nc=$1; shift\nexec "%s" "$c" --true-map "$@"\n' "$IMGAUDIT" >"$TRUE_IA"
chmod +x "$TRUE_IA"

# Images written here by tests/tools/mkdmg.py (every chunk type qemu reads,
# tables in the plist or the resource fork): these run without the corpus.
scenario generated
for v in "" --rsrc "--no-bzip2" "--rsrc --no-bzip2"; do
	f=g$(echo "$v" | tr -d ' -').dmg
	python3 "$MKDMG" "$f" $v
	oracle_map "$f"
	oracle_map -f dmg "$f"
	case $v in
	*no-bzip2*)
		# qemu reads what mkdmg.py meant to write (the check of the generator)
		qemu-img convert -f dmg -O raw "$f" "$f.raw" 2>/dev/null
		check "$f: qemu-img reads the designed guest bytes" python3 -c "
import sys
d = open(sys.argv[1], 'rb').read()
want = b''.join(bytes([s % 251 + 1]) * 512 if s < 8 or 16 <= s < 48 or 64 <= s < 80 else bytes(512)
               for s in range(256))
sys.exit(d != want)" "$f.raw"
		[ -r "$CORPUS/truth.py" ] && check "$f: the true map is true (truth.py)" \
			bash -c "python3 '$CORPUS/truth.py' '$TRUE_IA' '$f' dmg '$f.raw' | grep -q '^TRUE '"
		;;
	esac
done
# the true map, known by construction
printf '%s\n' \
	'[{ "start": 0, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 0},' \
	'{ "start": 4096, "length": 4096, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false},' \
	'{ "start": 8192, "length": 16384, "depth": 0, "present": true, "zero": false, "data": true, "compressed": true},' \
	'{ "start": 24576, "length": 8192, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false},' \
	'{ "start": 32768, "length": 8192, "depth": 0, "present": true, "zero": false, "data": true, "compressed": true},' \
	'{ "start": 40960, "length": 90112, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false}]' \
	rc=0 >g.expected
for f in g.dmg grsrc.dmg gnobzip2.dmg grsrcnobzip2.dmg; do
	expect_map json g.expected --true-map --qemu-compat=10.2 "$f"
done

# imgaudit scan files .dmg files as dmg images (by name, as map does)
scenario scan
mkdir -p store/mac
cp "$ORACLE_WORK/generated/g.dmg" store/mac/plist.dmg
cp "$ORACLE_WORK/generated/grsrc.dmg" store/mac/rsrc.dmg
truncate -s 64k store/mac/broken.dmg
here=$(pwd -P) # stored paths are absolute (canonical roots): compared below it
"$IMGAUDIT" scan --quiet --db db.sqlite store >scan.out 2>&1
check "scan exits 1 (one .dmg is not readable)" test $? -eq 1
check "scan files the .dmg images as dmg" \
	test "$(sqlite3 db.sqlite "SELECT replace(path, '$here/', ''), format, status FROM v_images ORDER BY path")" == \
	"$(printf '%s\n' 'store/mac/broken.dmg|dmg|corrupt' 'store/mac/plist.dmg|dmg|ok' 'store/mac/rsrc.dmg|dmg|ok')"
check "scan: v_map equals imgaudit map" python3 "$SRC_ROOT/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 2
# and inside an archive, by the member's name
mkdir -p arch
tar -C store -cf arch/mac.tar mac/plist.dmg
"$IMGAUDIT" scan --quiet --db arch.sqlite arch >/dev/null 2>&1
check "scan files a .dmg member of a tar as dmg" \
	test "$(sqlite3 arch.sqlite "SELECT replace(path, '$here/', ''), format, status FROM v_images")" == 'arch/mac.tar!mac/plist.dmg|dmg|ok'

if [ ! -r "$CORPUS/corpus.tar.zst" ] || [ ! -r "$CORPUS/truth.py" ]; then
	echo "dmg: the real-world corpus is absent (looked for $CORPUS/corpus.tar.zst" \
		"and truth.py): the 12 corpus images are NOT TESTED"
	oracle_summary || exit 1
	[ "${IMGAUDIT_CORPUS_REQUIRED:-0}" = 1 ] && exit 1
	exit 77
fi
command -v zstd >/dev/null || { echo "zstd is not installed (run tests/setup.sh)"; exit 1; }

# The expectations, by hand: image | chunk types in it | how the true map is checked.
#   convert: truth.py against qemu-img convert -O raw
#   like:X   qemu cannot read it; the true map equals X's, whose truth is checked
EXPECT='
dfvfs/hfsplus_zlib.dmg             zlib,zero,ignore  convert
dfvfs/hfsplus_zlib-fd9f55b.dmg     zlib,zero,ignore  convert
qemu-iotests/simple-dmg.dmg        zlib,zero,ignore  convert
node-udif/gpt.dmg                  zlib,ignore       convert
node-udif/encrypted.dmg            zlib,ignore       convert
node-udif/zlib-compressed.dmg      zlib,ignore       convert
node-udif/raw.dmg                  raw,ignore        convert
node-udif/compression-raw.dmg      raw,ignore        convert
node-udif/compression-zlib.dmg     zlib,ignore       convert
node-udif/compression-bz2.dmg      bzip2,ignore      like:node-udif/compression-zlib.dmg
node-udif/compression-lzfse.dmg    lzfse,ignore      like:node-udif/compression-zlib.dmg
node-udif/compression-adc.dmg      adc,ignore        like:node-udif/compression-zlib.dmg
'

scenario corpus
mkdir rw
zstd -dc "$CORPUS/corpus.tar.zst" | tar -x -C rw --wildcards '*.dmg' ||
	{ echo "dmg: unpacking the corpus failed"; exit 1; }
found=$(cd rw && find . -name '*.dmg' -type f | sed 's|^\./||' | sort)
listed=$(echo "$EXPECT" | awk 'NF {print $1}' | sort)
check "the corpus holds exactly the 12 dmg images of the table" test "$found" == "$listed"

# true_map_has IMG TYPES: every entry kind the chunk types imply is in the map.
true_map_has() {
	local map
	map=$("$IMGAUDIT" map --true-map --output=json "$1") || return 1
	case $2 in *zero* | *ignore*) grep -q '"zero": true, "data": false' <<<"$map" || return 1 ;; esac
	case $2 in *raw*) grep -q '"compressed": false, "offset"' <<<"$map" || return 1 ;; esac
	case $2 in *zlib* | *bzip2* | *lzfse* | *adc*) grep -q '"compressed": true' <<<"$map" || return 1 ;; esac
	return 0
}

while read -r img types how; do
	[ -n "$img" ] || continue
	oracle_map "rw/$img"
	oracle_map -f dmg "rw/$img"
	check "$img: the true map shows $types" true_map_has "rw/$img" "$types"
	raw=$(basename "$img").raw
	if qemu-img convert -f dmg -O raw "rw/$img" "$raw" 2>/dev/null; then
		check "$img: the true map is true (truth.py)" \
			bash -c "python3 '$CORPUS/truth.py' '$TRUE_IA' 'rw/$img' dmg '$raw' | tee /dev/stderr | grep -q '^TRUE '"
	fi
	case $how in
	convert)
		check "$img: qemu-img convert reads it" test -s "$raw"
		;;
	like:*)
		# qemu-img 7.2 without qemu-block-extra reads no bzip2 or lzfse chunk, and no ADC
		check "$img: same true map as ${how#like:}" \
			bash -c "diff <('$IMGAUDIT' map --true-map --qemu-compat=7.2 --output=json 'rw/$img' | sed 's/, \"offset\": [0-9]*//') \
				<('$IMGAUDIT' map --true-map --qemu-compat=7.2 --output=json 'rw/${how#like:}' | sed 's/, \"offset\": [0-9]*//')"
		;;
	esac
done <<<"$EXPECT"

# Recognition follows the name, as in qemu.
cp rw/node-udif/raw.dmg renamed.img
oracle_map renamed.img
cp rw/node-udif/raw.dmg UPPER.DMG
oracle_map UPPER.DMG
truncate -s 1M plain.dmg
oracle_map plain.dmg
oracle_map -f dmg plain.dmg
qemu-img create -q -f qcow2 really-qcow2.dmg 1M
oracle_map really-qcow2.dmg
# qemu scores a cloop header 2, as a .dmg name: dmg wins the tie (and fails)
{ printf '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n'; } >cloop.dmg
truncate -s 4096 cloop.dmg
oracle_map cloop.dmg
check "a cloop header named .dmg is opened as dmg" \
	bash -c "'$IMGAUDIT' map cloop.dmg 2>&1 | grep -q 'dmg: no koly trailer'"
# a backing file probed by its name
qemu-img create -q -f qcow2 -b rw/node-udif/raw.dmg -F dmg over.qcow2
oracle_map over.qcow2
qemu-img create -q -f qcow2 -b rw/node-udif/raw.dmg -F raw over-raw.qcow2
oracle_map over-raw.qcow2

# Patched copies (offsets from the trailer; the koly is the file's last 512 bytes).
# compression-raw.dmg is 62039 bytes: qemu still finds the trailer with 425
# bytes appended, not with 426 (its 515-byte window ends at the rounded size).
dmg_patch() {
	python3 - "$@" <<'EOF'
import re, struct, sys
path, what = sys.argv[1], sys.argv[2]
d = bytearray(open(path, 'rb').read())
k = len(d) - 512
assert d[k:k + 4] == b'koly'
xo, xl = struct.unpack('>QQ', d[k + 0xd8:k + 0xe8])
if what.startswith('pad='):
    d += bytes(int(what[4:]))
elif what.startswith('sectors='):
    d[k + 0x1ec:k + 0x1f4] = struct.pack('>Q', int(what[8:], 0))
elif what == 'unclosed':
    i = d.rindex(b'</data>', xo, xo + xl)
    d[i:i + 7] = b'</dat_>'
elif what == 'xmllen':
    d[k + 0xe0:k + 0xe8] = struct.pack('>Q', k - xo + 1)
elif what == 'datafork':
    d[k + 0x18:k + 0x20] = struct.pack('>Q', k + 1)
elif what == 'nomagic':
    d[k:k + 4] = b'kolx'
open(path, 'wb').write(d)
EOF
}
scenario patched
for p in pad=425 pad=426 sectors=0 sectors=20000 sectors=0x8000000000000000 unclosed xmllen \
	datafork nomagic; do
	f=$(echo "$p" | tr '=' '_').dmg
	cp "$ORACLE_WORK/corpus/rw/node-udif/compression-raw.dmg" "$f"
	dmg_patch "$f" "$p"
	oracle_map "$f"
done
# a disk longer than its chunks: qemu maps it (reading the tail fails); the true map refuses
expect_fail --true-map sectors_20000.dmg
printf '%s\n' '[{ "start": 0, "length": 0, "depth": 0, "present": false, "zero": false, "data": false}]' rc=0 >empty.expected
expect_map json empty.expected --qemu-compat=7.2 --true-map sectors_0.dmg

oracle_summary
