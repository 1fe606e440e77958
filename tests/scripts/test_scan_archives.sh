#!/bin/bash
# `imgaudit scan` inside archives: a .tar, an .ova (with its OVF disk
# references), a .tar.gz and a .zip holding images and chains whose backing
# names resolve to members of the same archive, a missing member, a name
# leaving the archive, a symlink member and a plain member.  v_map of the
# members equals `imgaudit map --output=json` of the extracted files.
. "$(dirname "$0")/lib.sh"
lib_workdir scan
q() { sql_eq db.sqlite "$1" "$2"; }

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
q "SELECT kind FROM scan_files sf JOIN files f ON f.id = sf.file_id WHERE f.path = '$WORK/st/a.tar'" "archive"
q "SELECT format, status, chain_depth, backing_path FROM v_images WHERE path = '$WORK/st/a.tar!over.qcow2'" \
	"qcow2|ok|1|st/a.tar!base.qcow2"
q "SELECT status, chain_depth, backing_path FROM v_images WHERE path = '$WORK/st/a.tar!sub/over2.qcow2'" \
	"ok|2|st/a.tar!over.qcow2"
q "SELECT status FROM v_images WHERE path = '$WORK/st/a.tar!lost.qcow2'" "missing"
q "SELECT status FROM v_images WHERE path = '$WORK/st/a.tar!escape.qcow2'" "outside-archive"
q "SELECT kind FROM v_entries WHERE path = '$WORK/st/a.tar!notes.txt'" "not-an-image"
q "SELECT kind, detail FROM v_entries WHERE path = '$WORK/st/a.tar!link.qcow2'" "member-symlink|base.qcow2"
q "SELECT disk_id, href, capacity, format FROM ovf_disks" "vmdisk1|over.qcow2|4194304|http://www.qemu.org/qcow2"
q "SELECT status, chain_depth FROM v_images WHERE path = '$WORK/st/vm.ova!over.qcow2'" "ok|1"
q "SELECT status, chain_depth FROM v_images WHERE path = '$WORK/st/c.tar.gz!sub/over2.qcow2'" "ok|2"
q "SELECT status, chain_depth FROM v_images WHERE path = '$WORK/st/d.zip!sub/over2.qcow2'" "ok|2"
q "SELECT count(*) FROM v_images WHERE path LIKE '$WORK/st/%!%'" "13"
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
		got=$(sqlite3 -separator ' ' db.sqlite "SELECT start, length, depth, present, zero, data, compressed, offset IS NOT NULL FROM v_map WHERE path = '$WORK/st/$a!$m' ORDER BY start" | sed 's/ 1$/ True/; s/ 0$/ False/')
		[ "$got" == "$want" ] && ok || { bad "v_map of $a!$m"; diff <(echo "$want") <(echo "$got") | head -5; }
	done
done
# offsets in an uncompressed tar are member offsets: equal to the extracted file's
want=$(cd src && "$IMGAUDIT" map --output=json over.qcow2 | python3 -c '
import json, sys
print(" ".join(str(e.get("offset")) for e in json.load(sys.stdin) if e["depth"] == 0))')
got=$(sqlite3 db.sqlite "SELECT group_concat(coalesce(offset, 'None'), ' ') FROM (SELECT offset FROM v_map WHERE path = '$WORK/st/a.tar!over.qcow2' AND depth = 0 ORDER BY start)")
[ "$got" == "$want" ] && ok || bad "member offsets: want $want got $got"
# --no-archives leaves them alone
"$IMGAUDIT" scan --db na.sqlite --quiet --no-archives st
[ "$(sqlite3 na.sqlite "SELECT count(*) FROM v_images")" = 0 ] && ok || bad "--no-archives"

# Every compression, sparse members and a nested archive: for every member
# image, v_map (offsets and the file column included) equals `imgaudit map`
# of the file extracted with its holes.  Sparse holes are holes whether the
# member is mapped in place or spooled (in memory or in the spool file); a
# member stored whole is data from end to end, as in place.
mkdir -p src2 st2
(
	cd src2 || exit 1
	truncate -s 4M holes.raw
	dd if=/dev/urandom of=holes.raw bs=64k seek=10 count=3 conv=notrunc status=none
	dd if=/dev/urandom of=holes.raw bs=64k seek=40 count=1 conv=notrunc status=none
	qemu-img create -q -f qcow2 -b holes.raw -F raw onholes.qcow2
	qemu-io -c 'write -P 3 0 64k' onholes.qcow2 >/dev/null
	cp ../src/base.qcow2 ../src/over.qcow2 .
	tar -S --format=gnu -cf ../st2/g.tar holes.raw onholes.qcow2
	tar -S --format=pax -cf ../st2/p.tar holes.raw onholes.qcow2
	tar -S --format=gnu -czf ../st2/g.tar.gz holes.raw onholes.qcow2
	tar -S --format=pax -cJf ../st2/p.tar.xz holes.raw onholes.qcow2
	tar -cJf ../st2/c.tar.xz base.qcow2 over.qcow2
	tar --zstd -cf ../st2/c.tar.zst base.qcow2 over.qcow2
	tar -cjf ../st2/c.tar.bz2 base.qcow2 over.qcow2
	tar -cf inner.tar base.qcow2 over.qcow2
	tar -czf ../st2/nested.tar.gz inner.tar
	rm inner.tar
)
head -c 80M /dev/zero > big.raw
head -c 1M /dev/urandom | dd of=big.raw conv=notrunc status=none
qemu-img create -q -f qcow2 -b big.raw -F raw onbig.qcow2
tar -czf st2/big.tar.gz big.raw onbig.qcow2 # big.raw spills to the spool file
tar -cf st2/big.tar big.raw onbig.qcow2
"$IMGAUDIT" scan --db db2.sqlite --quiet st2; rc=$?
[ $rc = 0 ] && ok || bad "scan of st2: exit $rc"
rows() { # rows DB PATH: v_map rows as "start length depth present zero data compressed offset file"
	sqlite3 -separator ' ' "$1" "SELECT start, length, depth, present, zero, data, compressed, coalesce(offset, 'None'), coalesce(file, 'None') FROM v_map WHERE path = '$WORK/$2' ORDER BY start" | rel
}
want_rows() { # want_rows DIR FILE ARCHIVE: imgaudit map of the extracted file, in the same form
	(cd "$1" && "$IMGAUDIT" map --output=json "$2") | python3 -c '
import json, sys
arch, name, chain = sys.argv[1], sys.argv[2], sys.argv[3:]
for e in json.load(sys.stdin):
    off = e.get("offset")
    f = "None" if off is None else arch + "!" + chain[e["depth"]]
    print(e["start"], e["length"], e["depth"], int(e["present"]), int(e["zero"]), int(e["data"]),
          int(e["compressed"]), "None" if off is None else off, f)' "$3" "$2" "${@:4}"
}
n=0
# member_rows ARCHIVE MEMBER CHAIN...: its v_map rows against qemu's map of the extracted member
member_rows() {
	local a=$1
	shift
	[ "$(rows db2.sqlite "st2/$a!$1")" == "$(want_rows src2 "$1" "st2/$a" "${@:2}")" ] && ok || {
		bad "v_map of $a!$1"; diff <(want_rows src2 "$1" "st2/$a" "${@:2}") <(rows db2.sqlite "st2/$a!$1") | head -5; }
	n=$((n + 1))
}
for a in g.tar p.tar g.tar.gz p.tar.xz; do
	member_rows "$a" holes.raw holes.raw
	member_rows "$a" onholes.qcow2 onholes.qcow2 holes.raw
done
for a in c.tar.xz c.tar.zst c.tar.bz2 nested.tar.gz!inner.tar; do
	member_rows "$a" base.qcow2 base.qcow2
	member_rows "$a" over.qcow2 over.qcow2 base.qcow2
done
[ $n = 16 ] && ok || bad "compared $n members"
q2() { local got; got=$(sqlite3 db2.sqlite "$1" 2>&1 | rel); [ "$got" == "$2" ] && ok || { bad "$1"; echo "    expected: $2"; echo "    got:      $got"; }; }
q2 "SELECT status, chain_depth, backing_path FROM v_images WHERE path = '$WORK/st2/nested.tar.gz!inner.tar!over.qcow2'" \
	"ok|1|st2/nested.tar.gz!inner.tar!base.qcow2"
# the same member, whole in memory, spilled to the spool file, or in place: one map
for a in big.tar big.tar.gz; do
	q2 "SELECT start, length, depth, zero, data FROM v_map WHERE path = '$WORK/st2/$a!big.raw'" "0|83886080|0|0|1"
	q2 "SELECT count(*) FROM v_map WHERE path = '$WORK/st2/$a!onbig.qcow2'" "1"
done

lib_summary test_scan_archives
