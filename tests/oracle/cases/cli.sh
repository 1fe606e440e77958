#!/bin/bash
# The command line: what qemu-img map accepts and refuses, and its exit status.
. "$(dirname "$0")/../lib.sh"

scenario cli
truncate -s 1M a.raw
dd if=/dev/urandom of=a.raw bs=4096 seek=3 count=2 conv=notrunc status=none
oracle_map a.raw --output json
oracle_json a.raw --output=json -s 4k
oracle_json --output=bad --output=json a.raw
oracle_json -s 0x1000 a.raw
oracle_json -s 0x1k a.raw
oracle_json -s 1.5k a.raw
oracle_json -s 1.k a.raw
oracle_json -s 1.0 a.raw
oracle_json -s 1.5 a.raw
oracle_json -s 1e3 a.raw
oracle_json -s -1 a.raw
oracle_json -s ' 12' a.raw
oracle_json -s 12b a.raw
oracle_json -s 12x a.raw
oracle_json -s '' a.raw
oracle_json -s 9223372036854775807 a.raw
oracle_json -s 9223372036854775808 a.raw
oracle_json -s 18446744073709551616 a.raw
oracle_json -s 8E a.raw
oracle_json -s 7E a.raw
oracle_json -l 16E a.raw
oracle_json -U a.raw
oracle_json -f raw a.raw
oracle_json -f nosuchformat a.raw
# qemu's protocol driver named as a format maps the file as raw does
oracle_map -f file a.raw
oracle_map -f file -s 1000 -l 30000 a.raw
oracle_json -f File a.raw
oracle_json nonexistent.raw
oracle_json a.raw a.raw
oracle_json
oracle_json -x a.raw
oracle_json --nosuch a.raw
oracle_json a.raw -s
# image names read as protocol names, as qemu-img reads them: "file:" is the
# plain file; an unknown protocol fails even when a file of that name exists
cp a.raw 'p:q.raw'
oracle_map 'file:a.raw'
oracle_map "file:$PWD/a.raw"
oracle_map 'file:p:q.raw'
oracle_map './p:q.raw'
oracle_json 'p:q.raw'
oracle_json -f raw 'p:q.raw'
oracle_json 'raw:a.raw'
oracle_json 'FILE:a.raw'
oracle_json 'file:'
oracle_json 'file:nonexistent.raw'
# json: names: qemu-img maps them, imgaudit refuses them (a documented difference)
out=$("$IMGAUDIT" map 'json:{"driver":"raw","file":{"driver":"file","filename":"a.raw"}}' 2>/dev/null)
rc=$?
check "json: image names are refused" [ $rc -eq 1 -a -z "$out" ]
mkfifo fifo
oracle_json -f raw .
# qemu-img would block opening a FIFO; we refuse it at once without opening it.
timeout 5 "$IMGAUDIT" map --output=json fifo >/dev/null 2>&1
rc=$?
if [ $rc -eq 1 ]; then _pass; else _fail "a FIFO must be refused at once with exit 1 (rc=$rc)"; fi

quiet() { "$@" >/dev/null 2>&1; }
# --qemu-compat: versions before 7.2 had other layouts and are refused
for v in 6.0 7.1 foo 7.2.x ''; do
	out=$("$IMGAUDIT" map --qemu-compat="$v" --output=json a.raw 2>/dev/null)
	rc=$?
	if [ $rc -eq 1 ] && [ -z "$out" ]; then _pass; else _fail "--qemu-compat=$v must be refused (rc=$rc)"; fi
done
for v in 7.2 7.2.22 8.2 10.2 11.0; do
	check "--qemu-compat=$v is accepted" quiet "$IMGAUDIT" map --qemu-compat="$v" --output=json a.raw
done
[ "$("$IMGAUDIT" map --qemu-compat=8.1 --output=json a.raw | grep -c compressed)" = 0 ]
check "--qemu-compat=8.1: no compressed key" [ $? = 0 ]
[ "$("$IMGAUDIT" map --qemu-compat=8.2 --output=json a.raw | grep -c '"compressed": false')" -gt 0 ]
check "--qemu-compat=8.2: the compressed key" [ $? = 0 ]

# an invalid --output before a valid one: qemu-img up to 10.0 checks only the
# last one, 10.1 and later each one as it is parsed
for v in 7.2 10.0 10.1 10.2; do
	out=$("$IMGAUDIT" map --qemu-compat="$v" --output=bad --output=json a.raw 2>/dev/null)
	rc=$?
	case $v in
	7.2 | 10.0) want=0 ;;
	*) want=1 ;;
	esac
	if [ $rc -eq $want ] && { [ $want -eq 0 ] || [ -z "$out" ]; }; then _pass; else
		_fail "--qemu-compat=$v --output=bad --output=json: want exit $want (rc=$rc)"
	fi
done
out=$("$IMGAUDIT" map --output=bad --output=json a.raw 2>/dev/null)
rc=$?
check "default compat (10.2) refuses --output=bad --output=json" [ $rc -eq 1 -a -z "$out" ]

# a map that cannot be written is an error (qemu-img ignores it and exits 0)
if [ -w /dev/full ]; then
	"$IMGAUDIT" map --output=json a.raw >/dev/full 2>/dev/null
	check "writing to a full device fails with exit 1" [ $? -eq 1 ]
fi

# has_line REGEX CMD...: CMD exits 0 and prints a line matching REGEX on stdout
has_line() { local re=$1; shift; "$@" 2>/dev/null | grep -Eq -- "$re" && [ "${PIPESTATUS[0]}" -eq 0 ]; }
check "imgaudit --help" has_line '^usage: imgaudit COMMAND' "$IMGAUDIT" --help
check "imgaudit --help lists map" has_line '^  map ' "$IMGAUDIT" --help
check "imgaudit --version" has_line '^imgaudit [0-9]+\.[0-9]+\.[0-9]+ ' "$IMGAUDIT" --version
check "imgaudit help map" has_line '^usage: imgaudit map .*-f FMT' "$IMGAUDIT" help map
check "imgaudit help map: --qemu-compat" has_line '--qemu-compat' "$IMGAUDIT" help map
check "imgaudit map --help" has_line '^usage: imgaudit map ' "$IMGAUDIT" map --help
# -h prints our usage where qemu-img prints its own help (a difference listed in the README)
check "imgaudit map -h" has_line '^usage: imgaudit map ' "$IMGAUDIT" map -h
check "qemu-img map -h prints qemu's help, exit 0" has_line '(^usage: qemu-img |^Usage: qemu-img map)' qemu-img map -h
check "imgaudit help lists bochs, cloop and vmdk among the formats" \
	has_line '^formats: .*vmdk.* bochs cloop raw$' "$IMGAUDIT" --help
# unknown commands are usage errors: exit 2, nothing on stdout
for args in "nosuch" "help nosuch" ""; do
	# shellcheck disable=SC2086
	out=$("$IMGAUDIT" $args 2>/dev/null)
	rc=$?
	if [ $rc -eq 2 ] && [ -z "$out" ]; then _pass; else _fail "imgaudit $args: want exit 2 and no stdout (rc=$rc)"; fi
done

oracle_summary
