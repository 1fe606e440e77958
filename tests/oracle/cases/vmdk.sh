# VMDK against qemu-img map: every subformat qemu-img creates, streamOptimized
# (qemu's own and a VMware-style one with the footer), zeroed grains,
# hand-written multi-extent descriptors with qemu's parsing quirks, chains,
# windows, and malformed images.
. "$(dirname "$0")/../lib.sh"

# Replace bytes of a file in place: patch FILE OFFSET PYTHON-BYTES-EXPR
patch() {
	python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); f.write($3)" "$1" "$2"
}
le64() { echo "__import__('struct').pack('<Q', $1)"; }
le32() { echo "__import__('struct').pack('<I', $1)"; }
HDR='# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'

for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
	scenario "$sub"
	qemu-img create -q -f vmdk -o subformat=$sub d.vmdk 4M
	qemu-io -f vmdk -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 1M 64k' -c 'write -z 2M 64k' \
		-c 'write -P 0xcc 3M 200k' d.vmdk >/dev/null
	oracle_map d.vmdk
	oracle_map -s 13000 -l 1200000 d.vmdk
	oracle_map -s 1M -l 64k d.vmdk
done

scenario streamOptimized
truncate -s 4M src.raw
dd if=/dev/urandom of=src.raw bs=64k seek=2 count=3 conv=notrunc status=none
dd if=/dev/urandom of=src.raw bs=64k seek=40 count=1 conv=notrunc status=none
qemu-img convert -O vmdk -o subformat=streamOptimized src.raw s.vmdk
oracle_map s.vmdk
oracle_map -s 200000 s.vmdk
# VMware style: the header says "grain directory at end", the footer has it.
python3 - s.vmdk vmw.vmdk <<'EOF'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
d += b'\0' * (-len(d) % 512)
hdr = bytes(d[0:512])
d[56:64] = struct.pack('<Q', 0xffffffffffffffff)
footer = struct.pack('<QII', 0, 0, 3) + b'\0' * 496 + hdr + struct.pack('<QII', 0, 0, 0) + b'\0' * 496
open(sys.argv[2], 'wb').write(bytes(d) + footer)
EOF
oracle_map vmw.vmdk
cp vmw.vmdk badfoot.vmdk
patch badfoot.vmdk $(($(stat -c %s badfoot.vmdk) - 1024)) "b'XXXX'"
oracle_map badfoot.vmdk
expect_fail badfoot.vmdk

scenario zeroed_grain
qemu-img create -q -f vmdk -o zeroed_grain=on z.vmdk 4M
qemu-io -f vmdk -c 'write -P 1 0 64k' -c 'write -z 1M 64k' -c 'write -z 0 64k' \
	-c 'write -P 2 2M 128k' -c 'write -z 2M 64k' z.vmdk >/dev/null
oracle_map z.vmdk
qemu-img create -q -f vmdk nz.vmdk 4M
qemu-io -f vmdk -c 'write -P 1 0 64k' -c 'write -z 1M 64k' nz.vmdk >/dev/null
oracle_map nz.vmdk

scenario multi_extent # the S27 layout, plus qemu's parsing quirks
head -c 2M /dev/urandom >A.bin
truncate -s 1M B.bin
qemu-img create -q -f vmdk S.vmdk 1M
qemu-io -f vmdk -c 'write -P 1 512k 64k' S.vmdk >/dev/null
printf "${HDR}createType=\"monolithicFlat\"\n\n# Extent description\nRW 1024 FLAT \"A.bin\" 0\nRW 1024 FLAT \"A.bin\" 1024\nRW 2048 FLAT \"B.bin\" 0\nRW 2048 SPARSE \"S.vmdk\"\nRDONLY 2048 FLAT \"A.bin\" 0\nRW 1024 FLAT \"A.bin\" 2048\n" >d.vmdk
oracle_map d.vmdk
oracle_map -s 2000000 -l 1500000 d.vmdk
# Blank lines before an extent line repeat it; RDONLY, NOACCESS, ZERO and
# zero-sized lines are skipped; a SPARSE extent's size comes from its header.
printf "${HDR}createType=\"vmfs\"\n\n\nRW 100 FLAT \"A.bin\" 7\nNOACCESS 10 FLAT \"A.bin\" 0\nRW 10 ZERO\nRW 0 FLAT \"A.bin\" 0\nRW 7 SPARSE \"S.vmdk\"\nRW 300 VMFS \"B.bin\"\nRW 50 VMFSSPARSE \"S.vmdk\"\n" >q.vmdk
oracle_map q.vmdk
printf "${HDR}createType=\"monolithicFlat\"\n" >none.vmdk
oracle_map none.vmdk
# A sparse extent whose capacity is not a multiple of the grain: its last
# grain runs on into the next extent.
qemu-img create -q -f vmdk odd.vmdk 100k
qemu-io -f vmdk -c 'write -P 1 64k 36k' odd.vmdk >/dev/null
printf "${HDR}createType=\"monolithicFlat\"\nRW 200 SPARSE \"odd.vmdk\"\nRW 1024 FLAT \"A.bin\" 0\nRW 200 SPARSE \"odd.vmdk\"\nRW 200 SPARSE \"S.vmdk\"\n" >straddle.vmdk
oracle_map straddle.vmdk
oracle_map -s 150000 straddle.vmdk
# A flat offset beyond the file: holes as far as qemu is concerned.
printf "${HDR}createType=\"monolithicFlat\"\nRW 100 FLAT \"A.bin\" 100000\n" >far.vmdk
oracle_map far.vmdk
printf "${HDR}createType=\"monolithicFlat\"\nRW 100 FLAT \"$PWD/A.bin\" 1\nRW 2048 SPARSE \"$PWD/S.vmdk\"\n" >abs.vmdk
oracle_map abs.vmdk
head -c 1M /dev/urandom >rnd.bin
oracle_map -f vmdk rnd.bin
mkdir -p sub
cp d.vmdk A.bin B.bin S.vmdk sub/
oracle_map sub/d.vmdk
oracle_map ./sub/../sub/d.vmdk

scenario descriptor_errors
head -c 1M /dev/urandom >A.bin
for line in 'RW 1024 ZERO "A.bin" 0' 'RW 10 FLAT "A.bin"' 'RW 10 FLAT "A.bin" -1' \
	'RW 10 VMFS "A.bin" 5' 'RW 10 SPARSE "A.bin"' 'RW 10 FLAT "missing.bin" 0' \
	'RW 10 SPARSE "A.bin" 0'; do
	printf "${HDR}createType=\"monolithicFlat\"\n%s\n" "$line" >e.vmdk
	oracle_map e.vmdk
	expect_fail e.vmdk
done
# The disk may not exceed qemu's BDRV_MAX_LENGTH (2^63 - 1 GiB): one sector
# more and qemu fails to open it ("File too large").
for n in 18014398507382784 18014398507382785; do
	printf "${HDR}createType=\"monolithicFlat\"\nRW 2048 FLAT \"A.bin\" 0\nRW $n FLAT \"A.bin\" 0\n" >max.vmdk
	oracle_map max.vmdk
done
expect_fail max.vmdk
for ct in custom monolithicSparse streamOptimized; do
	printf "${HDR}createType=\"$ct\"\nRW 10 FLAT \"A.bin\" 0\n" >ct.vmdk
	oracle_map -f vmdk ct.vmdk
	expect_fail -f vmdk ct.vmdk
done
printf 'version=1\ncreateType="monolithicFlat"\nRW 10 FLAT "A.bin" 0\n' >nocid.vmdk
oracle_map -f vmdk nocid.vmdk
printf 'version=1\nCID=zz\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 10 FLAT "A.bin" 0\n' >badcid.vmdk
oracle_map -f vmdk badcid.vmdk
printf 'version=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 10 FLAT "A.bin" 0\n' >onlypcid.vmdk
oracle_map onlypcid.vmdk
# 20000 extents: qemu takes minutes; we refuse fast.
{
	printf "${HDR}createType=\"monolithicFlat\"\n"
	for i in $(seq 20000); do echo 'RW 1 FLAT "A.bin" 0'; done
} >many.vmdk
check "20000 extents fail fast" timeout 10 bash -c "! '$IMGAUDIT' map many.vmdk >/dev/null 2>&1"
expect_fail many.vmdk
# A probed descriptor must start with version= (comments and space-only lines first).
printf "\n${HDR}createType=\"monolithicFlat\"\nRW 10 FLAT \"A.bin\" 0\n" >blankfirst.vmdk
oracle_map blankfirst.vmdk
printf "# c\n   \nversion=2\r\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 10 FLAT \"A.bin\" 0\n" >crlf.vmdk
oracle_map crlf.vmdk

scenario chain
qemu-img create -q -f vmdk base.vmdk 1M
qemu-io -f vmdk -c 'write -P 1 0 64k' -c 'write -P 2 512k 64k' base.vmdk >/dev/null
qemu-img create -q -f vmdk -b base.vmdk -F vmdk top.vmdk 1M
qemu-io -f vmdk -c 'write -P 3 512k 64k' top.vmdk >/dev/null
oracle_map top.vmdk
oracle_map -s 500000 -l 100000 top.vmdk
qemu-img create -q -f vmdk -b top.vmdk -F vmdk top2.vmdk 2M
qemu-io -f vmdk -c 'write -P 4 1500k 4k' top2.vmdk >/dev/null
oracle_map top2.vmdk
qemu-img create -q -f qcow2 -b top.vmdk -F vmdk q.qcow2 1M
qemu-io -f qcow2 -c 'write -P 5 64k 64k' q.qcow2 >/dev/null
oracle_map q.qcow2
mkdir -p d
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse -b ../top.vmdk -F vmdk d/two.vmdk 1M
qemu-io -f vmdk -c 'write -P 6 0 4k' d/two.vmdk >/dev/null
oracle_map d/two.vmdk
# A parent that would not probe as VMDK (blank first line) is still opened as VMDK.
printf "\n${HDR}createType=\"monolithicFlat\"\nRW 2048 FLAT \"top.vmdk\" 0\n" >pdesc.vmdk
sed 's/parentFileNameHint="base.vmdk"/parentFileNameHint="pdesc.vmdk"/' top.vmdk >descparent.vmdk
oracle_map descparent.vmdk
# The parent is always opened as VMDK: a raw parent fails.
head -c 1M /dev/urandom >P.raw
sed 's/parentFileNameHint="base.vmdk"/parentFileNameHint="P.raw"\n   /' top.vmdk >rawparent.vmdk
oracle_map rawparent.vmdk
# The parent's CID changed (another disk under the same name): qemu reads
# through it all the same (it checks the CID only before a copy-on-write);
# so do we, with a parent-mismatch warning naming both CIDs.
cp base.vmdk base.orig
python3 -c "
d = bytearray(open('base.vmdk', 'rb').read())
i = d.find(b'CID=')
d[i + 4:i + 12] = b'0badc0de'
open('base.vmdk', 'wb').write(d)"
oracle_map top.vmdk
check "parentCID against the parent's CID: a parent-mismatch warning" \
	bash -c "'$IMGAUDIT' map --output=json top.vmdk 2>&1 >/dev/null | grep parent-mismatch | grep -q 'the parent has cid 0badc0de'"
cp base.orig base.vmdk
check "matching CIDs: no warning" \
	bash -c "! '$IMGAUDIT' map --output=json top.vmdk 2>&1 >/dev/null | grep -q parent-mismatch"
rm base.vmdk
oracle_map top.vmdk

scenario malformed
qemu-img create -q -f vmdk g.vmdk 1M
qemu-io -f vmdk -c 'write -P 1 512k 64k' g.vmdk >/dev/null
# header fields (after the magic): version 4, flags 8, capacity 12, grain 20,
# desc 28, desc size 36, GTEs per GT 44, rgd 48, gd 56, grain offset 64
cp g.vmdk gdpast.vmdk && patch gdpast.vmdk 56 "$(le64 100000)"
oracle_map gdpast.vmdk
cp g.vmdk gdhuge.vmdk && patch gdhuge.vmdk 56 "$(le64 2**54)"
oracle_map gdhuge.vmdk
expect_fail gdhuge.vmdk
cp g.vmdk gtpast.vmdk && patch gtpast.vmdk 10752 "$(le32 999999)"
oracle_map gtpast.vmdk
cp g.vmdk gtes.vmdk && patch gtes.vmdk 44 "$(le32 513)"
oracle_map gtes.vmdk
expect_fail gtes.vmdk
cp g.vmdk gtes0.vmdk && patch gtes0.vmdk 44 "$(le32 0)"
oracle_map gtes0.vmdk
cp g.vmdk grain0.vmdk && patch grain0.vmdk 20 "$(le64 0)"
oracle_map grain0.vmdk
expect_fail grain0.vmdk
cp g.vmdk grainbig.vmdk && patch grainbig.vmdk 20 "$(le64 0x400000)"
oracle_map grainbig.vmdk
cp g.vmdk grainodd.vmdk && patch grainodd.vmdk 20 "$(le64 7)"
oracle_map grainodd.vmdk
cp g.vmdk gdsmall.vmdk && patch gdsmall.vmdk 12 "$(le64 2**20)"
oracle_map gdsmall.vmdk
cp g.vmdk l1big.vmdk && patch l1big.vmdk 12 "$(le64 2**40)" && patch l1big.vmdk 44 "$(le32 1)" && patch l1big.vmdk 20 "$(le64 1)"
oracle_map l1big.vmdk
cp g.vmdk version.vmdk && patch version.vmdk 4 "$(le32 4)"
oracle_map version.vmdk
expect_fail version.vmdk
cp g.vmdk v3.vmdk && patch v3.vmdk 4 "$(le32 3)"
oracle_map v3.vmdk
head -c 60000 g.vmdk >trunc.vmdk
oracle_map trunc.vmdk
expect_fail trunc.vmdk
head -c 3 g.vmdk >tiny.vmdk
oracle_map -f vmdk tiny.vmdk
head -c 100 g.vmdk >hdronly.vmdk
oracle_map hdronly.vmdk
cp g.vmdk nocid.vmdk && patch nocid.vmdk 512 "b'X' * 10240"
oracle_map nocid.vmdk
cp g.vmdk noquote.vmdk && patch noquote.vmdk 512 "b'CID=1 parentCID=1 parentFileNameHint=\"abc' + b'x' * 9000"
oracle_map noquote.vmdk
cp g.vmdk rgd.vmdk && patch rgd.vmdk 48 "$(le64 2**55-1)"
oracle_map rgd.vmdk
# A binary container holding only a descriptor (capacity 0, descriptor offset set).
head -c 1M /dev/urandom >A.bin
python3 - <<'EOF'
import struct
desc = b'# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 100 FLAT "A.bin" 3\n'
h = b'KDMV' + struct.pack('<IIQQQQIQQQ', 1, 3, 0, 128, 1, 1, 512, 0, 0, 0)
open('embedded.vmdk', 'wb').write(h.ljust(512, b'\0') + desc.ljust(512, b'\0'))
# VMDK 3 ("COWD") sparse: 2048 sectors, 16-sector grains, GD at sector 4.
h = b'COWD' + struct.pack('<IIIIII', 1, 3, 2048, 16, 4, 1)
gd = struct.pack('<I', 5)
gt = [0] * 4096
gt[3] = 40; gt[4] = 56; gt[100] = 72
d = (h.ljust(512, b'\0') + b'CID=1\nparentCID=ffffffff\n').ljust(2048, b'\0') + gd.ljust(512, b'\0') + struct.pack('<4096I', *gt)
open('cowd.vmdk', 'wb').write(d.ljust(40 * 512, b'\0') + b'\x55' * 48 * 512)
EOF
oracle_map embedded.vmdk
oracle_map cowd.vmdk
printf "${HDR}createType=\"monolithicFlat\"\nRW 10 SPARSE \"cowd.vmdk\"\nRW 10 SPARSE \"embedded.vmdk\"\n" >nested.vmdk
oracle_map nested.vmdk

oracle_summary
