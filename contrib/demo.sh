#!/bin/bash
# Install what is missing, build imgaudit, make a small demo store of VM
# images (chains, several formats, an archive, a broken link) and audit it.
#   contrib/demo.sh            (as root on Debian; run from anywhere)
# DEMO_STORE names the demo's directory (default /tmp/imgaudit-demo): the
# images in DEMO_STORE/images, the database DEMO_STORE/imgaudit.db.  A
# second run replaces it, but only a directory demo.sh made (it holds the
# marker file .imgaudit-demo): anything else is left alone and the demo
# stops.  IMGAUDIT=/path/to/imgaudit uses that binary: no install, no build.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
demo=${DEMO_STORE:-/tmp/imgaudit-demo}
marker=$demo/.imgaudit-demo
if [ -e "$demo" ] || [ -L "$demo" ]; then
	if [ -d "$demo" ] && [ ! -L "$demo" ] && [ -f "$marker" ] && [ ! -L "$marker" ]; then
		rm -rf -- "$demo"
	else
		echo "demo.sh: '$demo' exists and was not made by demo.sh (no $marker): not deleting it;" \
			"set DEMO_STORE to a new directory" >&2
		exit 1
	fi
fi
mkdir -p -- "$demo"
: >"$marker"

if [ -n "${IMGAUDIT:-}" ]; then
	bin=$IMGAUDIT
else
	"$src/tests/setup.sh"
	cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$src/build" -j"$(nproc)" >/dev/null
	bin=$src/build/imgaudit
fi

store=$demo/images
mkdir -p "$store/bases" "$store/vms/web" "$store/vms/db" "$store/export"
q() { qemu-img create -q "$@"; }
w() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

q -f qcow2 "$store/bases/debian.qcow2" 64M
w "$store/bases/debian.qcow2" -c 'write -P 1 0 24M'
q -f qcow2 -b ../../bases/debian.qcow2 -F qcow2 "$store/vms/web/disk.qcow2"
w "$store/vms/web/disk.qcow2" -c 'write -P 2 8M 4M' -c 'write -P 3 40M 2M'
q -f qcow2 -b ../../bases/debian.qcow2 -F qcow2 "$store/vms/db/disk.qcow2"
w "$store/vms/db/disk.qcow2" -c 'write -P 4 30M 16M'
q -f vmdk "$store/vms/db/data.vmdk" 32M
w "$store/vms/db/data.vmdk" -c 'write -P 5 0 3M'
q -f vpc "$store/vms/legacy.vhd" 16M
w "$store/vms/legacy.vhd" -c 'write -P 6 2M 2M'
q -f qcow2 -u -b gone.qcow2 -F qcow2 "$store/vms/orphaned-overlay.qcow2" 64M
q -f qcow2 "$store/export/appliance.qcow2" 32M
w "$store/export/appliance.qcow2" -c 'write -P 7 0 5M'
tar -C "$store/export" -cf "$store/export/appliance.tar" appliance.qcow2
rm "$store/export/appliance.qcow2"

echo "== imgaudit map $store/vms/web/disk.qcow2"
"$bin" map "$store/vms/web/disk.qcow2"
db=$demo/imgaudit.db
echo "== imgaudit scan --db $db $store"
"$bin" scan --db "$db" "$store" || [ $? -eq 1 ] # exit 1: the broken overlay is a problem, recorded
echo "== sqlite3 $db 'SELECT path, format, virtual_size, allocated_bytes, status FROM v_images'"
sqlite3 -header -column "$db" 'SELECT path, format, virtual_size, allocated_bytes, status FROM v_images ORDER BY path'
echo "== imgaudit report --db $db"
"$bin" report --db "$db"
