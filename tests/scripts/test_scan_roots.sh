#!/bin/bash
# Canonical roots (issue 10): the same store scanned as an absolute path,
# with a trailing slash, with /./ and ../ and doubled slashes, as a relative
# path from another directory, and through a symlinked root stores the same
# absolute paths every time, reuses every file on each rescan (0 read) and
# the trend shows no image removed or added.  --allow-root and --vm-config
# directories are stored canonical too, and a missing ROOT under its
# absolute name.  Schema 7: v_dir_usage over absolute paths, migrated from a
# schema-6 store with history.
. "$(dirname "$0")/lib.sh"
need_qemu
need python3 sqlite3
lib_workdir roots
W=$(pwd -P) # what realpath gives, should $TMPDIR hold a symlink
DB=$W/r.db
q() { command sqlite3 "$DB" "$1"; } # the absolute paths themselves

mkdir -p srv/images/vm srv/other cfg
qemu-img create -q -f qcow2 srv/images/base.qcow2 16M
qemu-io -c "write -P 1 0 64k" srv/images/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 srv/images/vm/a.qcow2 16M
qemu-img create -q -f qcow2 srv/other/b.qcow2 16M
qemu-img create -q -f qcow2 -b ../../other/b.qcow2 -F qcow2 srv/images/vm/c.qcow2 16M
echo notes >srv/images/notes.txt
find srv -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} + # not racily clean
ln -s srv/images link
ln -s images srv/alias

# a JSON summary's "files_read files_reused"
counts() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["files_read"], d["files_reused"])' "$1"; }
# the paths of scan $1's files (a file outside the walk is listed by the scan that reads it)
paths() { q "SELECT f.path FROM scan_files s JOIN files f ON f.id = s.file_id WHERE s.scan_id = $1 ORDER BY f.path"; }
# every change the trend from the previous scan reports (one per line, sorted, unique)
changes() {
	"$IMGAUDIT" report --db "$DB" --section=trend --format=json | python3 -c '
import json, sys
seen = set()
def walk(o):
    if isinstance(o, dict):
        if "change" in o:
            seen.add(o["change"])
        for v in o.values():
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(json.load(sys.stdin))
print(" ".join(sorted(seen)))'
}

S=$W/srv/images
"$IMGAUDIT" scan --db "$DB" --quiet --json --allow-root srv/other "$S" >s1.json
eq "first scan: exit status" "$?" "0"
eq "first scan: all read" "$(counts s1.json)" "4 0"
EXPECTED=$(printf '%s\n' "$S/base.qcow2" "$S/notes.txt" "$S/vm/a.qcow2" "$S/vm/c.qcow2")
eq "first scan: absolute paths" "$(paths 1)" "$EXPECTED
$W/srv/other/b.qcow2"
eq "first scan: roots" "$(q "SELECT role || ' ' || path FROM scan_roots WHERE scan_id = 1 ORDER BY role")" \
	"$(printf 'allow %s\nscan %s' "$W/srv/other" "$S")"
eq "first scan: the chain outside the root" \
	"$(q "SELECT target_path || ' ' || status FROM links WHERE scan_id = 1 AND name = '../../other/b.qcow2'")" \
	"$W/srv/other/b.qcow2 ok"

n=1
rescan() { # rescan WHAT DIR ROOT [ALLOW]: scan ROOT from DIR, expect everything reused, same paths
	local what=$1 dir=$2 root=$3 allow=${4:-$W/srv/other}
	n=$((n + 1))
	(cd "$dir" && "$IMGAUDIT" scan --db "$DB" --quiet --json --allow-root "$allow" "$root") >"s$n.json"
	eq "$what: exit status" "$?" "0"
	eq "$what: nothing read" "$(counts "s$n.json")" "0 4"
	eq "$what: the same paths" "$(paths "$n")" "$EXPECTED"
	eq "$what: the same roots" "$(q "SELECT role || ' ' || path FROM scan_roots WHERE scan_id = $n ORDER BY role")" \
		"$(printf 'allow %s\nscan %s' "$W/srv/other" "$S")"
	eq "$what: trend" "$(changes)" "same"
}
rescan "trailing slash" "$W" "$S/"
rescan "/./" "$W" "$W/srv/./images"
rescan "../ and //" "$W" "$W/srv/other/..//images///"
rescan "relative, from another directory" "$W/srv/other" "../images" ".././other/"
rescan "relative, from the parent" "$W/srv" "images" "other"
rescan "a symlinked root" "$W" "link" "$W/srv/images/../other"
rescan "a symlink inside the root's path" "$W" "$W/srv/alias/"
eq "v_images shows the canonical paths" "$(q "SELECT path FROM v_images ORDER BY path")" \
	"$(printf '%s\n' "$S/base.qcow2" "$S/vm/a.qcow2" "$S/vm/c.qcow2")"

# v_dir_usage climbs absolute paths (schema 7): each directory is `du -B1` of it
while IFS='|' read -r d a; do
	eq "du -B1 $d" "$a" "$(du -B1 -s "$d" | cut -f1)"
done < <(q "SELECT path, allocated_bytes FROM v_dir_usage ORDER BY path")
eq "v_dir_usage: the root's files" "$(q "SELECT files FROM v_dir_usage WHERE path = '$S'")" "4"

# schema 7 from schema 6, with history (relative paths, as earlier versions stored them)
OLD=$W/old.db
for f in "$SOURCE_DIR"/schema/00[1-6]_*.sql; do cat "$f"; done | sqlite3 "$OLD"
sqlite3 "$OLD" "PRAGMA user_version = 6; PRAGMA application_id = 1229014100;
INSERT INTO scans (id, started_at, finished_at, status, exit_status, pid, host, tool_version)
	VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 'complete', 0, 1, 'h', 'old');
INSERT INTO scan_roots (scan_id, role, path) VALUES (1, 'scan', 'old');
INSERT INTO files (id, path, size, allocated) VALUES (1, 'old/a/x.txt', 10, 4096), (2, 'old/y.txt', 10, 8192);
INSERT INTO scan_files (scan_id, file_id, kind) VALUES (1, 1, 'not-an-image'), (1, 2, 'not-an-image');
INSERT INTO dirs (scan_id, path, allocated) VALUES (1, 'old', 4096), (1, 'old/a', 4096);" || bad "making a schema-6 store"
eq "schema 6: v_dir_usage" "$(command sqlite3 "$OLD" "SELECT path, allocated_bytes, files FROM v_dir_usage ORDER BY path")" \
	"$(printf 'old|20480|2\nold/a|8192|1')"
"$IMGAUDIT" scan --db "$OLD" --quiet "$S/vm"
eq "migrated: exit status" "$?" "0"
eq "migrated: version" "$(command sqlite3 "$OLD" "PRAGMA user_version")" "$(schema_latest)"
eq "migrated: the old scan's rows" "$(command sqlite3 "$OLD" "SELECT path FROM files f JOIN scan_files s ON s.file_id = f.id WHERE s.scan_id = 1 ORDER BY path")" \
	"$(printf 'old/a/x.txt\nold/y.txt')"
eq "migrated: v_dir_usage of the new scan" "$(command sqlite3 "$OLD" "SELECT path, allocated_bytes = $(du -B1 -s "$S/vm" | cut -f1), files FROM v_dir_usage")" \
	"$S/vm|1|2"
# the old scan through the new view, as it was
eq "migrated: v_dir_usage over relative paths" "$(command sqlite3 "$OLD" "UPDATE scans SET status = 'aborted' WHERE id = 2; SELECT path, allocated_bytes, files FROM v_dir_usage ORDER BY path")" \
	"$(printf 'old|20480|2\nold/a|8192|1')"

# --vm-config directories: canonical too (the VM's disk resolves to the scanned file)
cat >cfg/vm1.xml <<EOF
<domain type='kvm'><name>vm1</name><devices>
<disk type='file' device='disk'><source file='$S/vm/a.qcow2'/><target dev='vda'/></disk>
</devices></domain>
EOF
(cd "$W/srv" && "$IMGAUDIT" scan --db "$DB" --quiet --vm-config ../cfg/ --allow-root other images)
eq "--vm-config: exit status" "$?" "0"
eq "--vm-config: the VM's disk" \
	"$(q "SELECT vm || ' ' || config_path || ' ' || path || ' ' || status || ' ' || (image_id IS NOT NULL) FROM v_vm_disks")" \
	"vm1 $W/cfg/vm1.xml $S/vm/a.qcow2 ok 1"

# a ROOT that does not exist: recorded under its absolute name
(cd "$W/srv" && "$IMGAUDIT" scan --db "$W/missing.db" --quiet images ./gone/ 2>/dev/null)
eq "missing root: exit status" "$?" "1"
eq "missing root: its entry" "$(command sqlite3 "$W/missing.db" "SELECT path || ' ' || reason FROM entries WHERE kind = 'unreadable'")" \
	"$W/srv/gone missing"

lib_summary test_scan_roots
