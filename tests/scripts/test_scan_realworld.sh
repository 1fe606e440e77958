#!/bin/bash
# The real-world corpus (../shared/realworld: images VMware, Hyper-V,
# VirtualBox, Parallels, macOS and old qemu releases wrote) scanned whole:
# the scan ends (exit 1: some of them are broken by design), every image
# that maps has v_map rows equal to `imgaudit map --output=json`, images of
# broken chains keep what reads through to the missing file as unknown, and
# a rescan carries everything over and gives the same views.
. "$(dirname "$0")/lib.sh"
CORPUS=$SOURCE_DIR/../shared/realworld/corpus.tar.zst
if [ ! -r "$CORPUS" ]; then
	# CI has ../shared beside the checkout, and .ci/run requires it
	echo "NOT TESTED: the real-world corpus is absent: $CORPUS"
	[ "${IMGAUDIT_CORPUS_REQUIRED:-0}" = 1 ] && exit 1
	skip "the corpus is not beside the checkout"
fi
lib_workdir realworld
q() { sqlite3 db.sqlite "$1"; }

mkdir rw
zstd -dc "$CORPUS" | tar -x -C rw || { echo "FAIL: unpacking $CORPUS"; exit 1; }
find rw -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +
# delayed allocation: blocks are counted once written back, so the two scans see the same figure
sync
"$IMGAUDIT" scan --db db.sqlite --quiet rw 2>err.txt
rc=$?
[ $rc = 1 ] && ok || { bad "scan of the corpus: exit $rc (expected 1: broken chains, refused images)"; head err.txt; }
n=$(q "SELECT count(*) FROM v_images")
[ "$n" -ge 80 ] && ok || bad "only $n images recorded"
nok=$(q "SELECT count(*) FROM v_images WHERE status = 'ok'")
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min "$nok" && ok || bad "v_map differs from imgaudit map"
[ "$nok" -ge 60 ] && ok || bad "only $nok images map"
# every image's rows tile its virtual size (unknown ranges included)
[ "$(q "SELECT count(*) FROM images i WHERE i.scan_id = (SELECT id FROM v_latest_scan)
        AND i.virtual_size IS NOT NULL AND i.status NOT IN ('corrupt', 'truncated', 'io', 'limit', 'unsupported')
        AND i.mapped_bytes <> i.virtual_size")" = 0 ] && ok || bad "an image's map does not cover its virtual size"
# broken chains: what the missing parent held is unknown, never zero
missing=$(q "SELECT count(*) FROM v_images WHERE status = 'missing'")
[ "$missing" -gt 0 ] && ok || bad "the corpus has children whose parents are absent: none recorded missing"
[ "$(q "SELECT count(*) FROM v_images v JOIN v_space s USING (path) WHERE v.status = 'missing' AND s.unknown_bytes = 0")" = 0 ] &&
	ok || bad "a broken chain with no unknown bytes"
[ "$(q "SELECT count(*) FROM v_map m JOIN v_images v USING (path) WHERE v.status = 'missing' AND m.zero IS NULL AND m.data IS NULL")" -gt 0 ] &&
	ok || bad "no unknown rows in v_map for the broken chains"
# the rescan carries everything over
dump() { q "SELECT * FROM v_images ORDER BY path; SELECT * FROM v_map ORDER BY path, start; SELECT * FROM v_links ORDER BY path, backing"; }
dump >first.txt
"$IMGAUDIT" scan --db db.sqlite --quiet rw 2>/dev/null
[ "$(q "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" -lt "$n" ] && ok || bad "the rescan read everything again"
dump >second.txt
cmp -s first.txt second.txt && ok || bad "the rescan's views differ"
echo "test_scan_realworld: $n images, $nok mapped; $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
