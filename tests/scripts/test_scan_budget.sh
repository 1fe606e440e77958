#!/bin/bash
# The per-image time budget: an image that cannot be mapped in time is
# recorded with status 'limit' and the scan exits 1; the rest is recorded.
. "$(dirname "$0")/lib.sh"
lib_workdir budget
work=$WORK

mkdir store
qemu-img create -q -f qcow2 store/a.qcow2 1M
qemu-io -c 'write -P 1 0 64k' store/a.qcow2 >/dev/null
truncate -s 1M store/plain.bin

"$IMGAUDIT" scan --quiet --db tight.db --budget 0.000000001 store
rc=$?
check "over budget exits 1" '[ $rc -eq 1 ]'
check "over budget is recorded as limit" \
	'[ "$(sqlite3 tight.db "SELECT status FROM v_images WHERE path = '"'"'$work/store/a.qcow2'"'"'")" = limit ]'
check "the error names the budget" \
	'sqlite3 tight.db "SELECT error FROM v_images" | grep -q "time budget"'

"$IMGAUDIT" scan --quiet --db ok.db store
rc=$?
check "default budget exits 0" '[ $rc -eq 0 ]'
check "default budget maps the image" \
	'[ "$(sqlite3 ok.db "SELECT status FROM v_images WHERE path = '"'"'$work/store/a.qcow2'"'"'")" = ok ]'
"$IMGAUDIT" scan --quiet --db bad.db --budget -1 store 2>/dev/null
check "a negative budget is a usage error" '[ $? -eq 2 ]'

lib_summary
