#!/bin/bash
# The real-world bochs, cloop and seSparse images of ../shared/realworld
# (images other software wrote; see its SOURCES.tsv), against qemu-img map:
# both layouts, probed and with -f.  The corpus is unpacked at test time into
# the work directory; without it the test says so and is skipped (exit 77),
# never passed.
#
# Expectations, one line per corpus image of these formats (SOURCES.tsv is
# checked for images of these formats missing here):
#   qemu-iotests/empty.bochs          bochs  identical to qemu-img map
#   qemu-iotests/simple-pattern.cloop cloop  identical to qemu-img map
#   dissect/vmdk/sesparse.vmdk        vmdk   a bare seSparse extent, no descriptor:
#                                            qemu (and we) map it as raw; with a
#                                            seSparse descriptor written here it
#                                            is identical to qemu-img map and true
#                                            against qemu-img convert's guest content
. "$(dirname "$0")/../lib.sh"

REALWORLD=${REALWORLD:-$(cd "$(dirname "$0")/../../.." && pwd)/../shared/realworld}
if [ ! -f "$REALWORLD/corpus.tar.zst" ] || [ ! -f "$REALWORLD/SOURCES.tsv" ]; then
	echo "SKIPPED: the real-world corpus is absent ($REALWORLD/corpus.tar.zst): nothing was checked"
	exit 77
fi

expected="qemu-iotests/empty.bochs qemu-iotests/simple-pattern.cloop dissect/vmdk/sesparse.vmdk"

scenario corpus-list
# Every corpus image of these formats is listed above.
listed=$(awk -F'\t' 'NR > 1 && ($4 ~ /\.(bochs|cloop)$/ || tolower($0) ~ /sesparse/) { print $4 }' \
	"$REALWORLD/SOURCES.tsv" | sort | tr '\n' ' ')
check "SOURCES.tsv lists exactly the expected images ($listed)" \
	[ "$listed" = "$(printf '%s\n' $expected | sort | tr '\n' ' ')" ]

scenario corpus
# shellcheck disable=SC2086
zstd -dc "$REALWORLD/corpus.tar.zst" | tar -x $expected || {
	echo "FAIL: could not unpack $expected from $REALWORLD/corpus.tar.zst"
	exit 1
}

oracle_map qemu-iotests/empty.bochs
oracle_map -f bochs qemu-iotests/empty.bochs
oracle_map -s 512 -l 4096 qemu-iotests/empty.bochs
oracle_map qemu-iotests/simple-pattern.cloop
oracle_map -f cloop qemu-iotests/simple-pattern.cloop
oracle_map -s 65536 qemu-iotests/simple-pattern.cloop
check "empty.bochs is probed as bochs by qemu" \
	eval 'qemu-img info qemu-iotests/empty.bochs | grep -q "^file format: bochs"'
check "simple-pattern.cloop is probed as cloop by qemu" \
	eval 'qemu-img info qemu-iotests/simple-pattern.cloop | grep -q "^file format: cloop"'

# The bare extent: no descriptor, so both tools map it as raw.
oracle_map dissect/vmdk/sesparse.vmdk
oracle_map -f raw dissect/vmdk/sesparse.vmdk
oracle_map -f vmdk dissect/vmdk/sesparse.vmdk

# The descriptor ESXi writes beside a seSparse extent (its capacity is the
# extent's header capacity, 1048576 sectors).
cat >dissect/vmdk/sesparse-desc.vmdk <<'EOF'
# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
createType="seSparse"

# Extent description
RW 1048576 SESPARSE "sesparse.vmdk"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "14"
EOF
oracle_map dissect/vmdk/sesparse-desc.vmdk
oracle_map -f vmdk dissect/vmdk/sesparse-desc.vmdk
oracle_map -s 4096 -l 20M dissect/vmdk/sesparse-desc.vmdk
check "sesparse-desc.vmdk is seSparse to qemu" \
	eval 'qemu-img info dissect/vmdk/sesparse-desc.vmdk | grep -q "create type: seSparse"'
qemu-img convert -O raw dissect/vmdk/sesparse-desc.vmdk guest.raw
check "sesparse-desc.vmdk: the map is true against the guest content" \
	python3 "$REALWORLD/truth.py" "$IMGAUDIT" dissect/vmdk/sesparse-desc.vmdk vmdk guest.raw
rm -f guest.raw

oracle_summary
