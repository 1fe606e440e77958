#!/bin/bash
# Schema 3 from schema 2, in place, history kept.  The last imgaudit of
# schema 2 (built here from the repository's history) scans a store three
# times: overlays on a base, a carried-over image, a changed overlay, a
# broken chain.  Then this imgaudit scans it (migrating) and:
#   * every older scan's map rows are what schema 2 stored, row for row;
#   * `report --scan ID` of each older scan gives the figures the schema-2
#     imgaudit gave (capacity per image, sharing per base);
#   * the new scan's v_map equals `imgaudit map` for every image, and what
#     reads through to the missing backing file is unknown, no longer zero.
. "$(dirname "$0")/lib.sh"
OLD_COMMIT=3d1f8d5 # the last commit of schema 2
lib_workdir migrate

if ! git -C "$SOURCE_DIR" cat-file -e "$OLD_COMMIT^{commit}" 2>/dev/null; then
	echo "FAIL: commit $OLD_COMMIT (schema 2) is not in $SOURCE_DIR's history: a shallow clone?"
	exit 1
fi
mkdir old
git -C "$SOURCE_DIR" archive "$OLD_COMMIT" | tar -x -C old
cmake -S old -B old/build -DCMAKE_BUILD_TYPE=Release >/dev/null &&
	cmake --build old/build -j"$(nproc)" --target imgaudit >/dev/null 2>&1 || {
	echo "FAIL: building imgaudit $OLD_COMMIT"
	exit 1
}
OLD=$WORK/old/build/imgaudit

age() { find s -type f -exec touch -m -d "@$(($(date +%s) - $1))" {} +; }
mkdir -p s/base s/vm s/broken
qemu-img create -q -f qcow2 s/base/b.qcow2 8M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 4M 512k' s/base/b.qcow2 >/dev/null
for i in 1 2 3; do
	qemu-img create -q -f qcow2 -b ../base/b.qcow2 -F qcow2 s/vm/o$i.qcow2
	qemu-io -c "write -P $((i + 2)) $((i * 256))k 64k" s/vm/o$i.qcow2 >/dev/null
done
qemu-img create -q -f qcow2 -b o1.qcow2 -F qcow2 s/vm/o1-snap.qcow2
qemu-io -c 'write -P 9 0 64k' s/vm/o1-snap.qcow2 >/dev/null
qemu-img create -q -f qcow2 s/broken/gone.qcow2 8M
qemu-img create -q -f qcow2 -b gone.qcow2 -F qcow2 s/broken/orphan.qcow2
qemu-io -c 'write -P 5 1M 64k' s/broken/orphan.qcow2 >/dev/null
rm s/broken/gone.qcow2
age 3600
"$OLD" scan --db db.sqlite --quiet s
eq "old scan 1" "$?" "0" # a broken chain is recorded, not a problem
qemu-io -c 'write -P 7 2M 64k' s/vm/o2.qcow2 >/dev/null
age 1800
"$OLD" scan --db db.sqlite --quiet s
eq "old scan 2" "$?" "0"
"$OLD" scan --db db.sqlite --quiet s
eq "old scan 3" "$?" "0"
eq "schema 2 before" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "2"
eq "scan 3 carried images over" "$(sqlite3 db.sqlite 'SELECT files_reused > 0 FROM scans WHERE id = 3')" "1"

history() {
	sqlite3 db.sqlite "SELECT i.scan_id, f.path, m.start, m.length, m.depth, m.present, m.zero, m.data,
	                          m.compressed, m.offset, t.path
	                     FROM images i JOIN files f ON f.id = i.file_id
	                          JOIN map m ON m.image_id = coalesce(i.map_image_id, i.id)
	                          LEFT JOIN files t ON t.id = m.file_id
	                    WHERE i.scan_id <= 3 ORDER BY 1, 2, 3"
}
figures() { # the figures both versions' reports have
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
keys = ("own_data_bytes", "backing_data_bytes", "zero_bytes", "unallocated_bytes",
        "compressed_bytes", "virtual_bytes", "allocated_bytes", "flattened_bytes")
for i in sorted(d["capacity"]["images"], key=lambda x: x["name"]):
    print(i["name"], [i[k] for k in keys])
for b in sorted(d["sharing"]["bases"], key=lambda x: x["name"]):
    print(b["name"], b["visible_bytes"], b["dead_bytes"],
          sorted((o["name"], o["reads_from_base_bytes"]) for o in b["overlays"]))
' "$1"
}
history >hist.before
for id in 1 2 3; do "$OLD" report --db db.sqlite --scan $id --format=json -o old$id.json; done
old_vmap=$(sqlite3 db.sqlite "SELECT * FROM v_map ORDER BY path, start")

# this imgaudit: report first (reads schema 2 as it is), then scan (migrates)
"$IMGAUDIT" report --db db.sqlite --scan 3 --format=json -o pre3.json
eq "report of schema 2 by this imgaudit" "$(figures pre3.json)" "$(figures old3.json)"
"$IMGAUDIT" scan --db db.sqlite --quiet s
eq "new scan" "$?" "0"
eq "schema latest after" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "$(schema_latest)"
eq "history rows kept" "$(history)" "$(cat hist.before)"
for id in 1 2 3; do
	"$IMGAUDIT" report --db db.sqlite --scan $id --format=json -o new$id.json
	eq "report --scan $id after the migration" "$(figures new$id.json)" "$(figures old$id.json)"
done
eq "figures of the migrated image rows equal their map rows" \
	"$(sqlite3 db.sqlite "SELECT count(*) FROM images i WHERE i.scan_id <= 3 AND i.virtual_size IS NOT NULL AND
	   i.mapped_bytes IS NOT (SELECT sum(length) FROM map WHERE image_id = coalesce(i.map_image_id, i.id))")" "0"
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 5 && ok || bad "v_map of the new scan"

# the broken chain: schema 2 said zero, schema 3 says unknown
eq "old scan: broken chain read as zero" \
	"$(sqlite3 db.sqlite "SELECT unknown_bytes, unallocated_bytes > 0 FROM images i JOIN files f ON f.id = i.file_id
	   WHERE i.scan_id = 3 AND f.path = 's/broken/orphan.qcow2'")" "0|1"
eq "new scan: what the missing base held is unknown" \
	"$(sqlite3 db.sqlite "SELECT unknown_bytes, unallocated_bytes FROM images i JOIN files f ON f.id = i.file_id
	   WHERE i.scan_id = 4 AND f.path = '$WORK/s/broken/orphan.qcow2'")" "$((8 * 1048576 - 65536))|0"
eq "v_map: unknown rows have zero and data NULL, the missing layer's depth" \
	"$(sqlite3 db.sqlite "SELECT count(*), min(depth), max(zero IS NULL AND data IS NULL) FROM v_map
	   WHERE path = '$WORK/s/broken/orphan.qcow2' AND zero IS NULL")" "2|1|1"
[ "$old_vmap" != "" ] && ok || bad "the old v_map was empty"

lib_summary
