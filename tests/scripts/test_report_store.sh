#!/bin/bash
# imgaudit report against a store whose answers are known by construction:
# a base with 4 MiB of data, overlays that each write known ranges (one two
# levels deep), an overlay whose backing file was deleted, a compressed
# standalone image, and an image whose name holds a newline.  Every section
# is checked with exact figures in every format, figures are cross-checked
# against sums over v_map, the JSON validates against its schema, the HTML
# renders in headless Chromium, -o is atomic, and a report runs while a scan
# is writing without waiting for it.
. "$(dirname "$0")/lib.sh"
SCHEMA=$SOURCE_DIR/schema/report.schema.json
lib_workdir report
BG=
lib_on_exit() {
	[ -n "$BG" ] && kill -9 "$BG" 2>/dev/null
}
need qemu-img qemu-io sqlite3 python3
python3 -c 'import jsonschema' 2>/dev/null || { echo "python3-jsonschema is not installed (run tests/setup.sh)"; exit 1; }
# pj FILE EXPR: evaluate a Python expression over the JSON document d
# pj FILE EXPR: EXPR over the JSON report d, its paths made relative to $WORK (as rel does)
pj() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().replace(sys.argv[3] + "/", "")); print(eval(sys.argv[2]))' "$1" "$2" "$WORK" 2>&1 | tail -1; }
# relfile FILE...: the report's paths made relative to $WORK in place (stored paths are absolute)
relfile() { sed -i "s|$WORK/||g" "$@"; }
alloc() { echo $(($(stat -c %b "$1") * 512)); }
validate() {
	python3 - "$SCHEMA" "$1" <<'PY'
import json, sys, jsonschema
s = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(s)
jsonschema.validate(json.load(open(sys.argv[2])), s, cls=jsonschema.Draft202012Validator)
PY
}
M=1048576
K=1024

# ---- the store ----
mkdir -p store/sub
cd store
qemu-img create -q -f qcow2 base.qcow2 16M
qemu-io -c 'write -P 0xaa 0 4M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 ov1.qcow2
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x13 3M 1M' ov1.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 ov2.qcow2
qemu-io -c 'write -P 0x22 1M 1M' -c 'write -P 0x23 3M 1M' ov2.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ov1.qcow2 -F qcow2 ov3.qcow2
qemu-io -c 'write -P 0x33 8M 1M' ov3.qcow2 >/dev/null
qemu-img create -q -f qcow2 sub/gone.qcow2 16M
qemu-img create -q -f qcow2 -b gone.qcow2 -F qcow2 sub/broken.qcow2
qemu-io -c 'write -P 0x44 0 64k' sub/broken.qcow2 >/dev/null
rm sub/gone.qcow2
truncate -s 2M raw.img
qemu-io -f raw -c 'write -P 0x55 0 1M' raw.img >/dev/null
qemu-img convert -c -O qcow2 raw.img sub/packed.qcow2
rm raw.img
EVIL=$'evil\nname.qcow2'
qemu-img create -q -f qcow2 "sub/$EVIL" 1M
cd ..
"$IMGAUDIT" scan --db db.sqlite --quiet store
eq "first scan exit status" "$?" "0"

A_BASE=$(alloc store/base.qcow2) A_OV1=$(alloc store/ov1.qcow2) A_OV2=$(alloc store/ov2.qcow2)
A_OV3=$(alloc store/ov3.qcow2) A_BROKEN=$(alloc store/sub/broken.qcow2)
A_PACKED=$(alloc store/sub/packed.qcow2) A_EVIL=$(alloc "store/sub/$EVIL")
A_ALL=$((A_BASE + A_OV1 + A_OV2 + A_OV3 + A_BROKEN + A_PACKED + A_EVIL))

# ---- JSON: every section, exact figures ----
sum_before=$(sha256sum db.sqlite)
"$IMGAUDIT" report --db db.sqlite --format=json >r1.json
eq "report exit status" "$?" "0"
eq "database unchanged by report" "$(sha256sum db.sqlite)" "$sum_before"
validate r1.json && ok || bad "r1.json does not validate against $SCHEMA"
eq "schema_version" "$(pj r1.json 'd["schema_version"]')" "1"

img() { echo "[i for i in d['capacity']['images'] if i['name']=='store/$1'][0]"; }
# name own backing zero unalloc compressed virtual allocated [unknown]
space() {
	eq "capacity $1" "$(pj r1.json "[$(img "$1")[k] for k in ('own_data_bytes','backing_data_bytes','zero_bytes','unallocated_bytes','compressed_bytes','virtual_bytes','allocated_bytes')]")" "$2"
	eq "capacity $1 unknown" "$(pj r1.json "$(img "$1")['unknown_bytes']")" "${3:-0}"
}
space base.qcow2 "[$((4 * M)), 0, 0, $((12 * M)), 0, $((16 * M)), $A_BASE]"
space ov1.qcow2 "[$((2 * M)), $((2 * M)), 0, $((12 * M)), 0, $((16 * M)), $A_OV1]"
space ov2.qcow2 "[$((2 * M)), $((2 * M)), 0, $((12 * M)), 0, $((16 * M)), $A_OV2]"
space ov3.qcow2 "[$((1 * M)), $((4 * M)), 0, $((11 * M)), 0, $((16 * M)), $A_OV3]"
# what reads through to the missing backing file is unknown, never unallocated
space sub/broken.qcow2 "[$((64 * K)), 0, 0, 0, 0, $((16 * M)), $A_BROKEN]" $((16 * M - 64 * K))
space sub/packed.qcow2 "[$((1 * M)), 0, 0, $((1 * M)), $((1 * M)), $((2 * M)), $A_PACKED]"
eq "flattened ov3" "$(pj r1.json "$(img ov3.qcow2)['flattened_bytes']")" "$((5 * M))"
eq "overhead ov1" "$(pj r1.json "$(img ov1.qcow2)['metadata_overhead_bytes']")" "$((A_OV1 - 2 * M))"
eq "overhead packed (clamped)" "$(pj r1.json "$(img sub/packed.qcow2)['metadata_overhead_bytes']")" "0"
eq "evil name escaped" "$(pj r1.json "[i['name'] for i in d['capacity']['images'] if 'evil' in i['name']]")" "['store/sub/evil\\\\nname.qcow2']"
eq "evil path exact" "$(pj r1.json "[i['path'] for i in d['capacity']['images'] if 'evil' in i['name']]==['store/sub/evil\\nname.qcow2']")" "True"
eq "total allocated" "$(pj r1.json 'd["capacity"]["totals"]["allocated_bytes"]')" "$A_ALL"
eq "total virtual" "$(pj r1.json 'd["capacity"]["totals"]["virtual_bytes"]')" "$((83 * M))"
LEAF_V=$((16 * M * 3 + 2 * M + 1 * M)) # ov2 ov3 broken packed evil
eq "overcommit" "$(pj r1.json '[d["capacity"]["overcommit"][k] for k in ("leaf_virtual_bytes","allocated_bytes")]')" "[$LEAF_V, $A_ALL]"
eq "overcommit ratio" "$(pj r1.json 'round(d["capacity"]["overcommit"]["ratio"],3)')" "$(python3 -c "print(round($LEAF_V/$A_ALL,3))")"
eq "directories" "$(pj r1.json '[(x["name"],x["images"]) for x in d["capacity"]["directories"]]')" "[('store', 4), ('store/sub', 3)]"
eq "roots" "$(pj r1.json '[(x["name"],x["images"],x["allocated_bytes"]) for x in d["capacity"]["roots"]]')" "[('store', 7, $A_ALL)]"

# cross-check every image's split against sums over v_map
for f in base.qcow2 ov1.qcow2 ov2.qcow2 ov3.qcow2 sub/broken.qcow2 sub/packed.qcow2; do
	want=$(sqlite3 db.sqlite "SELECT '[' || coalesce(sum(CASE WHEN depth = 0 AND data THEN length END), 0) || ', ' ||
		coalesce(sum(CASE WHEN depth > 0 AND data THEN length END), 0) || ', ' ||
		coalesce(sum(CASE WHEN NOT data AND present THEN length END), 0) || ', ' ||
		coalesce(sum(CASE WHEN NOT data AND NOT present THEN length END), 0) || ', ' ||
		coalesce(sum(CASE WHEN data AND compressed THEN length END), 0) || ']' FROM v_map WHERE path = '$WORK/store/$f'")
	eq "v_map cross-check $f" "$(pj r1.json "[$(img $f)[k] for k in ('own_data_bytes','backing_data_bytes','zero_bytes','unallocated_bytes','compressed_bytes')]")" "$want"
done
eq "v_map total own data" "$(pj r1.json 'd["capacity"]["totals"]["own_data_bytes"]')" \
	"$(sqlite3 db.sqlite 'SELECT sum(length) FROM v_map WHERE depth = 0 AND data')"

# summary
eq "summary" "$(pj r1.json '[d["summary"][k] for k in ("images","virtual_bytes","allocated_bytes","broken_links")]')" "[7, $((83 * M)), $A_ALL, 1]"
eq "by status" "$(pj r1.json '[(x["status"],x["images"]) for x in d["summary"]["by_status"]]')" "[('missing', 1), ('ok', 6)]"

# sharing: base data [0,4M); ov1 and ov2 both overwrite [3M,4M): dead 1M
base="[b for b in d['sharing']['bases'] if b['name']=='store/base.qcow2'][0]"
eq "sharing base" "$(pj r1.json "[$base[k] for k in ('children','descendants','own_data_bytes','visible_bytes','dead_bytes')]")" "[2, 3, $((4 * M)), $((3 * M)), $((1 * M))]"
eq "sharing base children" "$(pj r1.json "$base['direct_children']")" "['store/ov1.qcow2', 'store/ov2.qcow2']"
eq "sharing overlays" "$(pj r1.json "[(o['name'],o['depth'],o['unique_bytes'],o['reads_from_base_bytes']) for o in $base['overlays']]")" \
	"[('store/ov1.qcow2', 1, $((2 * M)), $((2 * M))), ('store/ov3.qcow2', 2, $((1 * M)), $((2 * M))), ('store/ov2.qcow2', 1, $((2 * M)), $((2 * M)))]"
ov1b="[b for b in d['sharing']['bases'] if b['name']=='store/ov1.qcow2'][0]"
eq "sharing ov1 as base" "$(pj r1.json "[$ov1b[k] for k in ('children','descendants','visible_bytes','dead_bytes')]")" "[1, 1, $((2 * M)), 0]"
del() { pj r1.json "[(x['freed_bytes'],x['orphaned_bases'],x['breaks_images']) for x in d['sharing']['deletion'] if x['name']=='store/$1'][0]"; }
eq "freed if ov3 deleted (ov1 left orphaned)" "$(del ov3.qcow2)" "($((A_OV3 + A_OV1)), 1, 0)"
eq "freed if ov2 deleted" "$(del ov2.qcow2)" "($A_OV2, 0, 0)"
eq "freed if base deleted" "$(del base.qcow2)" "($A_BASE, 0, 3)"
# cross-check visible bytes of the base with v_map: union of base-depth data ranges of its descendants
vis=$(sqlite3 db.sqlite "SELECT start, length FROM v_map WHERE data AND ((path IN ('$WORK/store/ov1.qcow2','$WORK/store/ov2.qcow2') AND depth = 1) OR (path = '$WORK/store/ov3.qcow2' AND depth = 2))" |
	python3 -c '
import sys
iv = sorted((int(a), int(a) + int(b)) for a, b in (l.strip().split("|") for l in sys.stdin))
tot, cur = 0, None
for s, e in iv:
    if cur and s <= cur[1]: cur[1] = max(cur[1], e)
    else:
        if cur: tot += cur[1] - cur[0]
        cur = [s, e]
print(tot + (cur[1] - cur[0] if cur else 0))')
eq "v_map cross-check visible" "$(pj r1.json "$base['visible_bytes']")" "$vis"

# chains
eq "chain trees" "$(pj r1.json '[(t["name"],[(c["name"],[g["name"] for g in c["children"]]) for c in t["children"]]) for t in d["chains"]["trees"]]')" \
	"[('store/base.qcow2', [('store/ov1.qcow2', ['store/ov3.qcow2']), ('store/ov2.qcow2', [])]), ('store/sub/broken.qcow2', [])]"
eq "depth histogram" "$(pj r1.json '[(x["depth"],x["images"]) for x in d["chains"]["depth_histogram"]]')" "[(0, 4), (1, 2), (2, 1)]"
eq "broken links" "$(pj r1.json '[(x["image"],x["name"],x["status"]) for x in d["chains"]["broken_links"]]')" "[('store/sub/broken.qcow2', 'gone.qcow2', 'missing')]"

# orphans: nothing references them
eq "orphans" "$(pj r1.json '[(x["name"],x["kind"]) for x in d["orphans"]["images"]]')" \
	"[('store/ov2.qcow2', 'overlay'), ('store/ov3.qcow2', 'overlay'), ('store/sub/broken.qcow2', 'broken'), ('store/sub/evil\\\\nname.qcow2', 'standalone'), ('store/sub/packed.qcow2', 'standalone')]"
# no VM definitions were read: the leaves and standalone disks are presumed in use,
# none is a base, so nothing is reclaimable (schema 5's orphan classes)
eq "orphans classes" "$(pj r1.json '[x["class"] for x in d["orphans"]["images"]]')" "['presumed-in-use', 'presumed-in-use', 'presumed-in-use', 'presumed-in-use', 'presumed-in-use']"
eq "orphans reclaimable" "$(pj r1.json 'd["orphans"]["reclaimable_bytes"]')" "0"
eq "orphans: no VM definitions" "$(pj r1.json 'd["orphans"]["vm_definitions_read"]')" "False"

# findings
eq "findings" "$(pj r1.json '[(c["category"],c["count"]) for c in d["findings"]["categories"]]')" "[('image-missing', 1), ('link-missing', 1)]"

# trend with a single scan: nothing to compare
eq "trend without an earlier scan" "$(pj r1.json '(d["trend"]["from_scan"], d["trend"]["images"], len(d["trend"]["history"]))')" "(None, [], 1)"

# ---- human ----
"$IMGAUDIT" report --db db.sqlite >r1.txt
relfile r1.txt
eq "human exit status" "$?" "0"
grep -q '^  overcommit ratio ' r1.txt && ok || bad "human overcommit line"
grep -q '^name\.qcow2' r1.txt && bad "a newline in a name forged a line" || ok
grep -qF 'store/sub/evil\nname.qcow2' r1.txt && ok || bad "human escaped name"
grep -Eq '^  base +store/base\.qcow2 +store/base\.qcow2 +0 +2 +3 +4\.0 MiB +3\.0 MiB +1\.0 MiB ' r1.txt && ok || bad "human sharing row"
grep -Eq '^    └─ store/ov3\.qcow2 ' r1.txt && ok || bad "human chain tree"

# ---- CSV: one file per table, plain column names, values without units ----
"$IMGAUDIT" report --db db.sqlite --format=csv --section=capacity >cap.csv
relfile cap.csv
python3 - cap.csv "$A_BASE" <<'PY' && ok || bad "csv capacity"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
b = [r for r in rows if r["scope"] == "image" and r["name"] == "store/base.qcow2"][0]
assert "table" not in b and b["own_data_bytes"] == str(4 << 20) and b["allocated_bytes"] == sys.argv[2], b
assert any(r["name"] == "store/sub/evil\\nname.qcow2" for r in rows)
assert [r["scope"] for r in rows].count("total") == 1
PY
"$IMGAUDIT" report --db db.sqlite --format=csv >all.csv 2>err.txt
eq "csv to stdout without one --section exit status" "$?" "2"
eq "csv to stdout without one --section: nothing written" "$(wc -c <all.csv)" "0"
"$IMGAUDIT" report --db db.sqlite --format=csv -o csv
eq "csv -o DIR exit status" "$?" "0"
relfile csv/*.csv
# summary: scan + summary; chains: chains + depths + broken links; trend: trend + top + history
eq "csv files" "$(cd csv && ls | tr '\n' ' ')" \
	"broken_links.csv capacity.csv chain_depths.csv chains.csv findings.csv history.csv orphans.csv scan.csv sharing.csv summary.csv top_growers.csv trend.csv "
eq "csv line endings" "$(cat csv/*.csv | grep -c $'[^\r]$')" "0"
eq "csv -o DIR: the same capacity table as --section" "$(cmp csv/capacity.csv cap.csv && echo same)" "same"
# sqlite3 .import of every file: no warning, one row per record after the header
for f in csv/*.csv; do
	t=$(basename "$f" .csv)
	out=$(sqlite3 csv.sqlite ".import --csv $f $t" "SELECT count(*) FROM \"$t\"" 2>&1)
	eq "sqlite3 .import $f" "$out" "$(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$f") - 1))"
done
eq "csv: the sharing table imported" "$(sqlite3 csv.sqlite "SELECT visible_bytes, dead_bytes FROM sharing WHERE kind = 'base' AND image = 'store/base.qcow2'")" "$((3 * M))|$M"
"$IMGAUDIT" report --db db.sqlite --format=csv --section=findings -o csv2
eq "csv -o DIR with one section" "$(cd csv2 && ls | tr '\n' ' ')" "findings.csv "
touch notadir
"$IMGAUDIT" report --db db.sqlite --format=csv -o notadir 2>err.txt
eq "csv -o FILE exit status" "$?" "1"
# every section's exact figures in CSV; numbers without units everywhere
python3 - csv "$M" "$A_OV1" "$A_OV3" <<'PY' && ok || bad "csv figures"
import csv, os, re, sys
M, a_ov1, a_ov3 = (int(x) for x in sys.argv[2:])
tables = {f[:-4]: list(csv.DictReader(open(os.path.join(sys.argv[1], f), newline=""))) for f in os.listdir(sys.argv[1])}
for name, rows in tables.items():
    for r in rows:
        assert "table" not in r, name
        for k, v in r.items():
            if k.endswith(("_bytes", "_seconds", "_days")) or k in ("images", "depth", "children", "descendants"):
                assert re.fullmatch(r"-?[0-9]*", v), (name, k, v)
            assert not re.fullmatch(r"[-+]?[0-9.]+ ?(B|[KMGTPE]iB|s)", v), (name, k, v)
scan = {r["key"]: r["value"] for r in tables["scan"]}
assert scan["id"] == "1" and scan["errors"] == "0", scan
assert re.fullmatch(r"[0-9]+", scan["duration_seconds"]), scan
tot = [r for r in tables["summary"] if r["group"] == "total"][0]
assert tot["images"] == "7" and tot["virtual_bytes"] == str(83 * M), tot
base = [r for r in tables["sharing"] if r["kind"] == "base" and r["image"] == "store/base.qcow2"][0]
assert (base["visible_bytes"], base["dead_bytes"], base["descendants"]) == (str(3 * M), str(M), "3"), base
ov3 = [r for r in tables["sharing"] if r["image"] == "store/ov3.qcow2"][0]
assert ov3["freed_if_deleted_bytes"] == str(a_ov1 + a_ov3) and ov3["depth"] == "2", ov3
assert [(r["chain_depth"], r["images"]) for r in tables["chain_depths"]] == [("0", "4"), ("1", "2"), ("2", "1")]
assert [(r["image"], r["status"]) for r in tables["broken_links"]] == [("store/sub/broken.qcow2", "missing")]
assert len(tables["orphans"]) == 5 and all(r["age_days"] == "0" for r in tables["orphans"])
assert sorted(r["category"] for r in tables["findings"]) == ["image-missing", "link-missing"]
assert tables["trend"] == [] and [r["scan"] for r in tables["history"]] == ["1"]
PY

# ---- Prometheus ----
# (promtool: the text format and Prometheus' naming rules, on every file made here)
promcheck() { promtool check metrics <"$1" >"$1.lint" 2>&1 && ok || bad "promtool check metrics $1: $(head -3 "$1.lint")"; }
command -v promtool >/dev/null || bad "promtool is not installed (run tests/setup.sh)"
"$IMGAUDIT" report --db db.sqlite --format=prometheus >r.prom
promcheck r.prom
"$IMGAUDIT" report --db db.sqlite --format=prometheus --prometheus-per-image >rp.prom
relfile rp.prom
promcheck rp.prom
grep -qxF "imgaudit_store_allocated_bytes $A_ALL" r.prom && ok || bad "prom store allocated"
grep -qxF "imgaudit_base_dead_bytes{base=\"store/base.qcow2\"} $M" rp.prom && ok || bad "prom dead bytes"
grep -qxF 'imgaudit_image_allocated_bytes{image="store/sub/evil\\nname.qcow2"} '"$A_EVIL" rp.prom && ok || bad "prom escaped label"
grep -qxF 'imgaudit_orphans 0' r.prom && grep -qxF 'imgaudit_orphans_by_class{class="presumed-in-use"} 5' r.prom && ok || bad "prom orphans"
python3 - rp.prom <<'PY' && ok || bad "prom text format"
import re, sys
seen, types = set(), {}
line_re = re.compile(r'^(imgaudit_[a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-z_]+="(?:[^"\\\n]|\\[\\"n])*")*\})? -?[0-9.e+]+$')
cur = None
for l in open(sys.argv[1]).read().split("\n")[:-1]:
    if l.startswith("# HELP "):
        cur = l.split()[2]; assert cur not in seen, cur; seen.add(cur)
    elif l.startswith("# TYPE "):
        assert l.split()[2] == cur and l.split()[3] == "gauge", l
    else:
        m = line_re.match(l); assert m, l; assert m.group(1) == cur, (l, cur)
PY

# every metric is documented in contrib/node-exporter.md
python3 - rp.prom "$SOURCE_DIR/contrib/node-exporter.md" <<'PY' && ok || bad "metrics missing from node-exporter.md"
import itertools, re, sys
doc = set()
for m in re.findall(r"`(imgaudit_[a-z_{},]+)`", open(sys.argv[2]).read()):
    parts = re.split(r"\{([^}]*)\}", m)
    for combo in itertools.product(*[[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]):
        doc.add("".join(combo))
emitted = {l.split()[2] for l in open(sys.argv[1]) if l.startswith("# TYPE ")}
assert emitted <= doc, sorted(emitted - doc)
PY

# ---- HTML in headless Chromium ----
"$IMGAUDIT" report --db db.sqlite --format=html -o r.html
eq "html exit status" "$?" "0"
grep -qiE '<script|<link|@import|url\(|src=' r.html && bad "html refers to something outside itself" || ok
# render HTML DOM: load the page in headless Chromium, which must report no error
render() {
	timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --user-data-dir="$WORK/chrome" \
		--enable-logging=stderr --dump-dom "file://$WORK/$1" >"$2" 2>chrome.err
	eq "chromium exit status ($1)" "$?" "0"
	relfile "$2"
	grep -E 'CONSOLE|Refused to|Uncaught' chrome.err && bad "chromium reported errors ($1)" || ok
}
if command -v chromium >/dev/null; then
	render r.html dom.html
	grep -qF "id=\"k-allocated\" title=\"$A_ALL\"" dom.html && ok || bad "html allocated figure"
	grep -qF 'id="k-orphans" title="0"' dom.html && ok || bad "html orphans figure"
	grep -qF '<svg id="chart-sharing"' dom.html && ok || bad "html sharing chart"
	grep -qF '<svg id="chart-capacity"' dom.html && ok || bad "html capacity chart"
	grep -qF 'store/sub/evil\nname.qcow2' dom.html && ok || bad "html escaped name"
	grep -qF "id=\"k-overcommit\" title=\"$(python3 -c "print('%.2f' % ($LEAF_V / $A_ALL))")\"" dom.html && ok || bad "html overcommit figure"
	# the base's row of the sharing table: own data, visible, dead
	grep -qF "<td class=\"n\" title=\"$((4 * M)) bytes\">4.0 MiB</td><td class=\"n\" title=\"$((3 * M)) bytes\">3.0 MiB</td><td class=\"n\" title=\"$M bytes\">1.0 MiB</td>" dom.html && ok || bad "html sharing figures"
	grep -qF '<title>dead (shadowed in every overlay): 1.0 MiB</title>' dom.html && ok || bad "html sharing chart figure"
	grep -qF '<td style="padding-left:1.9em">└─&nbsp;<span class="p" title="store/ov3.qcow2">ov3.qcow2</span></td>' dom.html && ok || bad "html chain tree"
else
	bad "chromium is not installed (run tests/setup.sh)"
fi

# ---- trend: ov2 grows by 2 MiB of data, a new image appears ----
qemu-io -c 'write -P 0x77 4M 2M' store/ov2.qcow2 >/dev/null
qemu-img create -q -f qcow2 store/new.qcow2 1M
A_OV2B=$(alloc store/ov2.qcow2) A_NEW=$(alloc store/new.qcow2)
"$IMGAUDIT" scan --db db.sqlite --quiet store
eq "second scan exit status" "$?" "0"
"$IMGAUDIT" report --db db.sqlite --format=json --section=trend >r2.json
validate r2.json && ok || bad "r2.json does not validate"
eq "trend scans" "$(pj r2.json '(d["trend"]["from_scan"]["id"], d["trend"]["to_scan"]["id"])')" "(1, 2)"
eq "trend total" "$(pj r2.json 'd["trend"]["total"]["delta_bytes"]')" "$((A_OV2B - A_OV2 + A_NEW))"
eq "trend ov2" "$(pj r2.json '[(x["change"],x["delta_bytes"]) for x in d["trend"]["images"] if x["name"]=="store/ov2.qcow2"]')" "[('grown', $((A_OV2B - A_OV2)))]"
eq "trend new" "$(pj r2.json '[(x["change"],x["before_bytes"]) for x in d["trend"]["images"] if x["name"]=="store/new.qcow2"]')" "[('new', None)]"
eq "trend base family" "$(pj r2.json '[x["delta_bytes"] for x in d["trend"]["bases"] if x["name"]=="store/base.qcow2"]')" "[$((A_OV2B - A_OV2))]"
eq "trend directories" "$(pj r2.json '[(x["name"],x["change"],x["delta_bytes"]) for x in d["trend"]["directories"]]')" "[('store', 'grown', $((A_OV2B - A_OV2 + A_NEW))), ('store/sub', 'same', 0)]"
eq "top grower" "$(pj r2.json 'd["trend"]["top_growers"][0]["name"]')" "store/ov2.qcow2"
eq "history" "$(pj r2.json '[h["scan"] for h in d["trend"]["history"]]')" "[1, 2]"
"$IMGAUDIT" report --db db.sqlite --format=html --section=trend -o r2.html
if command -v chromium >/dev/null; then
	render r2.html dom2.html
	eq "html growth over time" "$(grep -o '<title>scan [0-9]: [^<]*</title>' dom2.html | tr '\n' ' ')" \
		"<title>scan 1: $(python3 -c "print('%.1f MiB' % ($A_ALL / $M))")</title> <title>scan 2: $(python3 -c "print('%.1f MiB' % ($(pj r2.json 'd["trend"]["total"]["after_bytes"]') / $M))")</title> "
	grep -qF "<td><span class=\"p\" title=\"store/ov2.qcow2\">ov2.qcow2</span></td><td class=\"n\" title=\"$((A_OV2B - A_OV2)) bytes\">" dom2.html && ok || bad "html top grower"
fi
"$IMGAUDIT" report --db db.sqlite --format=json --section=trend --scan 1 >r3.json
eq "--scan 1 has no earlier scan" "$(pj r3.json 'd["trend"]["from_scan"]')" "None"
"$IMGAUDIT" report --db db.sqlite --format=json --section=trend --since 2000-01-01 >r4.json
eq "--since DATE before every scan: the first one" "$(pj r4.json 'd["trend"]["from_scan"]["id"]')" "1"
eq "section selection" "$(pj r2.json 'sorted(k for k in d if k in ("summary","capacity","sharing","chains","orphans","findings","trend"))')" "['trend']"

# --since only measures from a complete scan before the reported one
cp db.sqlite dbc.sqlite
sqlite3 dbc.sqlite "UPDATE scans SET status = 'aborted' WHERE id = 1"
"$IMGAUDIT" report --db dbc.sqlite --section=trend --since 1 >/dev/null 2>err.txt
eq "--since an aborted scan exit status" "$?" "2"
grep -q 'scan 1 is aborted' err.txt && ok || bad "--since an aborted scan: message"
"$IMGAUDIT" report --db db.sqlite --section=trend --scan 1 --since 2 >/dev/null 2>err.txt
eq "--since a later scan exit status" "$?" "2"
"$IMGAUDIT" report --db db.sqlite --format=json --section=trend --scan 1 --since 2099-01-01 >r6.json 2>err.txt
eq "--since DATE never picks a scan after the reported one" "$?" "2"
"$IMGAUDIT" report --db db.sqlite --section=trend --since 2026-13-45 >/dev/null 2>err.txt
eq "--since an impossible date exit status" "$?" "2"
grep -q 'not a valid date' err.txt && ok || bad "--since an impossible date: message"
"$IMGAUDIT" report --db db.sqlite --format=json --section=trend --since 2099-01-01 >r6.json
eq "--since DATE after every scan: the scan before the reported one" "$(pj r6.json 'd["trend"]["from_scan"]["id"]')" "1"

# ---- contrib/sql: every query runs read-only against the real store ----
for q in "$SOURCE_DIR"/contrib/sql/*.sql; do
	sqlite3 -readonly -bail db.sqlite <"$q" >"sql.$(basename "$q").out" 2>sql.err
	eq "contrib/sql/$(basename "$q") runs" "$?:$(cat sql.err)" "0:"
done
eq "largest-overlays.sql" "$(sqlite3 -readonly db.sqlite <"$SOURCE_DIR/contrib/sql/largest-overlays.sql" | cut -d'|' -f1 | head -1)" "store/ov2.qcow2"
eq "bases-most-children.sql" "$(sqlite3 -readonly db.sqlite <"$SOURCE_DIR/contrib/sql/bases-most-children.sql" | cut -d'|' -f1,2 | head -1)" "store/base.qcow2|2"
eq "broken-chains.sql" "$(sqlite3 -readonly db.sqlite <"$SOURCE_DIR/contrib/sql/broken-chains.sql" | cut -d'|' -f1-4)" "store/sub/broken.qcow2|gone.qcow2|store/sub/gone.qcow2|missing"
# the orphans the report names, each with the mtime of the file the latest scan read
eq "orphans.sql" "$(sqlite3 -readonly db.sqlite <"$SOURCE_DIR/contrib/sql/orphans.sql" | grep '^store/' | grep -v evil | cut -d'|' -f1 | sort | tr '\n' ' ')" \
	"store/new.qcow2 store/ov2.qcow2 store/ov3.qcow2 store/sub/broken.qcow2 store/sub/packed.qcow2 "
eq "orphans.sql mtime of the file the latest scan read" "$(sqlite3 -readonly db.sqlite <"$SOURCE_DIR/contrib/sql/orphans.sql" | grep '^store/ov2.qcow2|' | cut -d'|' -f5)" \
	"$(date -u -d "@$(stat -c %Y store/ov2.qcow2)" '+%Y-%m-%d %H:%M:%S')"
# growth this week, on Monday 2026-12-07: the week began today, after the last scan
gtw() { sed "s/'now'/'$1'/" "$SOURCE_DIR/contrib/sql/growth-this-week.sql" | sqlite3 -readonly dbw.sqlite | grep '^store/ov2.qcow2|' | cut -d'|' -f4; }
cp db.sqlite dbw.sqlite
sqlite3 dbw.sqlite "UPDATE scans SET started_at = '2026-11-29T12:00:00Z' WHERE id = 1; UPDATE scans SET started_at = '2026-12-06T12:00:00Z' WHERE id = 2"
eq "growth-this-week.sql on a Monday" "$(gtw '2026-12-07 12:00:00')" "0"
eq "growth-this-week.sql on the Sunday before" "$(gtw '2026-12-06 18:00:00')" "$((A_OV2B - A_OV2))"

# ---- data kept in other files: a flat VMDK, a qcow2 external data file, a split VMDK ----
# Their extents and data files are the images' bytes on disk; an extent that
# is an image by itself (the split VMDK's) is used, so never an orphan.
mkdir -p xstore/x
(
	cd xstore/x || exit 1
	qemu-img create -q -f vmdk -o subformat=monolithicFlat flat.vmdk 8M
	qemu-io -c 'write -P 1 0 2M' flat.vmdk >/dev/null
	qemu-img create -q -f qcow2 -o data_file=ext.data ext.qcow2 8M
	qemu-io -c 'write -P 2 0 3M' ext.qcow2 >/dev/null
	qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse split.vmdk 8M
	qemu-io -c 'write -P 3 0 1M' split.vmdk >/dev/null
)
"$IMGAUDIT" scan --db x.sqlite --quiet xstore
"$IMGAUDIT" report --db x.sqlite --format=json >x1.json
validate x1.json && ok || bad "x1.json does not validate"
xi() { pj "$1" "[i['$3'] for i in d['capacity']['images'] if i['name']=='xstore/x/$2'][0]"; }
eq "flat VMDK on disk: descriptor + extent" "$(xi x1.json flat.vmdk allocated_bytes)" "$(($(alloc xstore/x/flat.vmdk) + $(alloc xstore/x/flat-flat.vmdk)))"
eq "flat VMDK file: descriptor + extent" "$(xi x1.json flat.vmdk file_bytes)" "$((512 + 8 * M))"
eq "qcow2 data file on disk" "$(xi x1.json ext.qcow2 allocated_bytes)" "$(($(alloc xstore/x/ext.qcow2) + $(alloc xstore/x/ext.data)))"
eq "store on disk counts every file once" "$(pj x1.json 'd["capacity"]["totals"]["allocated_bytes"]')" "$(( ($(stat -c %b xstore/x/* | paste -sd+)) * 512 ))"
eq "an extent that is an image is not an orphan" "$(pj x1.json 'sorted(i["name"] for i in d["orphans"]["images"])')" \
	"['xstore/x/ext.qcow2', 'xstore/x/flat.vmdk', 'xstore/x/split.vmdk']"
eq "an extent that is an image is not a leaf" "$(pj x1.json 'd["capacity"]["overcommit"]["leaf_virtual_bytes"]')" "$((24 * M))"
eq "orphans.sql agrees" "$(sqlite3 -readonly x.sqlite <"$SOURCE_DIR/contrib/sql/orphans.sql" | cut -d'|' -f1 | sort | tr '\n' ' ')" \
	"xstore/x/ext.qcow2 xstore/x/flat.vmdk xstore/x/split.vmdk "
# the flat extent grows: the trend sees it
A_FLAT=$(alloc xstore/x/flat-flat.vmdk)
qemu-io -c 'write -P 4 4M 2M' xstore/x/flat.vmdk >/dev/null
"$IMGAUDIT" scan --db x.sqlite --quiet xstore
"$IMGAUDIT" report --db x.sqlite --format=json --section=trend >x2.json
eq "history counts data files as the capacity does" "$(pj x2.json '[h["allocated_bytes"] for h in d["trend"]["history"]]')" \
	"[$(pj x1.json 'd["capacity"]["totals"]["allocated_bytes"]'), $(pj x2.json 'd["trend"]["total"]["after_bytes"]')]"
eq "trend of a flat VMDK follows its extent" "$(pj x2.json '[x["delta_bytes"] for x in d["trend"]["images"] if x["name"]=="xstore/x/flat.vmdk"]')" "[$(($(alloc xstore/x/flat-flat.vmdk) - A_FLAT))]"

# ---- a file named like an archive member never prints like one ----
# (two series with one name and label set would make the textfile invalid)
mkdir -p ystore/t
(cd ystore/t && qemu-img create -q -f qcow2 m.qcow2 1M && tar cf ../a.tar m.qcow2)
rm -r ystore/t
qemu-img create -q -f qcow2 'ystore/a.tar!m.qcow2' 2M
"$IMGAUDIT" scan --db y.sqlite --quiet ystore
"$IMGAUDIT" report --db y.sqlite --format=json --section=capacity >y.json
eq "member and look-alike file" "$(pj y.json 'sorted((i["name"], i["virtual_bytes"]) for i in d["capacity"]["images"])')" \
	"[('ystore/a.tar!m.qcow2', $M), ('ystore/a.tar\\\\x21m.qcow2', $((2 * M)))]"
"$IMGAUDIT" report --db y.sqlite --format=prometheus --prometheus-per-image >y.prom
eq "no duplicate series" "$(grep -v '^#' y.prom | sed 's/ [^ ]*$//' | sort | uniq -d)" ""
promcheck y.prom

# ---- a backing file outside the scan roots (--allow-root) is not a broken link ----
mkdir -p zstore/bases zstore/vms
qemu-img create -q -f qcow2 zstore/bases/b.qcow2 4M
qemu-img create -q -f qcow2 -b ../bases/b.qcow2 -F qcow2 zstore/vms/v.qcow2
"$IMGAUDIT" scan --db z.sqlite --quiet --allow-root zstore/bases zstore/vms
"$IMGAUDIT" report --db z.sqlite --format=json >z.json
validate z.json && ok || bad "z.json does not validate"
eq "chain link to a base outside the scan" "$(pj z.json '[(t["name"], t["link"]) for t in d["chains"]["trees"]]')" "[('zstore/vms/v.qcow2', 'ok (outside the scan)')]"
eq "an overlay of a base outside the scan" "$(pj z.json '[(o["name"], o["kind"]) for o in d["orphans"]["images"]]')" "[('zstore/vms/v.qcow2', 'overlay')]"

# ---- human tables stay aligned whatever the script of a name ----
mkdir -p wstore
qemu-img create -q -f qcow2 'wstore/日本語ディスク.qcow2' 1M
qemu-img create -q -f qcow2 $'wstore/cafe\xcc\x81.qcow2' 1M
qemu-img create -q -f qcow2 wstore/plain.qcow2 1M
# emoji outside the old hand-made ranges: U+1F680, U+1F6F8, U+1FA90 (two columns each)
qemu-img create -q -f qcow2 $'wstore/rocket\xf0\x9f\x9a\x80\xf0\x9f\x9b\xb8\xf0\x9f\xaa\x90.qcow2' 1M
"$IMGAUDIT" scan --db w.sqlite --quiet wstore
# under the C locale too: widths do not depend on the user's locale
LC_ALL=C "$IMGAUDIT" report --db w.sqlite --section=orphans >w.txt
python3 - w.txt <<'PY' && ok || bad "human table columns misaligned by wide or combining characters"
import sys, unicodedata
def cols(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
rows = [l for l in open(sys.argv[1], encoding="utf-8") if "standalone" in l]
assert len(rows) == 4, rows
starts = {cols(l[:l.index("standalone")]) for l in rows}
assert len(starts) == 1, starts
PY

# ---- contrib: the systemd service's script and the cron line, run for real ----
# (paths moved under $WORK, imgaudit from this build)
BIN=$(dirname "$(command -v "$IMGAUDIT")")
python3 - "$SOURCE_DIR/contrib/systemd/imgaudit.service" >service.sh <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
line = [l for l in text.split("\n") if l.startswith("ExecStart=")][0]
m = re.fullmatch(r"ExecStart=/bin/sh -c '([^']*)'", line)
assert m and "${" not in m.group(1), line  # systemd would expand ${...} itself
print(m.group(1))
PY
eq "service ExecStart parsed" "$?" "0"
grep -q '^ReadWritePaths=-/var/lib/prometheus/node-exporter$' "$SOURCE_DIR/contrib/systemd/imgaudit.service" && ok || bad "service: a missing textfile directory must not fail the unit"
mkdir -p svc/state svc/textfile
svc() { env PATH="$BIN:$PATH" IMGAUDIT_DB="$WORK/svc/state/store.db" IMGAUDIT_ROOTS=store IMGAUDIT_REPORT_DIR="$1" IMGAUDIT_TEXTFILE_DIR="$2" sh -c "$(cat service.sh)" >svc.out 2>&1; }
svc "$WORK/svc/state" "$WORK/svc/textfile"
eq "service script exit status" "$?" "0"
validate svc/state/report.json && ok || bad "service: report.json"
grep -q '^imgaudit_orphans ' svc/textfile/imgaudit.prom && ok || bad "service: metrics"
promcheck svc/textfile/imgaudit.prom
grep -q '<svg id="chart-capacity"' svc/state/report.html && ok || bad "service: report.html"
rm svc/textfile/imgaudit.prom
svc "$WORK/svc/state" "$WORK/svc/no-textfile-dir"
eq "service script without node_exporter" "$?" "0"
svc "$WORK/svc/no-such-dir" "$WORK/svc/textfile"
eq "service script: a report that cannot be written fails the unit" "$?" "4"
cron_path=$(sed -n 's/^PATH=//p' "$SOURCE_DIR/contrib/imgaudit.cron")
case ":$cron_path:" in *:/usr/local/bin:*) ok ;; *) bad "cron PATH lacks /usr/local/bin (the default install prefix)" ;; esac
grep -E '^[0-9*]' "$SOURCE_DIR/contrib/imgaudit.cron" | cut -d' ' -f7- |
	sed -e "s|/var/lib/imgaudit|$WORK/cron/state|g" -e "s|/var/lib/libvirt/images|store|g" \
		-e "s|/var/lib/prometheus/node-exporter|$WORK/cron/textfile|g" >cron.sh
mkdir -p cron/textfile
env PATH="$BIN:$cron_path" sh cron.sh >cron.out 2>&1
eq "cron line exit status" "$?" "0"
validate cron/state/report.json && ok || bad "cron: report.json"
grep -q '^imgaudit_orphans ' cron/textfile/imgaudit.prom && ok || bad "cron: metrics"
promcheck cron/textfile/imgaudit.prom

# ---- errors: usage, nothing on stdout, -o untouched ----
echo keep >out.txt
"$IMGAUDIT" report --db db.sqlite --scan 99 -o out.txt >stdout.txt 2>err.txt
eq "unknown scan exit status" "$?" "2"
eq "unknown scan: -o untouched" "$(cat out.txt)" "keep"
eq "unknown scan: stdout empty" "$(wc -c <stdout.txt)" "0"
eq "no temporary files left" "$(ls | grep -c '\.tmp\.')" "0"
"$IMGAUDIT" report --db db.sqlite --section=nope >/dev/null 2>&1
eq "unknown section exit status" "$?" "2"
"$IMGAUDIT" report --db nonexistent.sqlite >stdout.txt 2>err.txt
eq "missing database exit status" "$?" "1"
[ -e nonexistent.sqlite ] && bad "report created a database" || ok
"$IMGAUDIT" report --db db.sqlite --format=json -o out.txt
eq "-o replaced the file" "$(pj out.txt 'd["scan"]["id"]')" "2"

# ---- a report never waits for a running scan ----
touch store/ov1.qcow2
IMGAUDIT_NO_INCREMENTAL=1 IMGAUDIT_TEST_WRITER_DELAY_MS=200 "$IMGAUDIT" scan --db db.sqlite --quiet store &
BG=$!
for _ in $(seq 50); do
	[ "$(sqlite3 db.sqlite "SELECT count(*) FROM scans WHERE status = 'running'" 2>/dev/null)" = 1 ] && break
	sleep 0.1
done
# SQLite waits for a lock by sleeping (its busy handler): no sleep, no wait
# (LeakSanitizer cannot run under ptrace: the sanitizer build checks leaks elsewhere)
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" timeout 20 strace -f -qq -e trace=nanosleep,clock_nanosleep -o sleeps.txt \
	"$IMGAUDIT" report --db db.sqlite --format=json --section=summary >r5.json
eq "report during a scan exit status" "$?" "0"
[ -e sleeps.txt ] && [ ! -s sleeps.txt ] && ok || bad "a report during a scan waited: $(head -3 sleeps.txt)"
eq "report during a scan shows the last complete scan" "$(pj r5.json 'd["scan"]["id"]')" "2"
{ kill -9 $BG && wait $BG; } 2>/dev/null
BG=

# ---- ... nor does a scan wait for a report still reading an older snapshot ----
python3 -c '
import sqlite3, sys, time
c = sqlite3.connect("file:db.sqlite?mode=ro", uri=True, isolation_level=None)
c.execute("BEGIN"); c.execute("SELECT count(*) FROM map").fetchall()
print("reading", flush=True); time.sleep(12)
' >reader.out &
BG=$!
for _ in $(seq 50); do grep -q reading reader.out && break; sleep 0.1; done
touch store/ov1.qcow2
rm -f sleeps.txt
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" timeout 20 strace -f -qq -e trace=nanosleep,clock_nanosleep -o sleeps.txt \
	"$IMGAUDIT" scan --db db.sqlite --quiet store
eq "scan during a long read exit status" "$?" "0"
[ -e sleeps.txt ] && [ ! -s sleeps.txt ] && ok || bad "a scan waited for a reader: $(head -3 sleeps.txt)"
{ kill -9 $BG && wait $BG; } 2>/dev/null
BG=

# ---- a reader who may not write in the database's directory ----
# (people querying the database root's cron writes): SQLite opens a WAL
# database read-only only while its -wal and -shm files exist, and the scan
# leaves them in place; when it deleted them, such a reader got "attempt to
# write a readonly database".
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	mkdir ro
	"$IMGAUDIT" scan --db ro/db.sqlite --quiet store
	cp "$IMGAUDIT" ro/imgaudit # the build tree may be out of that user's reach
	chmod 755 "$WORK" ro ro/imgaudit
	nobody() { env HOME=/ setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	got=$(nobody sqlite3 ro/db.sqlite "SELECT count(*) FROM v_images" 2>&1)
	nobody ro/imgaudit report --db ro/db.sqlite --format=json --section=summary >ro.json 2>ro.err
	eq "a read-only user's report exit status" "$?" "0"
	[ -s ro.json ] && python3 -c 'import json, sys; json.load(open(sys.argv[1]))' ro.json && ok || bad "a read-only user's report: $(head -c 300 ro.err)"
	# (root's sqlite3 last, since its close checkpoints and deletes the WAL)
	eq "a read-only user's query" "$got" "$(sqlite3 ro/db.sqlite "SELECT count(*) FROM v_images")"
fi

# -o naming a FIFO (or a device: -o /dev/null) writes into it, never renames over it
mkfifo out.fifo
cat out.fifo >fifo.txt &
catpid=$!
"$IMGAUDIT" report --db db.sqlite --section summary -o out.fifo
eq "report -o FIFO" "$?" "0"
wait $catpid
[ -p out.fifo ] && ok || bad "report -o replaced a FIFO with a file"
grep -q "SUMMARY" fifo.txt && ok || bad "report -o FIFO: nothing written into it"

lib_summary test_report_store
