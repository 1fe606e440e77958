#!/bin/bash
# Schema 5 (the VMs that use each disk) from schema 4, in place, history kept.
# The last imgaudit of schema 4 (built here from the repository's history)
# scans a store twice: a base with overlays, one removed in between.  Then
# this imgaudit scans it with VM definitions (migrating) and:
#   * every older scan's images, links and findings are what schema 4 stored;
#   * `report --scan ID` of each older scan gives the same capacity figures;
#   * the older scans have no VM rows, so their orphans are presumed in use;
#   * the new scan records the VM and its disks, and its orphans know them.
. "$(dirname "$0")/lib.sh"
OLD_COMMIT=4248024 # the last commit of schema 4
lib_workdir migrate4

if ! git -C "$SOURCE_DIR" cat-file -e "$OLD_COMMIT^{commit}" 2>/dev/null; then
	echo "FAIL: commit $OLD_COMMIT (schema 4) is not in $SOURCE_DIR's history: a shallow clone?"
	exit 1
fi
mkdir old
git -C "$SOURCE_DIR" archive "$OLD_COMMIT" | tar -x -C old
cmake -S old -B old/build -DCMAKE_BUILD_TYPE=Release -DIMGAUDIT_TESTS=OFF >/dev/null &&
	cmake --build old/build -j"$(nproc)" --target imgaudit >/dev/null 2>&1 || {
	echo "FAIL: building imgaudit $OLD_COMMIT"
	exit 1
}
OLD=$WORK/old/build/imgaudit

mkdir -p s/base s/vm etc
qemu-img create -q -f qcow2 s/base/b.qcow2 8M
qemu-io -c 'write -P 1 0 1M' s/base/b.qcow2 >/dev/null
for i in 1 2 3; do
	qemu-img create -q -f qcow2 -b ../base/b.qcow2 -F qcow2 s/vm/o$i.qcow2
	qemu-io -c "write -P $((i + 2)) $((i * 256))k 64k" s/vm/o$i.qcow2 >/dev/null
done
"$OLD" scan --db db.sqlite --quiet s
rm s/vm/o2.qcow2
"$OLD" scan --db db.sqlite --quiet s
eq "schema 4 before" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "4"
history() {
	sqlite3 db.sqlite "SELECT i.scan_id, f.path, i.format, i.virtual_size, i.allocated_bytes, i.recognised_by,
	                          (SELECT group_concat(l.kind || ':' || l.status || ':' || coalesce(l.target_file_id, ''))
	                             FROM links l WHERE l.image_id = i.id)
	                     FROM images i JOIN files f ON f.id = i.file_id
	                    WHERE i.scan_id <= 2 ORDER BY 1, 2;
	                   SELECT scan_id, code, message FROM findings WHERE scan_id <= 2 ORDER BY 1, 2, 3"
}
figures() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for i in sorted(d["capacity"]["images"], key=lambda x: x["name"]):
    print(i["name"], i["allocated_bytes"], i["virtual_bytes"])' "$1"
}
history >hist.before
for id in 1 2; do "$OLD" report --db db.sqlite --scan $id --format=json -o old$id.json; done

cat >etc/vm1.xml <<XML
<domain type='kvm'><name>vm1</name><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$PWD/s/vm/o1.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>
XML
"$IMGAUDIT" scan --db db.sqlite --quiet --vm-config etc s
eq "new scan" "$?" "0"
eq "schema latest after" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "$(schema_latest)"
eq "history rows kept" "$(history)" "$(cat hist.before)"
for id in 1 2; do
	"$IMGAUDIT" report --db db.sqlite --scan $id --format=json -o new$id.json
	eq "report --scan $id after the migration" "$(figures new$id.json)" "$(figures old$id.json)"
done
eq "older scans: no VM definitions, leaves presumed in use" \
	"$(python3 -c 'import json; d=json.load(open("new2.json"))["orphans"]; print(d["vm_definitions_read"], d["count"], d["presumed_in_use"])')" \
	"False 0 2"
eq "new scan: the VM and its disk" "$(sqlite3 db.sqlite "SELECT vm, target, status, substr(path, length('$PWD') + 2) FROM v_vm_disks")" \
	"vm1|vda|ok|s/vm/o1.qcow2"
eq "new scan: orphan classes" "$(sqlite3 db.sqlite "SELECT path, class FROM v_orphans ORDER BY path")" \
	"s/base/b.qcow2|in-use
s/vm/o1.qcow2|in-use
s/vm/o3.qcow2|leaf"
"$IMGAUDIT" report --db db.sqlite --format=json -o new3.json
eq "new scan: the report's orphans" \
	"$(python3 -c 'import json; d=json.load(open("new3.json"))["orphans"]; print(d["vm_definitions_read"], d["count"], [(o["name"], o["class"]) for o in d["images"]])' | rel)" \
	"True 1 [('s/vm/o3.qcow2', 'leaf')]"
# the overlay removed in scan 2 made no base: b.qcow2 still has children
eq "a base with children is no orphan" "$(sqlite3 db.sqlite "SELECT count(*) FROM v_orphans WHERE class = 'base'")" "0"

lib_summary test_migrate_schema4
