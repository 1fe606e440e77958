#!/bin/bash
# vdi, qed, qcow (v1), parallels and luks: maps, chains that mix them, and
# malformed headers.
. "$(dirname "$0")/../lib.sh"

# patch FILE OFFSET PACKFMT VALUE: overwrite one field (python struct format).
patch() {
	python3 - "$@" <<'EOF'
import struct, sys
path, off, fmt, val = sys.argv[1], int(sys.argv[2], 0), sys.argv[3], sys.argv[4]
v = val.encode() if fmt.endswith('s') else int(val, 0)
with open(path, 'r+b') as f:
    f.seek(off)
    f.write(struct.pack(fmt, v))
EOF
}

# secret_map MODE DRIVER KEYOPT IMAGE: qemu needs the passphrase to open an
# encrypted image at all (--image-opts with a secret); imgaudit never does.
secret_map() {
	local mode=$1 drv=$2 keyopt=$3 img=$4 q i
	q=$(qemu-img map --output="$mode" --object secret,id=s0,data=x \
		--image-opts "driver=$drv,file.filename=$img,$keyopt=s0" 2>/dev/null; echo "rc=$?")
	i=$("$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output="$mode" "$img" 2>/dev/null; echo "rc=$?")
	if [ "$q" == "$i" ]; then
		_pass
	else
		_fail "map --output=$mode $img (with the secret for qemu)"
		diff <(printf '%s\n' "$q") <(printf '%s\n' "$i") | head -10 | sed 's/^/    /'
	fi
}
luks_map() { secret_map "$1" luks key-secret "$2"; }

# Offsets that cut runs in the middle, for -s/-l checks.
ranges() {
	local img=$1
	for s in 0 512 4095 65536 100000 1048575 1048576 2000000; do
		oracle_json -s "$s" "$img"
	done
	oracle_map -s 4096 -l 70000 "$img"
	oracle_map -l 1 "$img"
}

scenario vdi-dynamic
qemu-img create -q -f vdi d.vdi 4M
oracle_map d.vdi
qemu-io -f vdi -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 2M 64k' -c 'write -z 3M 4k' d.vdi >/dev/null
oracle_map d.vdi
ranges d.vdi
oracle_map -f vdi d.vdi
qemu-img create -q -f vdi o.vdi 5M
qemu-io -f vdi -c 'write 3M 4k' -c 'write 1M 4k' -c 'write 2M 4k' -c 'write 4M 1M' o.vdi >/dev/null
oracle_map o.vdi
cp o.vdi odd.vdi
patch odd.vdi 368 '<Q' 4193304 # a fractional last sector: qemu rounds up
oracle_map odd.vdi
cp o.vdi type3.vdi
patch type3.vdi 76 '<I' 3
oracle_map type3.vdi

scenario vdi-static
qemu-img create -q -f vdi -o static=on s.vdi 4M
qemu-io -f vdi -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 2M 64k' -c 'write -z 3M 4k' s.vdi >/dev/null
oracle_map s.vdi
ranges s.vdi

scenario vdi-malformed
qemu-img create -q -f vdi m.vdi 4M
qemu-io -f vdi -c 'write 0 4k' m.vdi >/dev/null
cp m.vdi bs0.vdi && patch bs0.vdi 376 '<I' 0 && oracle_map bs0.vdi
cp m.vdi bs2.vdi && patch bs2.vdi 376 '<I' 2097152 && oracle_map bs2.vdi
cp m.vdi ver.vdi && patch ver.vdi 68 '<I' 0x00010000 && oracle_map ver.vdi
cp m.vdi nb.vdi && patch nb.vdi 384 '<I' 3 && oracle_map nb.vdi
cp m.vdi ss.vdi && patch ss.vdi 360 '<I' 4096 && oracle_map ss.vdi
cp m.vdi sig.vdi && patch sig.vdi 64 '<I' 0x12345678 && oracle_map -f vdi sig.vdi
cp m.vdi ua.vdi && patch ua.vdi 340 '<I' 513 && oracle_map ua.vdi
cp m.vdi par.vdi && patch par.vdi 440 '<I' 1 && oracle_map par.vdi
# qemu reads zeroes past EOF; we refuse a block map that is not in the file.
cp m.vdi bmap.vdi && patch bmap.vdi 340 '<I' 0x4000000 && expect_fail bmap.vdi
cp m.vdi huge.vdi && patch huge.vdi 384 '<I' 0x3fffffff && patch huge.vdi 368 '<Q' 0x1000 &&
	expect_fail huge.vdi
head -c 300 m.vdi >short.vdi && expect_fail short.vdi

scenario qed-single
qemu-img create -q -f qed q.qed 1M
oracle_map q.qed
qemu-io -f qed -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 64k 64k' -c 'write -z 256k 64k' \
	-c 'write -z 512k 4k' -c 'write 960k 64k' -c 'write 896k 64k' q.qed >/dev/null
oracle_map q.qed
ranges q.qed
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 small.qed 40M
qemu-io -f qed -c 'write 0 12k' -c 'write 2M 4k' -c 'write -z 3M 8k' -c 'write 33M 4k' small.qed >/dev/null
oracle_map small.qed
ranges small.qed

scenario qed-chains
qemu-img create -q -f qed base.qed 1M
qemu-io -f qed -c 'write -P 1 0 64k' -c 'write -P 2 512k 64k' base.qed >/dev/null
qemu-img create -q -f qed -b base.qed -F qed top.qed 1M
qemu-io -f qed -c 'write -P 3 512k 64k' -c 'write -z 128k 64k' top.qed >/dev/null
oracle_map top.qed
qemu-img create -q -f raw base.raw 1M
qemu-io -f raw -c 'write -P 1 64k 64k' base.raw >/dev/null
qemu-img create -q -f qed -b base.raw -F raw qr.qed 2M
qemu-io -f qed -c 'write -P 3 512k 64k' qr.qed >/dev/null
oracle_map qr.qed
qemu-img create -q -f qcow2 -b base.qed -F qed q2.qcow2 1M
qemu-io -c 'write -P 3 256k 64k' q2.qcow2 >/dev/null
oracle_map q2.qcow2
# NEED_CHECK is ignored by read-only opens.
cp base.qed dirty.qed && patch dirty.qed 16 '<Q' 2 && oracle_map dirty.qed

scenario qed-malformed
qemu-img create -q -f qed m.qed 1M
qemu-io -f qed -c 'write -P 1 0 64k' -c 'write -P 2 512k 64k' m.qed >/dev/null
# Where the L2 table of m.qed and its first entry are.
l2=$(python3 -c "import struct;d=open('m.qed','rb').read();print(struct.unpack('<Q',d[65536:65544])[0])")
cp m.qed ua.qed && patch ua.qed "$l2" '<Q' $((327680 + 512)) && oracle_map ua.qed
cp m.qed eof.qed && patch eof.qed "$l2" '<Q' 720896 && oracle_map eof.qed
cp m.qed hdr.qed && patch hdr.qed "$l2" '<Q' 4096 && oracle_map hdr.qed
cp m.qed l2ua.qed && patch l2ua.qed 65536 '<Q' $((l2 + 8)) && oracle_map l2ua.qed
cp m.qed l1.qed && patch l1.qed 40 '<Q' 0x10000000 && oracle_map l1.qed
cp m.qed cs.qed && patch cs.qed 4 '<I' 3000 && oracle_map cs.qed
cp m.qed cs0.qed && patch cs0.qed 4 '<I' 0 && oracle_map cs0.qed
cp m.qed ts.qed && patch ts.qed 8 '<I' 0x40000000 && oracle_map ts.qed
cp m.qed ts1.qed && patch ts1.qed 8 '<I' 1 && oracle_map ts1.qed
cp m.qed feat.qed && patch feat.qed 16 '<Q' 8 && oracle_map feat.qed
cp m.qed sz.qed && patch sz.qed 48 '<Q' 1000 && oracle_map sz.qed
cp m.qed big.qed && patch big.qed 48 '<Q' 0x7000000000000000 && oracle_map big.qed
cp m.qed bk.qed && patch bk.qed 16 '<Q' 1 && patch bk.qed 56 '<I' 65000 &&
	patch bk.qed 60 '<I' 1000 && oracle_map bk.qed
cp m.qed tr.qed && truncate -s 700000 tr.qed && oracle_map tr.qed
head -c 40 m.qed >short.qed && expect_fail short.qed

scenario qcow-single
qemu-img create -q -f qcow c.qcow 1M
oracle_map c.qcow
qemu-io -f qcow -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 64k 64k' -c 'write -z 256k 64k' c.qcow >/dev/null
oracle_map c.qcow
ranges c.qcow
qemu-img convert -c -O qcow c.qcow cc.qcow
oracle_map cc.qcow
ranges cc.qcow
qemu-img create -q -f qcow big.qcow 3G
qemu-io -f qcow -c 'write 0 1k' -c 'write 1G 4k' -c 'write 2G 512' big.qcow >/dev/null
oracle_map big.qcow
# 2 TiB, two clusters written: qemu answers one cluster at a time (minutes);
# unallocated runs must be answered whole (it took us 20 s one cluster at a time).
qemu-img create -q -f qcow huge.qcow 2T
qemu-io -f qcow -c 'write -P 1 0 4k' -c 'write -P 2 1T 4k' huge.qcow >/dev/null
cat >huge.expected <<'EOF'
[{ "start": 0, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": 8396800},
{ "start": 4096, "length": 1099511623680, "depth": 0, "present": false, "zero": true, "data": false},
{ "start": 1099511627776, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true, "offset": 8404992},
{ "start": 1099511631872, "length": 1099511623680, "depth": 0, "present": false, "zero": true, "data": false}]
rc=0
EOF
check "2 TiB qcow maps in seconds" timeout 5 "$IMGAUDIT" map huge.qcow
expect_map json huge.expected --qemu-compat=7.2 huge.qcow

scenario qcow-chains
qemu-img create -q -f qcow base.qcow 1M
qemu-io -f qcow -c 'write -P 1 0 64k' -c 'write -P 2 512k 64k' base.qcow >/dev/null
qemu-img create -q -f qcow -b base.qcow -F qcow top.qcow 1M
qemu-io -f qcow -c 'write -P 3 512k 64k' top.qcow >/dev/null
oracle_map top.qcow
qemu-img create -q -f qcow -b base.qcow -F qcow long.qcow 2M
qemu-io -f qcow -c 'write -P 3 1536k 4k' long.qcow >/dev/null
oracle_map long.qcow
qemu-img create -q -f qcow2 -b top.qcow -F qcow q2.qcow2 1M
oracle_map q2.qcow2

scenario qcow-encrypted
qemu-img create -q -f qcow --object secret,id=s0,data=x \
	-o encrypt.format=aes,encrypt.key-secret=s0 e.qcow 1M
qemu-io --object secret,id=s0,data=x --image-opts driver=qcow,file.filename=e.qcow,encrypt.key-secret=s0 \
	-c 'write 0 4k' -c 'write 64k 64k' >/dev/null
secret_map json qcow encrypt.key-secret e.qcow
secret_map human qcow encrypt.key-secret e.qcow

scenario qcow-malformed
qemu-img create -q -f qcow m.qcow 1M
qemu-io -f qcow -c 'write -P 1 0 64k' m.qcow >/dev/null
cp m.qcow ver.qcow && patch ver.qcow 4 '>I' 2 && oracle_map -f qcow ver.qcow
cp m.qcow cb.qcow && patch cb.qcow 32 'B' 8 && oracle_map cb.qcow
cp m.qcow cb2.qcow && patch cb2.qcow 32 'B' 17 && oracle_map cb2.qcow
cp m.qcow l2b.qcow && patch l2b.qcow 33 'B' 14 && oracle_map l2b.qcow
cp m.qcow sz.qcow && patch sz.qcow 24 '>Q' 1 && oracle_map sz.qcow
cp m.qcow odd.qcow && patch odd.qcow 24 '>Q' 1000000 && oracle_map odd.qcow
cp m.qcow cr.qcow && patch cr.qcow 36 '>I' 2 && oracle_map cr.qcow
cp m.qcow bkl.qcow && patch bkl.qcow 8 '>Q' 48 && patch bkl.qcow 16 '>I' 2000 && oracle_map bkl.qcow
# qemu reads zeroes past EOF; we refuse tables that are not in the file.
cp m.qcow l1.qcow && patch l1.qcow 40 '>Q' 0x10000000 && expect_fail l1.qcow
cp m.qcow hugel1.qcow && patch hugel1.qcow 24 '>Q' 0x7fffffffffff0000 && expect_fail hugel1.qcow
head -c 20 m.qcow >short.qcow && expect_fail short.qcow

scenario parallels
qemu-img create -q -f parallels p.hdd 4M
oracle_map p.hdd
qemu-io -f parallels -c 'write -P 0xaa 0 4k' -c 'write -P 0xbb 1M 64k' -c 'write -P 0xcc 3M 4k' p.hdd >/dev/null
oracle_map p.hdd
ranges p.hdd
qemu-img create -q -f parallels -o cluster_size=64k p64.hdd 3M
qemu-io -f parallels -c 'write 1M 4k' -c 'write 0 4k' -c 'write 64k 128k' -c 'write -z 2M 64k' p64.hdd >/dev/null
oracle_map p64.hdd
ranges p64.hdd
# The old magic: BAT entries in sectors, 32-bit sector count.
python3 - <<'EOF'
import struct
d = bytearray(open('p64.hdd', 'rb').read())
d[0:16] = b'WithoutFreeSpace'
tracks, n = struct.unpack('<I', d[28:32])[0], struct.unpack('<I', d[32:36])[0]
for i in range(n):
    e = struct.unpack('<I', d[64 + 4 * i:68 + 4 * i])[0]
    d[64 + 4 * i:68 + 4 * i] = struct.pack('<I', e * tracks)
open('v1.hdd', 'wb').write(d)
EOF
oracle_map v1.hdd
cp v1.hdd v1big.hdd && patch v1big.hdd 36 '<Q' $(((1 << 32) + 6144)) && oracle_map v1big.hdd

scenario parallels-malformed
qemu-img create -q -f parallels m.hdd 4M
qemu-io -f parallels -c 'write 0 4k' m.hdd >/dev/null
cp m.hdd ver.hdd && patch ver.hdd 16 '<I' 3 && oracle_map -f parallels ver.hdd
cp m.hdd t0.hdd && patch t0.hdd 28 '<I' 0 && oracle_map t0.hdd
cp m.hdd tb.hdd && patch tb.hdd 28 '<I' 0x7fffffff && oracle_map tb.hdd
cp m.hdd far.hdd && patch far.hdd 64 '<I' 1000 && oracle_map far.hdd
# qemu reads zeroes past EOF; we refuse a BAT that is not in the file.
cp m.hdd bat.hdd && patch bat.hdd 32 '<I' 0x1000000 && expect_fail bat.hdd
cp m.hdd hugebat.hdd && patch hugebat.hdd 32 '<I' 0x40000000 && oracle_map hugebat.hdd
head -c 50 m.hdd >short.hdd && expect_fail short.hdd

scenario luks
# Creation measures the PBKDF speed, which fails now and then on a busy machine.
for try in 1 2 3 4 5; do
	qemu-img create -q -f luks --object secret,id=s0,data=x -o key-secret=s0,iter-time=10 \
		l.luks 1M 2>/dev/null && break
done
luks_map json l.luks
luks_map human l.luks
cp l.luks odd.luks && truncate -s $(($(stat -c %s l.luks) - 1000)) odd.luks
luks_map json odd.luks
cp l.luks slot.luks && patch slot.luks $((208 + 44)) '>I' 3999 && luks_map json slot.luks
cp l.luks pay.luks && patch pay.luks 104 '>I' 1 && luks_map json pay.luks
cp l.luks ver.luks && patch ver.luks 6 '>H' 3 && expect_fail -f luks ver.luks && oracle_map ver.luks
check "luks probe" test "$("$IMGAUDIT" map --output=json l.luks | grep -c '"data": true')" = 1
head -c 3000 l.luks >short.luks
expect_fail short.luks

oracle_summary
