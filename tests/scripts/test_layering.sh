#!/bin/bash
# The layering of the libraries (README, "Source code layout"), checked on
# every #include "..." line of the sources:
#
#   formats/ <- schema/ <- scanner/, report/ (siblings) <- the binary
#
# A file includes headers of its own folder or of the folders beneath it,
# by bare name (never a path such as "../scanner/scan.h", which would get
# round the include directories).  scanner/main.c is the binary, on top.
# The build enforces the same with private include directories
# (tests/boundaries/: a crossing does not compile); this check also sees
# the headers no probe names.  It first proves that it finds a crossing in
# a small tree made here.
. "$(dirname "$0")/lib.sh"
lib_workdir layering

declare -A beneath=([formats]="" [schema]="formats" [scanner]="schema formats"
	[report]="schema formats")
folders="formats schema scanner report"

# check_tree ROOT: print one line per crossing under ROOT
check_tree() {
	local root=$1 dir f h d found line
	for dir in $folders; do
		for f in "$root/$dir"/*.[ch]; do
			[ -f "$f" ] || continue
			[ "$dir/${f##*/}" = scanner/main.c ] && continue
			grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
				sed -E 's/^[^"]*"([^"]*)".*/\1/' | while read -r h; do
				case $h in
				*/*)
					echo "$dir/${f##*/}: includes \"$h\" by a path"
					continue
					;;
				esac
				[ -f "$root/$dir/$h" ] && continue
				found=
				for d in ${beneath[$dir]}; do
					[ -f "$root/$d/$h" ] && found=$d && break
				done
				[ -n "$found" ] && continue
				line="$dir/${f##*/}: includes \"$h\", which is in no folder beneath $dir/"
				for d in $folders; do
					[ -f "$root/$d/$h" ] && line="$dir/${f##*/}: includes $d/$h (${dir}/ may include ${beneath[$dir]:-nothing but itself})"
				done
				echo "$line"
			done
		done
	done
}

# the checker finds crossings: upwards, sideways, by a path
mkdir -p t/formats t/schema t/scanner t/report
echo '#include "store.h"' >t/formats/a.c
echo '#include "error.h"' >t/schema/store.h
echo '#include "rpt.h"' >t/scanner/scan.h
printf '#include "store.h"\n#include "error.h"\n#include "../scanner/scan.h"\n' >t/report/rpt.h
touch t/formats/error.h
check_tree "$WORK/t" >found.txt
eq "crossings found in the made tree" "$(sort found.txt | sed 's/ .*//' | tr '\n' ' ')" \
	"formats/a.c: report/rpt.h: scanner/scan.h: "
grep -q 'formats/a.c: includes schema/store.h' found.txt && ok || bad "upward crossing not named: $(cat found.txt)"

# check_sql ROOT: the scan issues no SQL.  No file of scanner/ includes
# <sqlite3.h>, <libpq-fe.h> or store_sql.h (the store's SQLite connection);
# formats/ knows nothing of SQLite.  The commands that read a store or the
# fleet's database through the store's typed APIs (push: pg_push.h; the
# report from PostgreSQL: pg_load.h) make no sqlite3_* or PQ* call either:
# no file of scanner/, nor report/'s PostgreSQL files (pg_*.c, pg_*.h).
check_sql() {
	local f
	for f in "$1"/scanner/*.[ch] "$1"/formats/*.[ch]; do
		[ -f "$f" ] || continue
		grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](sqlite3|store_sql|libpq-fe)\.h[>"]' "$f" &&
			echo "${f#"$1"/}: includes SQLite or libpq"
	done
	for f in "$1"/scanner/*.[ch] "$1"/report/pg_*.[ch]; do
		[ -f "$f" ] || continue
		# calls only: the comments and strings may name them
		sed -E 's@/\*.*\*/@@g; s@"([^"\\]|\\.)*"@""@g' "$f" |
			grep -qE '\b(sqlite3_[a-z0-9_]+|PQ[a-zA-Z]+)[[:space:]]*\(' &&
			echo "${f#"$1"/}: calls SQLite or libpq"
	done
}
echo '#include <sqlite3.h>' >t/scanner/scan_x.c
echo '#include "store_sql.h"' >t/scanner/scan_y.c
printf 'int f(void)\n{\n        return sqlite3_step (st);\n}\n' >t/scanner/cmd_z.c
printf '/* PQclear(res) in a comment */\nstatic const char *s = "PQexec(";\nint g(void) { PQclear(res); }\n' >t/report/pg_w.c
printf '/* sqlite3_close() */\nstatic const char *s = "PQexec(x)";\n' >t/report/pg_v.c
eq "SQL in the made tree" "$(check_sql "$WORK/t" | sort | tr '\n' ' ')" \
	"report/pg_w.c: calls SQLite or libpq scanner/cmd_z.c: calls SQLite or libpq scanner/scan_x.c: includes SQLite or libpq scanner/scan_y.c: includes SQLite or libpq "
rm t/scanner/scan_x.c t/scanner/scan_y.c t/scanner/cmd_z.c t/report/pg_w.c t/report/pg_v.c

# check_report_sql ROOT: the report issues no SQL either: no file of report/
# includes <sqlite3.h>, store_sql.h or store_read.h (which hand out the
# connection) or names an sqlite3_ function; its queries are the store's
# (schema/store_report.h), the fleet report's too (schema/pg_load.h fills
# each host's in-memory store).
check_report_sql() {
	local f
	for f in "$1"/report/*.[ch]; do
		[ -f "$f" ] || continue
		if grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](sqlite3|store_sql|store_read)\.h[>"]' "$f"; then
			echo "${f#"$1"/}: includes SQLite"
		elif grep -qE '\bsqlite3_[a-z_0-9]+[[:space:]]*\(' "$f"; then
			echo "${f#"$1"/}: calls SQLite"
		fi
	done
}
echo '#include "store_read.h"' >t/report/rpt_x.c
printf 'int f(void)\n{\n\treturn sqlite3_step(st);\n}\n' >t/report/rpt_y.c
echo '#include <sqlite3.h>' >t/report/pg_x.c
eq "report SQL in the made tree" "$(check_report_sql "$WORK/t" | sort | tr '\n' ' ')" \
	"report/pg_x.c: includes SQLite report/rpt_x.c: includes SQLite report/rpt_y.c: calls SQLite "

# the sources
[ -f "$SOURCE_DIR/scanner/scan.h" ] && [ -f "$SOURCE_DIR/schema/store.h" ] && ok ||
	bad "no sources at $SOURCE_DIR"
check_tree "$SOURCE_DIR" >crossings.txt
[ ! -s crossings.txt ] && ok || bad "boundary crossings:
$(cat crossings.txt)"
check_sql "$SOURCE_DIR" >sql.txt
check_report_sql "$SOURCE_DIR" >>sql.txt
[ ! -s sql.txt ] && ok || bad "SQL outside the store:
$(cat sql.txt)"

lib_summary test_layering
