#!/bin/bash
# VirtualBox differencing VDI chains, built with tests/tools/mkvdi.py from the
# VDI 1.1 header layout (no tool here makes them; qemu-img refuses them).  A
# differencing image names its parent by uuidCreate (uuidLinkage) and records
# the parent's uuidModify (uuidParentModify).  `imgaudit map` finds the parent
# among the *.vdi beside the child, in the directory above and in the
# --allow-root directories; `imgaudit scan` among the scanned *.vdi.  Each
# guest sector holds "TAG@SECTOR;" of the layer that wrote its block: the map
# and the bytes read through it are checked sector by sector against the
# guest content the chain should hold.  Hostile cases: a parent-modification
# mismatch, uuid loops (two images, one naming itself), a missing parent
# (unknown ranges in the scan), a parent of another size, a parent whose
# block size is not supported, a null parent uuid.
. "$(dirname "$0")/lib.sh"
MKVDI="python3 $SOURCE_DIR/tests/tools/mkvdi.py"
lib_workdir vdi
M=$((1 << 20))
U_BASE=11111111-2222-4333-8444-000000000001
U_C1=11111111-2222-4333-8444-000000000002
U_C2=11111111-2222-4333-8444-000000000003
MOD_BASE=aaaaaaaa-0000-4000-8000-000000000001
MOD_C1=aaaaaaaa-0000-4000-8000-000000000002

# A VM folder: base.vdi, two snapshots in Snapshots/ (VirtualBox's layout).
mkdir -p vm/Snapshots
$MKVDI make vm/base.vdi --size $((6 * M)) --uuid $U_BASE --modify $MOD_BASE \
	--write 0=base --write 1=base --write 3=base --write 4=base >/dev/null
$MKVDI make "vm/Snapshots/{$U_C1}.vdi" --type diff --size $((6 * M)) --uuid $U_C1 --modify $MOD_C1 \
	--parent $U_BASE --parent-modify $MOD_BASE --write 1=snap1 --write 2=snap1 --discard 3 >/dev/null
$MKVDI make "vm/Snapshots/{$U_C2}.vdi" --type diff --size $((6 * M)) --uuid $U_C2 \
	--parent $U_C1 --parent-modify $MOD_C1 --write 2=snap2 --write 5=snap2 >/dev/null
C2="vm/Snapshots/{$U_C2}.vdi"

# the guest content: block 0 base, 1 snap1, 2 snap2, 3 discarded in snap1 (zero), 4 base, 5 snap2
"$IMGAUDIT" map "$C2" >map.txt 2>err.txt && ok || bad "map of the chain: $(cat err.txt)"
$MKVDI check --size $((6 * M)) --expect 0=base --expect 1=snap1 --expect 2=snap2 \
	--expect 4=base --expect 5=snap2 <map.txt >/dev/null && ok || bad "content read through the chain"
"$IMGAUDIT" map --output=json "$C2" >map.json
eq "json map: depth per block" "$(python3 -c '
import json, sys
print(" ".join("%d:%d:%s" % (e["start"] >> 20, e["depth"], "z" if e["zero"] else "d")
               for e in json.load(open(sys.argv[1]))))' map.json)" "0:2:d 1:1:d 2:0:d 3:1:z 4:2:d 5:0:d"
eq "no warning on a consistent chain" "$(cat err.txt)" ""
# the middle image alone
"$IMGAUDIT" map "vm/Snapshots/{$U_C1}.vdi" | $MKVDI check --size $((6 * M)) --expect 0=base \
	--expect 1=snap1 --expect 2=snap1 --expect 4=base >/dev/null && ok || bad "content of the middle snapshot"

# the parent found through --allow-root (another directory) and refused outside it
mkdir -p other store
$MKVDI make store/gold.vdi --size $((2 * M)) --uuid 22222222-0000-4000-8000-000000000001 --write 0=gold >/dev/null
$MKVDI make other/child.vdi --type diff --size $((2 * M)) --parent 22222222-0000-4000-8000-000000000001 \
	--write 1=kid >/dev/null
"$IMGAUDIT" map other/child.vdi >/dev/null 2>err.txt && bad "parent found outside the searched directories" || ok
grep -q "no vdi image whose uuid is 22222222-0000-4000-8000-000000000001" err.txt && ok || bad "missing parent message: $(cat err.txt)"
"$IMGAUDIT" map --allow-root=store other/child.vdi | $MKVDI check --size $((2 * M)) --expect 0=gold \
	--expect 1=kid >/dev/null && ok || bad "parent found in --allow-root"

# the scan too looks at the top of each --allow-root directory
"$IMGAUDIT" scan --db allow.sqlite --quiet --allow-root store other 2>/dev/null
eq "scan: parent in --allow-root" "$(sqlite3 allow.sqlite "SELECT target_path, status FROM v_links
        WHERE path = '$WORK/other/child.vdi'")" "store/gold.vdi|ok"
"$IMGAUDIT" scan --db noallow.sqlite --quiet other 2>/dev/null
eq "scan: parent outside the roots" "$(sqlite3 noallow.sqlite "SELECT status FROM v_links
        WHERE path = '$WORK/other/child.vdi'")" "missing"

# parent-mismatch: the parent was modified after the child was made
mkdir -p mm
$MKVDI make mm/base.vdi --size $((2 * M)) --uuid 33333333-0000-4000-8000-000000000001 \
	--modify 33333333-0000-4000-8000-0000000000ff --write 0=b >/dev/null
$MKVDI make mm/child.vdi --type diff --size $((2 * M)) --parent 33333333-0000-4000-8000-000000000001 \
	--parent-modify 33333333-0000-4000-8000-000000000001 --write 1=c >/dev/null
"$IMGAUDIT" map mm/child.vdi >map.txt 2>err.txt && ok || bad "mismatch: still mapped"
grep -q "\[parent-mismatch\]" err.txt && grep -q "33333333-0000-4000-8000-0000000000ff" err.txt && ok ||
	bad "mismatch warning: $(cat err.txt)"
$MKVDI check --size $((2 * M)) --expect 0=b --expect 1=c <map.txt >/dev/null && ok || bad "mismatch: mapped through"

# loops, a missing parent, a null parent uuid, an unsupported parent
mkdir -p bad
$MKVDI make bad/a.vdi --type diff --size $((2 * M)) --uuid 44444444-0000-4000-8000-00000000000a \
	--parent 44444444-0000-4000-8000-00000000000b --write 0=a >/dev/null
$MKVDI make bad/b.vdi --type diff --size $((2 * M)) --uuid 44444444-0000-4000-8000-00000000000b \
	--parent 44444444-0000-4000-8000-00000000000a >/dev/null
$MKVDI make bad/self.vdi --type diff --size $((2 * M)) --uuid 44444444-0000-4000-8000-00000000000c \
	--parent 44444444-0000-4000-8000-00000000000c >/dev/null
$MKVDI make bad/orphan.vdi --type diff --size $((2 * M)) --uuid 44444444-0000-4000-8000-00000000000d \
	--parent 44444444-0000-4000-8000-0000000000ee --write 1=o >/dev/null
$MKVDI make bad/nolink.vdi --type diff --size $((2 * M)) --uuid 44444444-0000-4000-8000-00000000000e >/dev/null
$MKVDI make bad/bigblock.vdi --size $((4 * M)) --block-size $((2 * M)) \
	--uuid 44444444-0000-4000-8000-00000000000f --write 0=p >/dev/null
$MKVDI make bad/overbig.vdi --type diff --size $((4 * M)) \
	--parent 44444444-0000-4000-8000-00000000000f --write 1=x >/dev/null
for f in a self; do
	"$IMGAUDIT" map bad/$f.vdi >/dev/null 2>err.txt && bad "loop $f mapped" || ok
	grep -q "a loop" err.txt && ok || bad "loop $f: $(cat err.txt)"
done
"$IMGAUDIT" map bad/nolink.vdi >/dev/null 2>err.txt && bad "null parent uuid mapped" || ok
grep -q "null parent uuid" err.txt && ok || bad "null parent uuid: $(cat err.txt)"
"$IMGAUDIT" map bad/overbig.vdi >/dev/null 2>err.txt && bad "unsupported parent mapped" || ok
grep -q "block size 2097152 is not 1048576" err.txt && ok || bad "block size of the parent: $(cat err.txt)"

# a parent of another size: smaller (the rest reads as zeroes) and larger (cut to the child)
mkdir -p size
$MKVDI make size/small.vdi --size $((2 * M)) --uuid 55555555-0000-4000-8000-000000000001 \
	--write 0=s --write 1=s >/dev/null
$MKVDI make size/grown.vdi --type diff --size $((4 * M)) --parent 55555555-0000-4000-8000-000000000001 \
	--write 3=g >/dev/null
"$IMGAUDIT" map size/grown.vdi | $MKVDI check --size $((4 * M)) --expect 0=s --expect 1=s \
	--expect 3=g >/dev/null && ok || bad "parent smaller than the child"
$MKVDI make size/large.vdi --size $((8 * M)) --uuid 55555555-0000-4000-8000-000000000002 \
	--write 0=L --write 6=L >/dev/null
$MKVDI make size/shrunk.vdi --type diff --size $((2 * M)) --parent 55555555-0000-4000-8000-000000000002 \
	--write 1=k >/dev/null
"$IMGAUDIT" map size/shrunk.vdi | $MKVDI check --size $((2 * M)) --expect 0=L --expect 1=k \
	>/dev/null && ok || bad "parent larger than the child"

# the scan: parents resolved among the scanned *.vdi, links named uuid:UUID
find vm mm bad size -type f -exec touch -d '-1 hour' {} + # settled: an unchanged rescan trusts them
"$IMGAUDIT" scan --db db.sqlite --quiet vm mm bad size 2>/dev/null
q() { sqlite3 db.sqlite "$1"; }
eq "scan: the chain's links" "$(q "SELECT path, backing, target_path, status FROM v_links
        WHERE path LIKE '$WORK/vm/%' ORDER BY path")" \
	"$(printf 'vm/Snapshots/{%s}.vdi|uuid:%s|vm/base.vdi|ok\nvm/Snapshots/{%s}.vdi|uuid:%s|vm/Snapshots/{%s}.vdi|ok' \
		$U_C1 $U_BASE $U_C2 $U_C1 $U_C1)"
eq "scan: the chain's depth" "$(q "SELECT chain_depth, status FROM v_images WHERE path = '$WORK/$C2'")" "2|ok"
eq "scan: mismatch" "$(q "SELECT status FROM v_links WHERE path = '$WORK/mm/child.vdi'")" "parent-mismatch"
eq "scan: mismatch finding" "$(q "SELECT count(*) FROM v_findings WHERE path = '$WORK/mm/child.vdi'
        AND code = 'parent-mismatch'")" "1"
eq "scan: missing parent" "$(q "SELECT status, target_path IS NULL FROM v_links WHERE path = '$WORK/bad/orphan.vdi'")" "missing|1"
eq "scan: missing parent: unknown, not zero" "$(q "SELECT unknown_bytes FROM v_space WHERE path = '$WORK/bad/orphan.vdi'")" \
	"$((1 * M))"
eq "scan: the child's own block is known" "$(q "SELECT data FROM v_map WHERE path = '$WORK/bad/orphan.vdi'
        AND start = $M")" "1"
eq "scan: loops and broken parents" "$(q "SELECT path, status FROM v_images WHERE path LIKE '$WORK/bad/%' ORDER BY path")" \
	"$(printf 'bad/a.vdi|loop\nbad/b.vdi|loop\nbad/bigblock.vdi|unsupported\nbad/nolink.vdi|corrupt\nbad/orphan.vdi|missing\nbad/overbig.vdi|unreadable\nbad/self.vdi|loop')"
python3 "$SOURCE_DIR/tests/scripts/scan_vmap_check.py" db.sqlite "$IMGAUDIT" --min 8 >vmap.txt &&
	ok || bad "v_map differs from imgaudit map: $(head -5 vmap.txt)"
# unchanged: the consistent chains are carried over, not read
"$IMGAUDIT" scan --db db.sqlite --quiet vm mm bad size 2>/dev/null
eq "rescan: the chain carried over" "$(q "SELECT status FROM v_links WHERE path = '$WORK/$C2'")" "ok"
eq "rescan: only the broken ones and the mismatch read" \
	"$(q "SELECT files_read FROM scans ORDER BY id DESC LIMIT 1")" "8"
# the parent rewritten with another uuid: the child's link breaks (missing), nothing stale
$MKVDI make vm/base.vdi --size $((6 * M)) --uuid 99999999-2222-4333-8444-000000000001 --write 0=new >/dev/null
"$IMGAUDIT" scan --db db.sqlite --quiet vm mm bad size 2>/dev/null
eq "rescan: a parent whose uuid changed" "$(q "SELECT status FROM v_links WHERE path = '$WORK/vm/Snapshots/{$U_C1}.vdi'")" "missing"

# Two files carry the parent's uuid (a copy kept in backup/, walked first):
# without a registry the first found is taken; the VM's .vbox media registry
# names the parent, and the scan prefers it.
U_R=33333333-0000-4000-8000-000000000001
U_RC=33333333-0000-4000-8000-000000000002
for with in no yes; do
	rm -rf reg && mkdir -p reg/vm/backup reg/vm/Snapshots
	$MKVDI make reg/vm/base.vdi --size $((2 * M)) --uuid $U_R --write 0=real >/dev/null
	$MKVDI make reg/vm/backup/base.vdi --size $((2 * M)) --uuid $U_R --write 0=copy >/dev/null
	$MKVDI make "reg/vm/Snapshots/{$U_RC}.vdi" --type diff --size $((2 * M)) --uuid $U_RC \
		--parent $U_R --write 1=snap >/dev/null
	[ $with = yes ] && cat >reg/vm/vm.vbox <<VBOX
<?xml version="1.0"?>
<VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
  <Machine uuid="{33333333-0000-4000-8000-0000000000aa}" name="vm" snapshotFolder="Snapshots">
    <MediaRegistry>
      <HardDisks>
        <HardDisk uuid="{$U_R}" location="base.vdi" format="VDI" type="Normal">
          <HardDisk uuid="{$U_RC}" location="Snapshots/{$U_RC}.vdi" format="VDI"/>
        </HardDisk>
      </HardDisks>
    </MediaRegistry>
  </Machine>
</VirtualBox>
VBOX
	rm -f reg.db
	"$IMGAUDIT" scan --db reg.db --quiet reg 2>/dev/null
	got=$(sqlite3 reg.db "SELECT target_path FROM v_links WHERE path = '$WORK/reg/vm/Snapshots/{$U_RC}.vdi'")
	if [ $with = yes ]; then
		eq "scan: the .vbox registry chooses the parent" "$got" "reg/vm/base.vdi"
	else
		eq "scan: without a registry, the first found" "$got" "reg/vm/backup/base.vdi"
	fi
done

lib_summary test_vdi_diff
