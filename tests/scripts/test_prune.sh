#!/bin/bash
# imgaudit prune: old scans go with whatever only they use, in one
# transaction; what later scans share (carried-over images' pieces, layers
# stored by an earlier scan, files) stays, so the latest scan's views, its
# report and the next incremental scan are exactly as before.  The latest
# complete scan is never removed; --dry-run changes nothing.
. "$(dirname "$0")/lib.sh"
lib_workdir prune
q() { sqlite3 db.sqlite "$1"; }
age() { find s -type f -newermt '5 seconds ago' -exec touch -m -d "@$(($(date +%s) - 60))" {} +; }
scan() { age && "$IMGAUDIT" scan --db db.sqlite --quiet s; }
dump() { q "SELECT * FROM v_images ORDER BY path; SELECT * FROM v_map ORDER BY path, start;
            SELECT * FROM v_links ORDER BY path, backing; SELECT * FROM v_space ORDER BY path;
            SELECT * FROM v_base_readers ORDER BY base, image"; }

mkdir -p s/base s/vm
qemu-img create -q -f qcow2 s/base/b.qcow2 8M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 4M 64k' s/base/b.qcow2 >/dev/null
for i in 1 2 3; do
	qemu-img create -q -f qcow2 -b ../base/b.qcow2 -F qcow2 s/vm/o$i.qcow2
	qemu-io -c "write -P $i $((i * 128))k 64k" s/vm/o$i.qcow2 >/dev/null
done
qemu-img create -q -f qcow2 s/vm/gone.qcow2 1M
echo notes >s/notes.txt
scan                                              # 1
qemu-io -c 'write -P 9 2M 64k' s/vm/o2.qcow2 >/dev/null
rm s/vm/gone.qcow2
scan                                              # 2: o2 read again, the rest carried over
scan                                              # 3: everything carried over
qemu-io -c 'write -P 8 6M 64k' s/base/b.qcow2 >/dev/null
scan                                              # 4: the base changed: all read again
scan                                              # 5
eq "five complete scans" "$(q "SELECT count(*) FROM scans WHERE status = 'complete'")" "5"
eq "scan 5 shares maps stored by scan 4" \
	"$(q "SELECT count(*) FROM images WHERE scan_id = 5 AND map_image_id IN (SELECT id FROM images WHERE scan_id = 4)")" "4"
dump >before.txt
"$IMGAUDIT" report --db db.sqlite --format=json -o before.json

# usage
"$IMGAUDIT" prune --db db.sqlite 2>/dev/null
eq "no --keep nor --older-than" "$?" "2"
"$IMGAUDIT" prune --db db.sqlite --keep 0 2>/dev/null
eq "--keep 0 (the latest complete scan always stays)" "$?" "2"
"$IMGAUDIT" prune --db db.sqlite --keep 1 --older-than 1d 2>/dev/null
eq "--keep and --older-than" "$?" "2"
"$IMGAUDIT" prune --db db.sqlite --older-than 3x 2>/dev/null
eq "a bad age" "$?" "2"
"$IMGAUDIT" prune --db nothere.sqlite --keep 1 2>/dev/null
eq "no database" "$?" "3"
[ ! -e nothere.sqlite ] && ok || bad "prune created a database"

# --dry-run says what would go and changes nothing
sum="$(q "SELECT count(*) FROM scans")|$(q "SELECT count(*) FROM images")|$(q "SELECT count(*) FROM layer_runs")"
"$IMGAUDIT" prune --db db.sqlite --keep 2 --dry-run >dry.txt
eq "dry run" "$?" "0"
grep -q "^would remove 3 scans:" dry.txt && ok || { bad "dry run output"; cat dry.txt; }
eq "dry run changed nothing" "$(q "SELECT count(*) FROM scans")|$(q "SELECT count(*) FROM images")|$(q "SELECT count(*) FROM layer_runs")" "$sum"

# --keep 2: scans 1 to 3 go, 4 and 5 stay
"$IMGAUDIT" prune --db db.sqlite --keep 2 >out.txt
eq "prune --keep 2" "$?" "0"
eq "scans left" "$(q "SELECT group_concat(id) FROM scans")" "4,5"
eq "integrity" "$(q "PRAGMA integrity_check")" "ok"
dump >after.txt
cmp -s before.txt after.txt && ok || { bad "the latest scan's views changed"; diff before.txt after.txt | head; }
"$IMGAUDIT" report --db db.sqlite --format=json -o after.json
python3 - before.json after.json <<'PY' && ok || bad "the latest scan's report changed"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
for d in (a, b):
    d.pop("generated_at", None)
    d.pop("trend", None)  # its earlier scan is gone
assert a == b, "reports differ"
PY
eq "no orphan pieces" "$(q "SELECT count(*) FROM pieces WHERE image_id NOT IN (SELECT coalesce(map_image_id, id) FROM images)")" "0"
eq "no orphan layers" "$(q "SELECT count(*) FROM layers l WHERE NOT EXISTS (SELECT 1 FROM pieces p WHERE p.layer_id = l.id)")" "0"
eq "no orphan runs" "$(q "SELECT count(*) FROM layer_runs WHERE layer_id NOT IN (SELECT id FROM layers)")" "0"
eq "no file left that nothing names" "$(q "SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM scan_files sf WHERE sf.file_id = f.id)")" "0"
eq "the removed file's row is gone" "$(q "SELECT count(*) FROM files WHERE path = 's/vm/gone.qcow2'")" "0"
"$IMGAUDIT" report --db db.sqlite --scan 2 --format=json >/dev/null 2>&1
[ $? -ne 0 ] && ok || bad "a removed scan can still be reported"
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 4 >/dev/null && ok || bad "v_map after prune"

# the next scan still carries everything over, and equals a fresh scan
scan
eq "incremental after prune" "$(q "SELECT files_read || '|' || files_reused FROM scans ORDER BY id DESC LIMIT 1")" "0|5"
IMGAUDIT_NO_INCREMENTAL=1 "$IMGAUDIT" scan --db fresh.sqlite --quiet s
cmp -s <(dump) <(sqlite3 fresh.sqlite "SELECT * FROM v_images ORDER BY path; SELECT * FROM v_map ORDER BY path, start;
            SELECT * FROM v_links ORDER BY path, backing; SELECT * FROM v_space ORDER BY path;
            SELECT * FROM v_base_readers ORDER BY base, image") && ok || bad "views after prune and rescan differ from a fresh scan"

# --older-than never removes the latest complete scan
"$IMGAUDIT" prune --db db.sqlite --older-than 0s --vacuum >/dev/null
eq "--older-than 0s" "$?" "0"
eq "the latest complete scan stays" "$(q "SELECT count(*) FROM scans WHERE status = 'complete'")" "1"
eq "its views stay" "$(q "SELECT count(*) FROM v_images")" "4"
eq "every file left is one the latest scan saw" "$(q "SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM scan_files sf WHERE sf.file_id = f.id)")" "0"
eq "integrity after vacuum" "$(q "PRAGMA integrity_check")" "ok"

# a running scan holds the lock: prune waits for nothing and refuses
IMGAUDIT_TEST_WRITER_DELAY_MS=200 IMGAUDIT_NO_INCREMENTAL=1 "$IMGAUDIT" scan --db db.sqlite --quiet s &
bg=$!
for _ in $(seq 1 100); do [ -s db.sqlite.lock ] && break; sleep 0.05; done
"$IMGAUDIT" prune --db db.sqlite --keep 1 2>lock.err
eq "prune during a scan" "$?" "3"
grep -q "locked" lock.err && ok || bad "the refusal does not say locked"
wait $bg

lib_summary test_prune
