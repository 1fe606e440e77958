#!/bin/bash
# Schemas 7 and 8 (v_dir_usage for absolute paths; pieces rebuilt with a CHECK of comparisons, chain_layers_file
# dropped) from schema 6, in place, history kept.  A schema-6 store is made
# from schema/001..006 and given the rows of two real scans (schemas 7 and 8 only
# change a view and how pieces is declared, so they are what schema 6 stored): a base,
# an overlay larger than it, an empty image (an `end` piece), one whose
# backing file is missing (`unknown`), images carried over by the second scan.  This
# imgaudit then scans it (migrating) and:
#   * every piece of the older scans is kept, v_map gives the same rows;
#   * `report --scan ID` of each older scan is the same as before;
#   * the new CHECK refuses what the old one did, the index is gone, and
#     v_map still reaches pieces and runs through their primary keys.
. "$(dirname "$0")/lib.sh"
need_qemu
need sqlite3 python3
lib_workdir migrate6

mkdir -p s/base s/vm
qemu-img create -q -f qcow2 s/base/b.qcow2 8M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 4M 64k' s/base/b.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../base/b.qcow2 -F qcow2 s/vm/o1.qcow2 16M
qemu-io -c 'write -P 3 512k 64k' -c 'write -z 12M 64k' s/vm/o1.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../base/b.qcow2 -F qcow2 s/vm/o2.qcow2
qemu-io -c 'write -P 4 2M 128k' s/vm/o2.qcow2 >/dev/null
qemu-img create -q -f qcow2 s/vm/empty.qcow2 0
qemu-img create -q -f qcow2 -b ../base/gone.qcow2 -F qcow2 -u s/vm/broken.qcow2 8M
qemu-io -c 'write -P 5 0 64k' s/vm/broken.qcow2 >/dev/null
find s -type f -exec touch -m -d '-1 hour' {} +
"$IMGAUDIT" scan --db scans.db --quiet s
qemu-io -c 'write -P 6 6M 64k' s/vm/o2.qcow2 >/dev/null
touch -m -d '-1 hour' s/vm/o2.qcow2
"$IMGAUDIT" scan --db scans.db --quiet s
eq "history: pieces of every kind" \
	"$(sqlite3 scans.db "SELECT group_concat(kind) FROM (SELECT DISTINCT kind FROM pieces ORDER BY kind)")" \
	"end,layer,unknown"
eq "history: images carried over" "$(sqlite3 scans.db "SELECT count(*) > 0 FROM images WHERE scan_id = 2 AND map_image_id IS NOT NULL")" "1"

# The schema-6 store, with those rows.
for f in "$SOURCE_DIR"/schema/00[1-6]_*.sql; do cat "$f"; done | sqlite3 db.sqlite
sqlite3 db.sqlite "PRAGMA user_version = 6; PRAGMA application_id = 1229014100;" || bad "making a schema-6 store"
{
	echo "ATTACH 'scans.db' AS n; BEGIN;"
	sqlite3 db.sqlite "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'" |
		while read -r t; do echo "DELETE FROM main.\"$t\"; INSERT INTO main.\"$t\" SELECT * FROM n.\"$t\";"; done
	echo "COMMIT;"
} | sqlite3 db.sqlite || bad "copying the scans into the schema-6 store"
eq "schema 6 before" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "6"
check "schema 6: the IN list" "sqlite3 db.sqlite \"SELECT sql FROM sqlite_master WHERE name = 'pieces'\" | grep -q \"kind IN ('layer', 'end', 'unknown')\""
vmap() { sqlite3 db.sqlite "SELECT * FROM v_map ORDER BY path, start"; }
pieces() { sqlite3 db.sqlite "SELECT * FROM pieces WHERE image_id IN (SELECT id FROM images WHERE scan_id <= 2) ORDER BY image_id, start"; }
figures() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("generated_at", "tool_version", "generated", "database", "database_schema_version"):
    d.pop(k, None)
print(json.dumps(d, sort_keys=True, indent=1))' "$1"
}
vmap >vmap.before
pieces >pieces.before
check "history: v_map rows" "[ \$(wc -l <vmap.before) -gt 10 ]"
for id in 1 2; do
	"$IMGAUDIT" report --db db.sqlite --scan $id --format=json -o before$id.json || bad "report --scan $id on schema 6"
	figures before$id.json >before$id.txt
done
eq "a report does not migrate" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "6"

"$IMGAUDIT" scan --db db.sqlite --quiet s
eq "new scan: exit status" "$?" "0"
eq "schema latest after" "$(sqlite3 db.sqlite 'PRAGMA user_version')" "$(schema_latest)"
eq "older scans' pieces kept" "$(pieces)" "$(cat pieces.before)"
eq "v_map rows unchanged" "$(vmap)" "$(cat vmap.before)"
for id in 1 2; do
	"$IMGAUDIT" report --db db.sqlite --scan $id --format=json -o after$id.json
	figures after$id.json >after$id.txt
	eq "report --scan $id after the migration" "$(cat after$id.txt)" "$(cat before$id.txt)"
done
sql_eq db.sqlite "PRAGMA integrity_check" "ok"
sql_eq db.sqlite "SELECT count(*) FROM sqlite_master WHERE name IN ('chain_layers_file', 'pieces6')" "0"
sql_eq db.sqlite "SELECT count(*) FROM sqlite_temp_master" "0"
sql_eq db.sqlite "INSERT INTO pieces VALUES (1, -1, 1, 0, 'zero', NULL)" \
	"Error: stepping, CHECK constraint failed: kind = 'layer' OR kind = 'end' OR kind = 'unknown' (19)"
plan=$(sqlite3 db.sqlite "EXPLAIN QUERY PLAN SELECT * FROM v_map WHERE path = 's/vm/o1.qcow2'")
check "v_map: pieces by primary key" "grep -q 'SEARCH p USING PRIMARY KEY (image_id=?)' <<<\"\$plan\""
check "v_map: runs by primary key" "grep -q 'SEARCH r USING PRIMARY KEY (layer_id=? AND start>? AND start<?)' <<<\"\$plan\""
check "v_map: no scan of a table" "! grep -q 'SCAN [a-z]* *\$' <<<\"\$plan\""

lib_summary test_migrate_schema6
