#!/bin/bash
# Chains that mix formats: every format qemu-img can put under a qcow2, and a
# few longer mixed chains.
. "$(dirname "$0")/../lib.sh"

q() { qemu-img create -q "$@"; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

scenario mixed-under-qcow2
for fmt in raw qcow2 qcow qed vmdk vpc vdi parallels; do
	q -f "$fmt" "base.$fmt" 4M
	w "base.$fmt" -f "$fmt" -c 'write -P 1 0 1M' -c 'write -P 2 3M 512k'
	q -f qcow2 -b "base.$fmt" -F "$fmt" "over-$fmt.qcow2"
	w "over-$fmt.qcow2" -c 'write -P 3 512k 1M'
	oracle_map "over-$fmt.qcow2"
	oracle_map -s 1M -l 2M "over-$fmt.qcow2"
done

scenario mixed-subformats
# Subformats under overlays: fixed VHD (named vpc, or probed as raw), static
# vdi, flat, split and stream-optimized vmdk; qcow and qed over them too.
q -f vpc -o subformat=fixed f.vhd 5M
w f.vhd -f vpc -c 'write -P 1 1M 64k'
q -f vdi -o static=on s.vdi 3M
w s.vdi -f vdi -c 'write -P 1 1M 64k'
q -f vmdk -o subformat=monolithicFlat fl.vmdk 3M
w fl.vmdk -f vmdk -c 'write -P 1 0 8k' -c 'write -P 2 2M 4k'
q -f vmdk -o subformat=twoGbMaxExtentSparse tw.vmdk 3M
w tw.vmdk -f vmdk -c 'write -P 1 1M 64k'
truncate -s 3M so.raw
w so.raw -f raw -c 'write -P 1 64k 200k' -c 'write -P 2 2M 4k'
qemu-img convert -O vmdk -o subformat=streamOptimized so.raw so.vmdk
for b in f.vhd:vpc f.vhd:raw s.vdi:vdi fl.vmdk:vmdk tw.vmdk:vmdk so.vmdk:vmdk; do
	base=${b%%:*} fmt=${b##*:}
	for over in qcow2 qcow qed; do
		q -f $over -b "$base" -F $fmt "$over-$base-$fmt" 6M
		w "$over-$base-$fmt" -f $over -c 'write -P 3 2M 64k'
		oracle_map "$over-$base-$fmt"
	done
done
oracle_map -s 1000000 -l 2000000 qcow2-f.vhd-vpc

scenario mixed-long
q -f raw r.raw 8M
w r.raw -f raw -c 'write -P 1 0 8M'
q -f vmdk -b r.raw -F raw v.vmdk 8M 2>/dev/null || q -f qcow2 -b r.raw -F raw v.vmdk 8M
q -f qed -b r.raw -F raw e.qed 8M
w e.qed -c 'write -P 2 1M 1M'
q -f qcow2 -b e.qed -F qed c.qcow2
w c.qcow2 -c 'write -P 3 2M 1M' -c 'write -z 4M 1M'
q -f qcow -b c.qcow2 -F qcow2 o.qcow 8M
w o.qcow -c 'write -P 4 5M 512k'
q -f qcow2 -b o.qcow -F qcow top.qcow2
w top.qcow2 -c 'write -P 5 7M 64k'
oracle_map top.qcow2
oracle_map o.qcow
oracle_map -s 3M -l 3M top.qcow2

oracle_summary
