# The preamble of every tests/scripts/test_*.sh, sourced first:
#
#   . "$(dirname "$0")/lib.sh"
#
# Sets:  HERE        tests/scripts (for the Python and JS helpers beside it)
#        WORK        (lib_workdir) the test's directory, canonical (pwd -P)
#        SOURCE_DIR  the checkout (from CTest, else two folders up)
#        IMGAUDIT    the binary under test (from CTest, else imgaudit on PATH)
#        PASS, FAIL  the counters of ok/bad/eq
# Gives: lib_workdir NAME   a fresh $WORK (mktemp), removed on exit unless
#                           KEEP=1; cd into it.  A script that must stop a
#                           background job or unmount first defines
#                           lib_on_exit(), which runs before the removal.
#        lib_builddir       prints the folder of $IMGAUDIT (the build tree)
#        need TOOL...       exit 1 unless every TOOL is on PATH: CI installs
#                           them (tests/setup.sh), so a missing tool fails
#        need_qemu          need qemu-img qemu-io
#        skip MESSAGE       exit 77, which CTest shows as skipped (only for
#                           tests registered with SKIP_RETURN_CODE 77)
#        ok, bad MESSAGE    count a passed / failed check
#        eq WHAT GOT EXPECTED   ok if GOT equals EXPECTED, else bad and both
#        sql_eq DB SQL EXPECTED   sqlite3 DB SQL prints EXPECTED (with "$WORK/"
#                           taken out of its rows, see rel)
#        rel                stdin with "$WORK/" taken out (stored paths are
#                           absolute; WHERE clauses name them as '$WORK/s/a')
#        sqlite3            wraps the real one: its rows go through rel
#        check NAME EXPR    ok if the shell expression EXPR (eval) succeeds
#        lib_summary [NAME] print "NAME: N passed, N failed"; status 0 if none
#                           failed (use it as the script's last command)
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=${SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
IMGAUDIT=${IMGAUDIT:-imgaudit}
PASS=0
FAIL=0
WORK=

lib_cleanup() {
	if declare -F lib_on_exit >/dev/null; then lib_on_exit; fi
	[ -n "$WORK" ] && [ "${KEEP:-0}" != 1 ] && rm -rf "$WORK"
	return 0
}

lib_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-$1.XXXXXX") || exit 1
	trap lib_cleanup EXIT
	cd "$WORK" || exit 1
	WORK=$(pwd -P) # canonical, as the scan stores paths (a $TMPDIR may hold a symlink)
}

# rel: stdin with "$WORK/" taken out of every path, for comparing stored
# paths (absolute: scan roots are canonical) with short expected ones
rel() { if [ -n "$WORK" ]; then sed "s|$WORK/||g"; else cat; fi; }
# Every sqlite3 a test runs prints its rows through rel, its exit status
# kept: a scan of "s" from $WORK stores "$WORK/s/a.qcow2" and a test sees
# "s/a.qcow2" (its WHERE clauses still name the stored path: '$WORK/s/a.qcow2').
# A test that checks the absolute paths themselves runs `command sqlite3`.
sqlite3() {
	command sqlite3 "$@" | rel
	return "${PIPESTATUS[0]}"
}

lib_builddir() { (cd "$(dirname "$(command -v "$IMGAUDIT")")" && pwd); }

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "$t is not installed (run tests/setup.sh)"; exit 1; }
	done
}
need_qemu() { need qemu-img qemu-io; }

skip() {
	echo "SKIP: $*"
	exit 77
}

ok() { PASS=$((PASS + 1)); }
bad() {
	FAIL=$((FAIL + 1))
	echo "FAIL: $*"
}
eq() { # eq WHAT GOT EXPECTED
	if [ "$2" == "$3" ]; then ok; else bad "$1"; echo "    expected: $3"; echo "    got:      $2"; fi
}

lib_summary() {
	echo "${1:+$1: }$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# sql_eq DB SQL EXPECTED: the rows sqlite3 prints for SQL (errors included),
# "$WORK/" taken out of them (see rel), equal EXPECTED
sql_eq() {
	local got
	got=$(sqlite3 "$1" "$2" 2>&1)
	if [ "$got" == "$3" ]; then ok; else bad "$2"; echo "    expected: $3"; echo "    got:      $got"; fi
}

# check NAME EXPR: ok if EXPR, evaluated by the shell, succeeds
check() { if eval "$2"; then ok; else bad "$1"; fi; }

# The schema version this source tree migrates to: its last schema/NNN_*.sql.
schema_latest() {
	local f n=0
	for f in "$SOURCE_DIR"/schema/[0-9][0-9][0-9]_*.sql; do
		f=${f##*/}
		n=$((10#${f%%_*}))
	done
	echo "$n"
}
