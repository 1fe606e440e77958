#!/bin/bash
# The command line every subcommand shares: one usage-error style (one line
# naming the problem, then "Try 'imgaudit help CMD'.", exit 1 for map as
# qemu-img, 2 for scan and report), contradictory or empty options refused,
# report's --output refused with a hint (it used to write a file named
# "json"), --since dates checked and ages accepted, --exclude relative to the
# root, a missing root recorded while the others are scanned, the summary
# line and --json, a database of a newer schema refused by report, and
# database errors that name their cause.
. "$(dirname "$0")/lib.sh"
lib_workdir cli
chmod 755 "$WORK"
need qemu-img sqlite3 python3 setpriv
# usage CMD STATUS PATTERN ARGS...: exit STATUS, nothing on stdout, exactly
# two lines on stderr: "imgaudit CMD: ..." matching PATTERN, then the hint
usage() {
	local cmd=$1 want=$2 pat=$3 rc
	shift 3
	"$IMGAUDIT" "$cmd" "$@" >u.out 2>u.err
	rc=$?
	eq "$cmd $* exit status" "$rc" "$want"
	eq "$cmd $*: stdout" "$(wc -c <u.out)" "0"
	eq "$cmd $*: stderr lines" "$(wc -l <u.err)" "2"
	grep -qE "^imgaudit $cmd: $pat" u.err && ok || bad "$cmd $*: message: $(head -1 u.err)"
	eq "$cmd $*: hint" "$(sed -n 2p u.err)" "Try 'imgaudit help $cmd'."
}

mkdir -p store/vms store/iso other
qemu-img create -q -f qcow2 store/base.qcow2 4M
qemu-img create -q -f qcow2 store/vms/a.img 4M
qemu-img create -q -f qcow2 store/vms/b.qcow2 4M
qemu-img create -q -f qcow2 store/iso/c.img 4M
qemu-img create -q -f qcow2 other/d.qcow2 4M

# ---- one usage-error style ----
usage map 1 "unknown option '--bogus'" --bogus x.qcow2
usage map 1 "option '-f' needs a value" x.qcow2 -f
usage map 1 "expects exactly one image file name"
usage map 1 "start offset 'abc' is not a size" -s abc x.qcow2
usage map 1 "--output must be 'human' or 'json', not 'xml'" --output=xml x.qcow2
usage map 1 "--qemu-compat=6.0: only qemu 7.2 and later" --qemu-compat=6.0 x.qcow2
usage map 1 "--image-opts is not supported" --image-opts x.qcow2
usage scan 2 "unknown option '--bogus'" --bogus store
usage scan 2 "option '--db' needs a value" store --db
usage scan 2 "--progress and --quiet contradict each other" --db p.db --progress --quiet store
usage scan 2 "expects at least one ROOT" --db p.db
usage report 2 "unknown option '--bogus'" --db p.db --bogus
usage report 2 "option '--since' needs a value" --db p.db --since
usage report 2 "no format 'xml'" --db p.db --format=xml
usage report 2 "unexpected argument 'extra'" --db p.db extra
usage prune 2 "unknown option '-z'" --db p.db -z
usage prune 2 "option '--keep' needs a value" --db p.db --keep
usage push 2 "unknown option '--bogus'" --db p.db --bogus
usage push 2 "option '--to' needs a value" --db p.db --to
usage pg-migrate 2 "unknown option '-x'" -x
[ ! -e p.db ] && ok || bad "a usage error created the database"

# ---- report: --format for the layout, -o for the file; --output refused ----
usage report 2 "no option --output: the layout is --format=FMT, the file -o FILE" --db p.db --output=json
usage report 2 "no option --output" --db p.db --output json
# the fleet's report (--db CONNINFO) has the same grammar: refused before any connection
usage report 2 "no option --output: the layout is --format=FMT, the file -o FILE" --db "host=/nonexistent dbname=x" --output=json
usage report 2 "unknown option '--bogus'" --db "host=/nonexistent dbname=x" --bogus
usage report 2 "option '--since' needs a value" --db "host=/nonexistent dbname=x" --since
[ ! -e json ] && ok || bad "report --output=json wrote a file named json"
usage report 2 "--section wants a name, not ''" --db p.db --section=
usage report 2 "--section wants a name" --db p.db --section=summary,
usage report 2 "no section 'nope'" --db p.db --section=summary,nope
usage report 2 "-o wants a file name" --db p.db -o ''

# ---- scan: the summary line, --json, --quiet ----
"$IMGAUDIT" scan --db db.sqlite store >s.out 2>s.err
eq "scan exit status" "$?" "0"
eq "scan: stdout empty" "$(wc -c <s.out)" "0"
grep -qE '^imgaudit scan: scan 1 complete: 4 images, 4 files \(4 read, 0 reused\), 0 problems, [0-9]+\.[0-9] s$' s.err && ok || bad "scan summary: $(cat s.err)"
eq "scan summary: one line" "$(wc -l <s.err)" "1"
"$IMGAUDIT" scan --db db.sqlite --json store >j.out 2>j.err
eq "scan --json exit status" "$?" "0"
python3 - j.out <<'PY' && ok || bad "scan --json: $(cat j.out)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["scan_id"] == 2 and d["status"] == "complete" and d["exit_status"] == 0, d
# (files written within 2 s of the previous scan are read again: racily clean)
assert d["images"] == 4 and d["files"] == 4 and d["files_reused"] + d["files_read"] == 4, d
assert d["problems"] == 0 and d["duration_seconds"] >= 0, d
PY
grep -qE '^imgaudit scan: scan 2 complete: 4 images, 4 files \([0-9] read, [0-9] reused\)' j.err && ok || bad "scan --json keeps the summary on stderr: $(cat j.err)"
"$IMGAUDIT" scan --db db.sqlite --quiet --json store >j.out 2>j.err
eq "scan --quiet --json: stderr empty" "$(wc -c <j.err)" "0"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' j.out && ok || bad "scan --quiet --json: stdout"

# ---- --exclude: name, path below the root, full path ----
excl() { # excl GLOB EXPECTED-PATHS
	rm -f ex.db*
	"$IMGAUDIT" scan --quiet --db ex.db --exclude "$1" store
	eq "--exclude '$1'" "$(sqlite3 ex.db 'SELECT path FROM v_images ORDER BY path' | tr '\n' ' ')" "$2"
}
excl 'vms/*.img' 'store/base.qcow2 store/iso/c.img store/vms/b.qcow2 '
excl '*.img' 'store/base.qcow2 store/vms/b.qcow2 '
excl 'store/vms' 'store/base.qcow2 store/iso/c.img '
excl 'vms' 'store/base.qcow2 store/iso/c.img '
excl 'iso/c.img' 'store/base.qcow2 store/vms/a.img store/vms/b.qcow2 '

# ---- a missing root is a problem of the scan; the others are scanned ----
rm -f mr.db*
"$IMGAUDIT" scan --db mr.db store gone other >mr.out 2>mr.err
eq "missing root: exit status" "$?" "1"
grep -q "^imgaudit scan: cannot scan '$WORK/gone': No such file or directory" mr.err && ok || bad "missing root: message: $(cat mr.err)"
grep -q "^imgaudit scan: scan 1 complete: 5 images, .* 1 problems" mr.err && ok || bad "missing root: summary: $(cat mr.err)"
eq "missing root: the other roots scanned" "$(sqlite3 mr.db 'SELECT count(*) FROM v_images')" "5"
eq "missing root: recorded" "$(sqlite3 mr.db "SELECT kind, reason FROM v_entries WHERE path = '$WORK/gone'")" "unreadable|missing"
eq "missing root: the scan is complete" "$(sqlite3 mr.db 'SELECT status, exit_status FROM scans')" "complete|1"
"$IMGAUDIT" scan --db nr.db gone also-gone >/dev/null 2>nr.err
eq "no root at all: exit status" "$?" "2"
[ ! -e nr.db ] && ok || bad "no root at all: a database was created"

# ---- --since: dates checked, ages accepted ----
usage report 2 "--since '2026-02-30' is not a valid date" --db db.sqlite --since 2026-02-30
usage report 2 "--since '2026-13-01' is not a valid date" --db db.sqlite --since 2026-13-01
usage report 2 "--since '2025-02-29' is not a valid date" --db db.sqlite --since 2025-02-29
usage report 2 "--since '2026-12-02T24:00' is not a valid date" --db db.sqlite --since 2026-12-02T24:00
usage report 2 "--since '7y' is not a valid date" --db db.sqlite --since 7y
usage report 2 "--since 'yesterday' is not a valid date" --db db.sqlite --since yesterday
# scans 1..3 exist; make scan 1 old, scan 2 of yesterday
sqlite3 db.sqlite "UPDATE scans SET started_at = '2024-02-29T10:00:00Z' WHERE id = 1;
	UPDATE scans SET started_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-30 hours') WHERE id = 2"
since() { "$IMGAUDIT" report --db db.sqlite --format=json --section=trend --since "$1" 2>&1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["trend"]["from_scan"]["id"])' 2>&1 | tail -1; }
eq "--since 2024-02-29 (a leap day)" "$(since 2024-02-29T12:00)" "1"
eq "--since 2024-03-01Z (the man page's Z)" "$(since 2024-03-01Z)" "1"
eq "--since 2024-03-01T00:00:00Z" "$(since 2024-03-01T00:00:00Z)" "1"
eq "--since 7d" "$(since 7d)" "1"
eq "--since 24h" "$(since 24h)" "2"
eq "--since 2w" "$(since 2w)" "1"
eq "--since 1" "$(since 1)" "1"

# ---- report refuses a database of a newer schema, as scan does ----
cp db.sqlite new.sqlite
sqlite3 new.sqlite 'PRAGMA user_version = 999'
"$IMGAUDIT" report --db new.sqlite >n.out 2>n.err
eq "newer schema: report exit status" "$?" "1"
eq "newer schema: report stdout" "$(wc -c <n.out)" "0"
grep -q "^imgaudit report: database 'new.sqlite' has schema version 999, newer than this imgaudit's [0-9]*; refusing" n.err && ok || bad "newer schema: report message: $(cat n.err)"
"$IMGAUDIT" scan --db new.sqlite store >/dev/null 2>n.err
eq "newer schema: scan exit status" "$?" "3"
grep -q "has schema version 999, newer than" n.err && ok || bad "newer schema: scan message: $(cat n.err)"

# ---- database errors name their cause ----
dberr() { # dberr WHAT STATUS PATTERN CMD ARGS...
	local what=$1 want=$2 pat=$3 rc
	shift 3
	"$@" >d.out 2>d.err
	rc=$?
	eq "$what: exit status" "$rc" "$want"
	grep -qE "$pat" d.err && ok || bad "$what: message: $(cat d.err)"
	grep -q "unable to open database file" d.err && bad "$what: SQLite's vague message" || ok
}
dberr "report, no such directory" 1 "^imgaudit report: database 'nodir/x.db': no such directory 'nodir'$" "$IMGAUDIT" report --db nodir/x.db
dberr "scan, no such directory" 3 "^imgaudit scan: database 'nodir/x.db': no such directory 'nodir'$" "$IMGAUDIT" scan --db nodir/x.db store
dberr "report, no such file" 1 "^imgaudit report: database 'none.db': no such file" "$IMGAUDIT" report --db none.db
echo "not a database at all" >text.db
dberr "report, not SQLite" 1 "^imgaudit report: database 'text.db': not an SQLite database$" "$IMGAUDIT" report --db text.db
dberr "scan, not SQLite" 3 "^imgaudit scan: database 'text.db': not an SQLite database$" "$IMGAUDIT" scan --db text.db store
eq "scan, not SQLite: file untouched" "$(cat text.db)" "not a database at all"
dberr "report, a directory" 1 "^imgaudit report: database 'store': is a directory" "$IMGAUDIT" report --db store
mkdir -p priv
cp db.sqlite priv/db.sqlite
chmod 600 priv/db.sqlite
chmod 755 priv
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
dberr "report, permission" 1 "^imgaudit report: database '$WORK/priv/db.sqlite': permission denied: cannot read it$" as_nobody "$IMGAUDIT" report --db "$WORK/priv/db.sqlite"
dberr "scan, permission" 3 "^imgaudit scan: database '$WORK/priv/db.sqlite': permission denied: cannot write it$" as_nobody "$IMGAUDIT" scan --db "$WORK/priv/db.sqlite" "$WORK/store"
dberr "scan, directory not writable" 3 "^imgaudit scan: database '$WORK/priv/new.db': permission denied: cannot create files in '$WORK/priv'$" as_nobody "$IMGAUDIT" scan --db "$WORK/priv/new.db" "$WORK/store"

lib_summary test_cli
