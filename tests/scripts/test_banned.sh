#!/bin/bash
# House rules that a compiler does not check: no banned function (STYLE.md:
# strcpy, strcat, sprintf, vsprintf, strtok, gmtime, localtime and friends
# without bounds or with shared state) in any C file of the tree, and no mmap
# of an image (a file truncated under us must not kill the process).
set -u
SOURCE_DIR=${SOURCE_DIR:?}
cd "$SOURCE_DIR" || exit 1
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.c' -o -name '*.h')
fail=0
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|gmtime|localtime|ctime|asctime|gets|mmap)[[:space:]]*\('
# Lines are read without comments and string literals, so prose may name them.
hits=$(for f in $files; do
	sed -e 's://.*$::' -e 's:/\*.*\*/::g' -e 's:"[^"]*"::g' "$f" | grep -nE "$banned" | sed "s|^|$f:|"
done)
if [ -n "$hits" ]; then
	echo "banned functions used:"
	echo "$hits"
	fail=1
fi
n=$(echo "$files" | wc -w)
if [ "$fail" -eq 0 ]; then echo "1 passed, 0 failed ($n files)"; else echo "0 passed, 1 failed"; fi
exit $fail
