#!/bin/bash
# The man page contrib/imgaudit.1: `mandoc -T lint` finds nothing (not even a
# style message), its date parses, the rendered text has no words glued
# together by a mis-quoted macro, and every environment variable the code
# reads (getenv) is documented in ENVIRONMENT.
. "$(dirname "$0")/lib.sh"
MAN=$SOURCE_DIR/contrib/imgaudit.1
lib_workdir man
need mandoc

mandoc -T lint "$MAN" >"$WORK/lint" 2>&1
[ $? -eq 0 ] && [ ! -s "$WORK/lint" ] && ok || bad "mandoc -T lint: $(cat "$WORK/lint")"
mandoc -T lint -W all "$MAN" 2>&1 | grep -q 'cannot parse date' && bad "the .TH date does not parse" || ok
LC_ALL=C.UTF-8 mandoc -T utf8 "$MAN" | col -b >"$WORK/man.txt"
[ -s "$WORK/man.txt" ] && ok || bad "mandoc renders nothing"
python3 "$SOURCE_DIR/tests/scripts/man_words.py" "$MAN" "$WORK/man.txt" && ok || bad "words glued together"
grep -nE '[a-z)][.;,][A-Z][a-z]' "$WORK/man.txt" && bad "a sentence runs into the previous one" || ok

# every getenv("NAME") of the sources, documented in ENVIRONMENT
sed -n '/^ENVIRONMENT$/,/^[A-Z][A-Z ]*$/p' "$WORK/man.txt" >"$WORK/env.txt"
srcs=$(cd "$SOURCE_DIR" && { git ls-files '*.c' 2>/dev/null || find . -name '*.c' -not -path './build*'; })
vars=$(cd "$SOURCE_DIR" && echo "$srcs" | xargs grep -ho 'getenv("[A-Z_]*")' | sed 's/getenv("\(.*\)")/\1/' | sort -u)
[ -n "$vars" ] && ok || bad "no getenv found in the sources"
for v in $vars; do
	grep -qE "^ {7}$v( |\$)" "$WORK/env.txt" && ok || bad "environment variable $v is not documented in ENVIRONMENT"
done

lib_summary test_manpage
