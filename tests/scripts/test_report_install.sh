#!/bin/bash
# `cmake --install` puts the binary, the man page imgaudit(1), the schema files
# and the contrib files in their places; the man page covers every subcommand
# and every option each one accepts; `imgaudit --version` names the version,
# the database schema and the report schema; the report's JSON Schema rejects
# documents that break it (it is strict enough to catch errors).
. "$(dirname "$0")/lib.sh"
BUILD=$(cd "$(dirname "$(command -v "$IMGAUDIT")")" && pwd)
lib_workdir install
need cmake groff qemu-img python3

# ---- install ----
cmake --install "$BUILD" --prefix "$WORK/inst" >install.log 2>&1
eq "cmake --install exit status" "$?" "0"
for f in bin/imgaudit share/man/man1/imgaudit.1 share/imgaudit/schema/report.schema.json \
	share/imgaudit/schema/README.md share/doc/imgaudit/contrib/imgaudit.cron \
	share/doc/imgaudit/contrib/node-exporter.md lib/systemd/system/imgaudit.service \
	lib/systemd/system/imgaudit.timer share/bash-completion/completions/imgaudit \
	lib/systemd/system/imgaudit-push.service \
	lib/systemd/system/imgaudit-push.timer share/doc/imgaudit/contrib/fleet/roles.sql \
	share/imgaudit/schema/pg/001_initial.sql; do
	[ -s "inst/$f" ] && ok || bad "not installed: $f"
done
for f in "$SOURCE_DIR"/schema/*.sql; do
	cmp -s "$f" "inst/share/imgaudit/schema/$(basename "$f")" && ok || bad "schema $(basename "$f") not installed"
done
for f in "$SOURCE_DIR"/contrib/sql/*; do
	cmp -s "$f" "inst/share/doc/imgaudit/contrib/sql/$(basename "$f")" && ok || bad "contrib/sql/$(basename "$f") not installed"
done
[ -x inst/bin/imgaudit ] && ok || bad "installed binary not executable"

# ---- --version: the version, the database schema, the report schema ----
VERSION=$(sed -n 's/^project(imgaudit VERSION \([0-9.]*\).*/\1/p' "$SOURCE_DIR/CMakeLists.txt")
DB_SCHEMA=$(find "$SOURCE_DIR/schema" -name '[0-9][0-9][0-9]_*.sql' -printf '%f\n' | sort | tail -1 | sed 's/_.*//; s/^0*//')
RPT_SCHEMA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["properties"]["schema_version"]["const"])' "$SOURCE_DIR/schema/report.schema.json")
eq "--version" "$(inst/bin/imgaudit --version)" "imgaudit $VERSION (database schema $DB_SCHEMA, report schema $RPT_SCHEMA)"

# ---- the man page: every subcommand, every option ----
groff -man -Tutf8 -rLL=200n -P-c -P-b -P-u inst/share/man/man1/imgaudit.1 2>man.err >man.txt
eq "man page renders" "$?" "0"
grep -q "imgaudit $VERSION" man.txt && ok || bad "man page names another version"
cmds=$(inst/bin/imgaudit --help | sed -n '/^commands:/,/^$/p' | awk 'NF && !/:/ {print $1}')
[ -n "$cmds" ] && ok || bad "no subcommand in imgaudit --help"
for c in $cmds; do
	up=$(echo "$c" | tr a-z A-Z)
	# the section IMGAUDIT CMD, from its heading to the next heading
	sed -n "/^IMGAUDIT $up\$/,/^[A-Z][A-Z ]*\$/p" man.txt | sed '$d' >"man.$c"
	[ -s "man.$c" ] && ok || bad "man page has no section IMGAUDIT $up"
	grep -q "imgaudit $c" man.txt && ok || bad "man page SYNOPSIS lacks imgaudit $c"
	for opt in $(inst/bin/imgaudit help "$c" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		grep -qF -- "$opt" "man.$c" && ok || bad "man page section IMGAUDIT $up lacks $opt"
	done
done
for s in summary capacity sharing chains orphans findings trend; do
	grep -qE "^ {7}$s( |\$)" man.txt && ok || bad "man page does not describe the section $s"
done

# ---- the report's JSON Schema is strict ----
mkdir s
qemu-img create -q -f qcow2 s/base.qcow2 4M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 s/ov.qcow2
qemu-img create -q -f qcow2 -b gone.qcow2 -F qcow2 -u s/broken.qcow2 4M
inst/bin/imgaudit scan --db db.sqlite --quiet s
inst/bin/imgaudit scan --db db.sqlite --quiet s
inst/bin/imgaudit report --db db.sqlite --format=json >r.json
eq "report exit status" "$?" "0"
python3 - inst/share/imgaudit/schema/report.schema.json r.json <<'PY' && ok || bad "schema strictness"
import copy, json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
doc = json.load(open(sys.argv[2]))
errs = list(v.iter_errors(doc))
assert not errs, errs[0].message
def setk(path, value):
    def f(d):
        *p, k = path
        for x in p:
            d = d[x]
        d[k] = value
    return f
def delk(path):
    def f(d):
        *p, k = path
        for x in p:
            d = d[x]
        del d[k]
    return f
mutations = {
    "negative bytes": setk(["capacity", "totals", "allocated_bytes"], -1),
    "bytes as a string": setk(["capacity", "images", 0, "own_data_bytes"], "1"),
    "fractional bytes": setk(["summary", "virtual_bytes"], 1.5),
    "unknown key": setk(["summary", "bogus"], 1),
    "unknown section": setk(["extra"], {}),
    "missing figure": delk(["sharing", "bases", 0, "dead_bytes"]),
    "missing scan": delk(["scan"]),
    "other schema_version": setk(["schema_version"], 2),
    "unknown change": setk(["trend", "images", 0, "change"], "grew"),
    "unknown scan status": setk(["scan", "status"], "done"),
    "null name": setk(["orphans", "images", 0, "name"], None),
    "key in a chain node": setk(["chains", "trees", 0, "children", 0, "x"], 1),
    "ratio as a string": setk(["capacity", "overcommit", "ratio"], "1.0"),
    "negative depth": setk(["chains", "depth_histogram", 0, "depth"], -1),
    "finding without message": delk(["findings", "categories", 0, "items", 0, "message"]),
    "count as a boolean": setk(["orphans", "count"], True),
}
missed = []
for name, mutate in mutations.items():
    d = copy.deepcopy(doc)
    mutate(d)
    if not list(v.iter_errors(d)):
        missed.append(name)
assert not missed, "schema accepts: " + ", ".join(missed)
PY

lib_summary test_report_install
