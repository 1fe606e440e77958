#!/bin/bash
# Archive members are probed before they are spooled (issue 10): a 1 GiB
# member of log text in a .tar.gz and in a .zip is recorded as not-an-image,
# as before, without being decompressed into the spool.  The proof is a file
# size limit (ulimit -f, SIGXFSZ ignored) far below the member: spooling it
# would spill past the spool's memory allowance (64 MiB) into its temporary
# file, whose write fails with EFBIG, and the member would be recorded as
# unreadable.  The images beside it are found and mapped as before (v_map
# equals `imgaudit map` of the extracted file).  A member left unspooled that
# an image later uses as its raw backing file is read again by a second pass:
# its chain and map are those of the extracted files.
. "$(dirname "$0")/lib.sh"
need_qemu
need python3 sqlite3
lib_workdir member-probe
q() { sql_eq db.sqlite "$1" "$2"; }

# the same check as test_scan_archives.sh: the member's map is the extracted file's
map_eq() { # DB-PATH DIR FILE
	local want got
	want=$(cd "$2" && "$IMGAUDIT" map --output=json "$3" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    print(e["start"], e["length"], e["depth"], int(e["present"]), int(e["zero"]), int(e["data"]), int(e["compressed"]))')
	got=$(sqlite3 -separator ' ' db.sqlite "SELECT start, length, depth, present, zero, data, compressed FROM v_map WHERE path = '$WORK/$1' ORDER BY start")
	[ -n "$want" ] && [ "$got" == "$want" ] && ok || { bad "v_map of $1"; diff <(echo "$want") <(echo "$got") | head -5; }
}

mkdir -p src st st2
cd src
qemu-img create -q -f qcow2 disk.qcow2 8M
qemu-io -c 'write -P 7 0 256k' -c 'write -P 9 3M 64k' -c 'write -z 5M 64k' disk.qcow2 >/dev/null
python3 "$HERE/big_member_archive.py" tgz ../st/big.tar.gz app.log 1024 disk.qcow2
python3 "$HERE/big_member_archive.py" zip ../st/big.zip app.log 1024 disk.qcow2
# a raw backing file that cannot be told from its head (8 MiB of the same
# text), before the overlay that names it
python3 "$HERE/big_member_archive.py" tgz ../st2/chain.tar.gz base.bin 8
tar -xzf ../st2/chain.tar.gz
qemu-img create -q -f qcow2 -b base.bin -F raw over.qcow2
qemu-io -c 'write -P 5 1M 64k' over.qcow2 >/dev/null
python3 "$HERE/big_member_archive.py" tgz ../st2/chain.tar.gz base.bin 8 over.qcow2
python3 "$HERE/big_member_archive.py" zip ../st2/chain.zip base.bin 8 over.qcow2
cd ..

# 1. the big members: never spooled, so a 16 MiB file size limit does not matter
(
	trap '' XFSZ
	ulimit -f 16384
	"$IMGAUDIT" scan --db db.sqlite --quiet st
)
rc=$?
eq "scan exit status under ulimit -f" "$rc" 0
for a in big.tar.gz big.zip; do
	q "SELECT f.size, e.kind, e.detail FROM files f JOIN v_entries e ON e.path = f.path WHERE f.path = '$WORK/st/$a!app.log'" \
		"1073741824|not-an-image|"
	q "SELECT format, status FROM v_images WHERE path = '$WORK/st/$a!disk.qcow2'" "qcow2|ok"
	map_eq "st/$a!disk.qcow2" src disk.qcow2
done
q "SELECT count(*) FROM v_entries WHERE kind = 'unreadable'" "0"
q "SELECT count(*) FROM findings" "0"

# 2. the second pass: base.bin was left unspooled, then over.qcow2 used it
"$IMGAUDIT" scan --db db.sqlite --quiet st2
eq "scan exit status (chains)" "$?" 0
for a in chain.tar.gz chain.zip; do
	q "SELECT status, chain_depth, backing_path FROM v_images WHERE path = '$WORK/st2/$a!over.qcow2'" \
		"ok|1|st2/$a!base.bin"
	q "SELECT i.format, i.recognised_by FROM images i JOIN files f ON f.id = i.file_id WHERE f.path = '$WORK/st2/$a!base.bin'" \
		"raw|reference"
	map_eq "st2/$a!over.qcow2" src over.qcow2
done
lib_summary test_scan_member_probe
