#!/bin/bash
# raw files: SEEK_DATA/SEEK_HOLE maps, sizes not multiple of 512, windows.
. "$(dirname "$0")/../lib.sh"

scenario raw-sparse
truncate -s 1M a.raw
oracle_map a.raw
dd if=/dev/urandom of=a.raw bs=4096 seek=3 count=2 conv=notrunc status=none
oracle_map a.raw
for s in 0 1 511 4096 12287 12288 13000 20479 20480 1048575 1048576 2M; do
	oracle_map -s "$s" a.raw
done
for l in 0 1 4096 13000 20480 1M 9223372036854775807; do
	oracle_map -l "$l" a.raw
	oracle_map -s 13000 -l "$l" a.raw
done
oracle_map --start-offset=1.5k --max-length=0x2000 a.raw
oracle_map -s 1 -l 9223372036854775807 a.raw

scenario raw-odd-sizes
head -c 1000 /dev/urandom >small.raw
oracle_map small.raw
head -c 1048575 /dev/zero >big.raw
dd if=/dev/urandom of=big.raw bs=65535 seek=15 count=1 conv=notrunc status=none
truncate -s 1048575 big.raw
fallocate --dig-holes big.raw 2>/dev/null || true
oracle_map big.raw
: >empty.raw
oracle_map empty.raw
printf x >one.raw
oracle_map one.raw

scenario raw-created
qemu-img create -q -f raw c.raw 1M
oracle_map c.raw
qemu-img create -q -f raw -o preallocation=falloc f.raw 1M
oracle_map f.raw
qemu-img create -q -f raw -o preallocation=full full.raw 1M
oracle_map full.raw

scenario raw-many-extents
truncate -s 8M m.raw
for i in $(seq 0 7 500); do
	dd if=/dev/urandom of=m.raw bs=4096 seek="$i" count=$((i % 3 + 1)) conv=notrunc status=none
done
oracle_map m.raw
oracle_map -s 100000 -l 3000000 m.raw
fallocate --punch-hole --offset 8192 --length 4096 m.raw
oracle_map m.raw

scenario raw-data-at-end
truncate -s 3M e.raw
dd if=/dev/urandom of=e.raw bs=1 seek=$((3 * 1048576 - 1)) count=1 conv=notrunc status=none
oracle_map e.raw
head -c 5000 /dev/urandom >odd.raw
truncate -s 70001 odd.raw
oracle_map odd.raw

scenario raw-format-forced
qemu-img create -q -f qcow2 q.qcow2 1M
qemu-io -c 'write -P 1 0 64k' q.qcow2 >/dev/null
oracle_map -f raw q.qcow2

oracle_summary
