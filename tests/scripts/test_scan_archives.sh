#!/bin/bash
# `imgaudit scan` inside archives: a .tar, an .ova (with its OVF disk
# references), a .tar.gz and a .zip holding images and chains whose backing
# names resolve to members of the same archive, a missing member, a name
# leaving the archive, a symlink member and a plain member.  v_map of the
# members equals `imgaudit map --output=json` of the extracted files.
set -u
IMGAUDIT=${IMGAUDIT:-imgaudit}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-scan.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
q() {
	local got
	got=$(sqlite3 db.sqlite "$1" 2>&1)
	if [ "$got" == "$2" ]; then ok; else bad "$1"; echo "    expected: $2"; echo "    got:      $got"; fi
}

mkdir -p src/sub st
cd src
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c 'write -P 1 0 128k' -c 'write -z 1M 64k' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 over.qcow2
qemu-io -c 'write -P 2 64k 64k' over.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../over.qcow2 -F qcow2 sub/over2.qcow2
qemu-io -c 'write -P 3 2M 64k' sub/over2.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b nothere.qcow2 -F qcow2 -u lost.qcow2 4M
qemu-img create -q -f qcow2 -b ../../etc/passwd -F raw -u escape.qcow2 4M
echo "just text" > notes.txt
ln -s base.qcow2 link.qcow2
cat > vm.ovf <<'OVF'
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="over.qcow2" ovf:id="file1" ovf:size="458752"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="4" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.qemu.org/qcow2"/>
  </DiskSection>
</Envelope>
OVF
tar -cf ../st/a.tar base.qcow2 over.qcow2 sub lost.qcow2 escape.qcow2 notes.txt link.qcow2
tar -cf ../st/vm.ova vm.ovf over.qcow2 base.qcow2
tar -czf ../st/c.tar.gz base.qcow2 over.qcow2 sub
python3 - ../st/d.zip <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.write("base.qcow2", compress_type=zipfile.ZIP_STORED)
    z.write("over.qcow2", compress_type=zipfile.ZIP_DEFLATED)
    z.write("sub/over2.qcow2", compress_type=zipfile.ZIP_DEFLATED)
PY
cd ..

"$IMGAUDIT" scan --db db.sqlite --quiet st
rc=$?
[ $rc = 0 ] && ok || bad "scan exit status $rc (expected 0)"
q "SELECT kind FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE f.path = 'st/a.tar'" "archive"
q "SELECT format, status, chain_depth, backing_path FROM v_images WHERE path = 'st/a.tar!over.qcow2'" \
	"qcow2|ok|1|st/a.tar!base.qcow2"
q "SELECT status, chain_depth, backing_path FROM v_images WHERE path = 'st/a.tar!sub/over2.qcow2'" \
	"ok|2|st/a.tar!over.qcow2"
q "SELECT status FROM v_images WHERE path = 'st/a.tar!lost.qcow2'" "missing"
q "SELECT status FROM v_images WHERE path = 'st/a.tar!escape.qcow2'" "outside-archive"
q "SELECT kind FROM v_entries WHERE path = 'st/a.tar!notes.txt'" "not-an-image"
q "SELECT kind, detail FROM v_entries WHERE path = 'st/a.tar!link.qcow2'" "member-symlink|base.qcow2"
q "SELECT disk_id, href, capacity, format FROM ovf_disks" "vmdisk1|over.qcow2|4194304|http://www.qemu.org/qcow2"
q "SELECT status, chain_depth FROM v_images WHERE path = 'st/vm.ova!over.qcow2'" "ok|1"
q "SELECT status, chain_depth FROM v_images WHERE path = 'st/c.tar.gz!sub/over2.qcow2'" "ok|2"
q "SELECT status, chain_depth FROM v_images WHERE path = 'st/d.zip!sub/over2.qcow2'" "ok|2"
q "SELECT count(*) FROM v_images WHERE path LIKE 'st/%!%'" "13"
q "SELECT count(*) FROM files WHERE path LIKE '%passwd%'" "0"
# member maps equal the maps of the extracted files (qcow2: no host holes involved)
for a in a.tar c.tar.gz d.zip vm.ova; do
	for m in base.qcow2 over.qcow2 sub/over2.qcow2; do
		[ -f "src/$m" ] || continue
		[ "$a" = vm.ova ] && [ "$m" = sub/over2.qcow2 ] && continue
		want=$(cd "src/$(dirname "$m")" && "$IMGAUDIT" map --output=json "$(basename "$m")" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    print(e["start"], e["length"], e["depth"], int(e["present"]), int(e["zero"]), int(e["data"]), int(e["compressed"]), e.get("offset") is not None)')
		got=$(sqlite3 -separator ' ' db.sqlite "SELECT start, length, depth, present, zero, data, compressed, offset IS NOT NULL FROM v_map WHERE path = 'st/$a!$m' ORDER BY start" | sed 's/ 1$/ True/; s/ 0$/ False/')
		[ "$got" == "$want" ] && ok || { bad "v_map of $a!$m"; diff <(echo "$want") <(echo "$got") | head -5; }
	done
done
# offsets in an uncompressed tar are member offsets: equal to the extracted file's
want=$(cd src && "$IMGAUDIT" map --output=json over.qcow2 | python3 -c '
import json, sys
print(" ".join(str(e.get("offset")) for e in json.load(sys.stdin) if e["depth"] == 0))')
got=$(sqlite3 db.sqlite "SELECT group_concat(coalesce(offset, 'None'), ' ') FROM (SELECT offset FROM v_map WHERE path = 'st/a.tar!over.qcow2' AND depth = 0 ORDER BY start)")
[ "$got" == "$want" ] && ok || bad "member offsets: want $want got $got"
# --no-archives leaves them alone
"$IMGAUDIT" scan --db na.sqlite --quiet --no-archives st
[ "$(sqlite3 na.sqlite "SELECT count(*) FROM v_images")" = 0 ] && ok || bad "--no-archives"

echo "test_scan_archives: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
