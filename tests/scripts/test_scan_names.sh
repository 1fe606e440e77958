#!/bin/bash
# One database, whatever its name: scans reaching one database file through
# a hard link, a symlink and its own name never write at once (the lock is
# on the file, not on a name), and a second name of the file is refused, so
# SQLite's per-name -wal and -shm files can never split.  Raced many times;
# the database stays sound and every scan either completes or is refused.
. "$(dirname "$0")/lib.sh"
lib_workdir names
work=$WORK

mkdir store
qemu-img create -q -f qcow2 store/base.qcow2 8M
qemu-io -c 'write -P 1 0 1M' store/base.qcow2 >/dev/null
for i in $(seq 1 30); do
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "store/o$i.qcow2"
	qemu-io -c "write -P $i $((i * 64))k 64k" "store/o$i.qcow2" >/dev/null
done

"$IMGAUDIT" scan --quiet --db db.sqlite store
check "first scan" '[ $? -eq 0 ]'
ln db.sqlite hard.sqlite
ln -s db.sqlite sym.sqlite
mkdir sub && ln -s ../db.sqlite sub/rel.sqlite

# the symlinks are the same name (resolved); the hard link is a second name
"$IMGAUDIT" scan --quiet --full --db sym.sqlite store
check "a symlink to the database is the database" '[ $? -eq 0 ]'
"$IMGAUDIT" scan --quiet --full --db sub/rel.sqlite store
check "a relative symlink too" '[ $? -eq 0 ]'
check "no journal beside a symlink" '[ ! -e sym.sqlite-wal ] && [ ! -e sub/rel.sqlite-wal ]'
"$IMGAUDIT" scan --quiet --full --db hard.sqlite store 2>err.txt
check "a hard link (a second name) is refused with exit 3" '[ $? -eq 3 ]'
check "the refusal names the other name" 'grep -q "also named" err.txt'

# races: two scans at once through two names, many times
other=0 locked=0 done_=0
for round in $(seq 1 12); do
	case $((round % 3)) in
	0) a=db.sqlite b=hard.sqlite ;;
	1) a=sym.sqlite b=hard.sqlite ;;
	2) a=db.sqlite b=sym.sqlite ;;
	esac
	"$IMGAUDIT" scan --quiet --full --db "$a" store 2>ra.txt &
	pa=$!
	"$IMGAUDIT" scan --quiet --full --db "$b" store 2>rb.txt &
	pb=$!
	wait $pa
	ra=$?
	wait $pb
	rb=$?
	for rc in $ra $rb; do
		case $rc in
		0) done_=$((done_ + 1)) ;;
		3) locked=$((locked + 1)) ;;
		*) other=$((other + 1)) ;;
		esac
	done
done
check "every raced scan completed or was refused (exit 0 or 3)" '[ $other -eq 0 ]'
check "some raced scans completed" '[ $done_ -gt 0 ]'
check "integrity after the races" '[ "$(sqlite3 db.sqlite "PRAGMA integrity_check")" = ok ]'
check "no scan left running" '[ "$(sqlite3 db.sqlite "SELECT count(*) FROM scans WHERE status = '"'"'running'"'"'")" = 0 ]'
check "the latest scan is whole" '[ "$(sqlite3 db.sqlite "SELECT count(*) FROM v_images")" = 31 ]'
check "no journal beside the second name" '[ ! -s hard.sqlite-wal ]'

# a database moved to a new name takes it
mv db.sqlite moved.sqlite
rm -f hard.sqlite sym.sqlite db.sqlite-wal db.sqlite-shm
"$IMGAUDIT" scan --quiet --db moved.sqlite store
check "a moved database is scanned by its new name" '[ $? -eq 0 ]'
check "and records it" '[ "$(command sqlite3 moved.sqlite "SELECT db_path FROM scans ORDER BY id DESC LIMIT 1")" = "$work/moved.sqlite" ]'

lib_summary
