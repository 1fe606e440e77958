#!/bin/bash
# Names in messages on stderr are escaped as the report escapes them: a
# newline in a backing file's name cannot forge a second "imgaudit map:" line,
# and an escape sequence never reaches the terminal; in map, scan and report.
. "$(dirname "$0")/lib.sh"
lib_workdir stderr
work=$WORK
ESC=$(printf '\033')
NL='
'

# one_line NAME EXPECTED_SUBSTRING CMD...: CMD fails; every line of its
# stderr is a message of its own ("imgaudit ...: ", or the usage hint "Try
# 'imgaudit help CMD'."), none forged by the name, no ESC byte, and
# EXPECTED_SUBSTRING (the escaped name) is there.
one_line() {
	local name=$1 want=$2 err lines
	shift 2
	err=$("$@" 2>&1 >/dev/null)
	lines=$(printf '%s\n' "$err" | grep -cvE "^(imgaudit[a-z ]*: |Try 'imgaudit (help [a-z]+|--help)'\.$)")
	lines=$((lines + $(printf '%s\n' "$err" | grep -c '^imgaudit map: forged')))
	if [ "$lines" -eq 0 ] && [[ $err != *"$ESC"* ]] && [[ $err == *"$want"* ]]; then
		ok
	else
		FAIL=$((FAIL + 1))
		echo "FAIL $name: $lines line(s):"
		printf '%s\n' "$err" | cat -A | sed 's/^/    /'
	fi
}

evil="b${NL}imgaudit map: forged line ${ESC}[31mred"
escaped='b\nimgaudit map: forged line \x1b[31mred'

# map: a backing name with a newline and an ESC sequence (the file is missing).
qemu-img create -q -f qcow2 top.qcow2 1M
# ("./" first: a ':' before any '/' would make it a protocol name)
qemu-img rebase -u -f qcow2 -F qcow2 -b "./$evil" top.qcow2
one_line "map: missing backing" "$escaped" "$IMGAUDIT" map top.qcow2
one_line "map --output=json: missing backing" "$escaped" "$IMGAUDIT" map --output=json top.qcow2
# ... and the same name present, but outside the allowed root.
mkdir -p root
qemu-img create -q -f qcow2 "./$evil" 1M
mv top.qcow2 root/
one_line "map: backing outside the root" "$escaped" "$IMGAUDIT" map --allow-root=root root/top.qcow2
mv root/top.qcow2 .
# The image's own name, and a warning naming it (data past the end of the file).
cp top.qcow2 "./$evil.qcow2"
one_line "map: the image named on the command line" "$escaped.qcow2" \
	"$IMGAUDIT" map -f vmdk "./$evil.qcow2"
one_line "map: a name taken for a protocol" "$escaped.qcow2" "$IMGAUDIT" map "$evil.qcow2"
qemu-img create -q -f qcow2 "./w$evil.qcow2" 1M
qemu-io -f qcow2 -c 'write -P 1 0 64k' "./w$evil.qcow2" >/dev/null
truncate -s 330000 "./w$evil.qcow2"
err=$("$IMGAUDIT" map --output=json "./w$evil.qcow2" 2>&1 >/dev/null)
if [ "$(printf '%s\n' "$err" | grep -c '^imgaudit map: warning:')" -eq 1 ] &&
	[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err != *"$ESC"* ]] &&
	[[ $err == *"w$escaped.qcow2"* ]]; then
	ok
else
	FAIL=$((FAIL + 1))
	echo "FAIL map: data-past-eof warning"
	printf '%s\n' "$err" | cat -A | sed 's/^/    /'
fi

# scan: a root and a database whose names hold a newline and an ESC sequence.
one_line "scan: missing root" "$escaped" "$IMGAUDIT" scan --db s.db "./$evil-nonexistent"
mkdir -p store
one_line "scan: database in a missing directory" "$escaped" \
	"$IMGAUDIT" scan --db "nodir/$evil.db" store
one_line "scan: a bad option value" "\x1b" "$IMGAUDIT" scan --db s.db -j "1$ESC" store

# report: a database that cannot be opened, an output file that cannot be written.
one_line "report: missing database" "$escaped" "$IMGAUDIT" report --db "nodir/$evil.db"
"$IMGAUDIT" scan --quiet --db r.db store
one_line "report: unwritable output" "$escaped" "$IMGAUDIT" report --db r.db -o "nodir/$evil.txt"

# The top-level dispatcher.
one_line "imgaudit: unknown command" "$escaped" "$IMGAUDIT" "$evil"

lib_summary
