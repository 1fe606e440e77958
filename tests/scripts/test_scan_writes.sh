#!/bin/bash
# What a scan writes: its database and nothing else.  Under strace, every
# open for writing of a first scan and of a rescan must name the database's
# own files (the file, -wal, -shm, -journal, .lock).  The store's 1,000 files
# have paths of about 2 KiB (8 directories and a file of 200-byte names):
# their files rows and files_path entries fill pages so fast that a
# multi-row INSERT without OR ROLLBACK made SQLite spill a statement journal
# to a temporary file in /var/tmp.
. "$(dirname "$0")/lib.sh"
need strace qemu-img
lib_workdir writes

python3 - <<'PY'
import os
deep = "s/" + "/".join("d" * 200 + str(i) for i in range(8))
os.makedirs(deep)
for f in range(1000):
    with open("%s/%05d%s.txt" % (deep, f, "f" * 200), "w") as fh:
        fh.write("a line of text %d\n" % f)
PY
mkdir s/base s/leaf
qemu-img create -q -f qcow2 s/base/base.qcow2 64M
qemu-img create -q -f qcow2 -b ../base/base.qcow2 -F qcow2 s/leaf/leaf.qcow2
find s -type f -exec touch -m -d "@$(($(date +%s) - 3600))" {} +
DB=$WORK/w.db
latest="scan_id = (SELECT id FROM v_latest_scan)"

# scan LABEL MIN: a scan under strace, which must have opened more than MIN
# files; prints every path it opened for writing but the database's, one a line
scan() {
	local rc
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" strace -f -qq --seccomp-bpf \
		-o "$WORK/$1.strace" -e trace=open,openat,openat2,creat \
		"$IMGAUDIT" scan --db "$DB" --quiet s
	rc=$?
	eq "$1: exit status" "$rc" "0"
	eq "$1: opens traced" "$(grep -c 'open' "$WORK/$1.strace" | awk -v min="$2" '{ print ($1 > min) }')" "1"
	python3 - "$WORK/$1.strace" "$DB" <<'PY'
import re, sys
log, db = sys.argv[1], sys.argv[2]
ours = {db, db + "-wal", db + "-shm", db + "-journal", db + ".lock"}
for line in open(log):
    m = re.search(r'\b(open|openat|openat2|creat)\((?:[^,"]+, )?"([^"]*)"(.*)', line)
    if not m:
        continue
    call, path, rest = m.groups()
    if re.search(r"/tsan\.rodata\.[0-9]+$", path):
        continue  # ThreadSanitizer's runtime (the TSan run of .ci/run), not the scan
    if (call == "creat" or re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", rest)) and path not in ours:
        print(path)
PY
}

eq "first scan writes only its database" "$(scan first 1000)" ""
eq "images" "$(sqlite3 "$DB" "SELECT count(*) FROM v_images")" "2"
eq "not images" "$(sqlite3 "$DB" "SELECT count(*) FROM v_not_images WHERE $latest")" "1000"
find s -name '001*.txt' -exec touch {} + # 100 files changed: read again
eq "rescan writes only its database" "$(scan rescan 100)" ""
eq "rescan's not images" "$(sqlite3 "$DB" "SELECT count(*) FROM v_not_images WHERE $latest")" "1000"
lib_summary test_scan_writes
