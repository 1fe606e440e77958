#!/bin/bash
# Install what is missing, build imgaudit, make a small demo store of VM
# images (chains, several formats, an archive, a broken link) and audit it.
#   contrib/demo.sh            (as root on Debian; run from anywhere)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
"$src/tests/setup.sh"
cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$src/build" -j"$(nproc)" >/dev/null
bin=$src/build/imgaudit

store=${DEMO_STORE:-/tmp/imgaudit-demo}
rm -rf "$store"
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
db=$store/../imgaudit-demo.db
rm -f "$db"
echo "== imgaudit scan --db $db $store"
"$bin" scan --db "$db" "$store"
echo "== sqlite3 $db 'SELECT path, format, virtual_size, allocated_bytes, status FROM v_images'"
sqlite3 -header -column "$db" 'SELECT path, format, virtual_size, allocated_bytes, status FROM v_images ORDER BY path'
echo "== imgaudit report --db $db"
"$bin" report --db "$db"
