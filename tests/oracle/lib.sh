# Oracle harness: build images with qemu-img/qemu-io at test time, then require
# that `imgaudit map` prints exactly what `qemu-img map` prints (stdout and exit
# status, JSON and human output).  Sourced by every file in cases/.
#
#   scenario NAME            start a scenario in a fresh directory (cwd = it)
#   oracle_map [ARGS] IMAGE  compare both output modes with qemu-img map
#   oracle_json [ARGS] IMAGE compare JSON output only
#   expect_map MODE EXPECTED [ARGS] IMAGE   imgaudit's output must equal the
#                            file EXPECTED (for maps where qemu is not the oracle)
#   expect_fail [ARGS] IMAGE imgaudit map must exit 1, print nothing on stdout
#                            and one message on stderr
#   check NAME CMD...        a free-form check: CMD must succeed
#   oracle_summary           print "N passed, N failed" and set the exit status
#
# Environment: IMGAUDIT (the binary), QEMU_COMPAT (default: the installed
# qemu-img's major.minor), KEEP=1 keeps the work directory, ORACLE_TRACE=1
# lists every comparison where qemu-img map itself fails.
set -u
IMGAUDIT=${IMGAUDIT:-imgaudit}
command -v qemu-img >/dev/null || { echo "qemu-img is not installed (run tests/setup.sh)" >&2; exit 1; }
QEMU_COMPAT=${QEMU_COMPAT:-$(qemu-img --version | sed -n 's/^qemu-img version \([0-9]*\.[0-9]*\).*/\1/p')}
ORACLE_WORK=$(mktemp -d "${TMPDIR:-/tmp}/imgaudit-oracle.XXXXXX")
ORACLE_PASS=0
ORACLE_FAIL=0
ORACLE_SCENARIO=none
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$ORACLE_WORK"' EXIT

scenario() {
	ORACLE_SCENARIO=$1
	mkdir -p "$ORACLE_WORK/$1"
	cd "$ORACLE_WORK/$1" || exit 1
}

_pass() { ORACLE_PASS=$((ORACLE_PASS + 1)); }
_fail() {
	ORACLE_FAIL=$((ORACLE_FAIL + 1))
	echo "FAIL [$ORACLE_SCENARIO] $*"
}

# _compare MODE ARGS... : run both tools with --output=MODE and compare.
_compare() {
	local mode=$1; shift
	local q i qrc irc
	q=$(qemu-img map --output="$mode" "$@" 2>/dev/null; echo "rc=$?")
	i=$("$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output="$mode" "$@" 2>/tmp/imgaudit-oracle-err.$$; echo "rc=$?")
	# ORACLE_TRACE=1 lists the comparisons where both tools are expected to
	# fail, to audit that no scenario passes only because its image is broken.
	[ "${ORACLE_TRACE:-0}" = 1 ] && [ "${q##*rc=}" != 0 ] &&
		echo "trace [$ORACLE_SCENARIO] qemu-img map --output=$mode $* -> ${q##*rc=}"
	if [ "$q" == "$i" ]; then
		_pass
	else
		_fail "map --output=$mode $*"
		diff <(printf '%s\n' "$q") <(printf '%s\n' "$i") | head -20 | sed 's/^/    /'
		sed 's/^/    stderr: /' /tmp/imgaudit-oracle-err.$$ | head -5
	fi
	rm -f /tmp/imgaudit-oracle-err.$$
}

oracle_map() {
	_compare json "$@"
	_compare human "$@"
}

oracle_json() {
	_compare json "$@"
}

expect_map() {
	local mode=$1 expected=$2; shift 2
	local out
	out=$("$IMGAUDIT" map --output="$mode" "$@" 2>&1; echo "rc=$?")
	if [ "$out" == "$(cat "$expected")" ]; then
		_pass
	else
		_fail "expected map ($mode) $*"
		diff "$expected" <(printf '%s\n' "$out") | head -20 | sed 's/^/    /'
	fi
}

expect_fail() {
	local out err rc
	out=$("$IMGAUDIT" map "$@" 2>/tmp/imgaudit-oracle-err.$$)
	rc=$?
	err=$(cat /tmp/imgaudit-oracle-err.$$)
	rm -f /tmp/imgaudit-oracle-err.$$
	if [ $rc -eq 1 ] && [ -z "$out" ] && [ -n "$err" ] && [ "$(printf '%s\n' "$err" | wc -l)" -le 2 ]; then
		_pass
	else
		_fail "expected a clean failure from map $* (rc=$rc, stdout=${out:0:80}, stderr=${err:0:200})"
	fi
}

check() {
	local name=$1; shift
	if "$@"; then _pass; else _fail "$name"; fi
}

oracle_summary() {
	echo "$ORACLE_PASS passed, $ORACLE_FAIL failed"
	[ "$ORACLE_FAIL" -eq 0 ]
}
