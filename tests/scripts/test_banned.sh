#!/bin/bash
# Banned functions (STYLE.md rule 11) are a compile error: formats/banned.h
# redefines each one, and every .c of formats/, schema/, scanner/, report/ and
# tests/tools/ includes it last.  This test proves the header works (a call of
# each banned function, compiled with the project's flags, must fail and name
# the function; the same file without the call must compile), that every
# such .c includes it as its last #include, and, for the files the header
# does not guard (headers, tests/unit, contrib/fuzz), that no banned function
# is called outside comments (the compiler's preprocessor strips them, so a
# call after a multi-line comment is seen).
. "$(dirname "$0")/lib.sh"
CC=${CC:-cc}
BANNED_CFLAGS=${BANNED_CFLAGS:--std=c11 -Wall -Wextra -Werror}
lib_workdir banned
banned="strcpy strcat sprintf vsprintf strtok strtok_r gmtime localtime ctime ctime_r asctime
	asctime_r gets mmap"

# 1. the header itself
probe() { # probe CALL: a translation unit as the project writes one
	cat <<EOC
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "banned.h"

int probe(char *buf, size_t n);
int probe(char *buf, size_t n)
{
        /* a comment that names sprintf(buf, "%d", 1) and, over
           two lines, strcpy(buf, "x") */
        snprintf(buf, n, "%d", 1);
        $1;
        return 0;
}
EOC
}
compile() { $CC $BANNED_CFLAGS -I"$SOURCE_DIR/formats" -c -x c -o /dev/null "$1" 2>"$1.err"; }
probe "(void)0" >clean.c
if compile clean.c; then ok; else bad "the probe without a banned call does not compile: $(head -3 clean.c.err)"; fi
for f in $banned; do
	probe "(void)$f(buf, buf)" >"use_$f.c"
	if compile "use_$f.c"; then
		bad "a call of $f compiles"
	elif grep -q "sorry_${f}_is_a_banned_function" "use_$f.c.err"; then
		ok
	else
		bad "a call of $f fails without naming it: $(head -3 "use_$f.c.err")"
	fi
done

# 2. every guarded .c includes banned.h, as its last #include
cd "$SOURCE_DIR" || exit 1
list() { git ls-files "$@" 2>/dev/null || find "$@" -type f; }
guarded=$(list 'formats/*.c' 'schema/*.c' 'scanner/*.c' 'report/*.c' 'tests/tools/*.c')
[ -n "$guarded" ] && ok || bad "no C files found under $SOURCE_DIR"
for f in $guarded; do
	last=$(grep -E '^[[:space:]]*#[[:space:]]*include' "$f" | tail -1)
	if [[ "$last" =~ ^#include\ \"banned.h\" ]]; then ok; else bad "$f: the last #include is not \"banned.h\" ($last)"; fi
done

# 3. the rest: no call outside comments and string literals
re="\\b($(echo $banned | tr ' ' '|'))[[:space:]]*\\("
for f in $(list '*.h' 'tests/unit/*.c' 'contrib/*.c'); do
	[ "$f" = formats/banned.h ] && continue
	hits=$($CC -fpreprocessed -dD -E -P -x c "$f" 2>/dev/null | sed -e 's:"\([^"\\]\|\\.\)*"::g' | grep -nE "$re")
	if [ -z "$hits" ]; then ok; else bad "$f calls a banned function: $hits"; fi
done
lib_summary test_banned
