#!/bin/bash
# imgaudit report --format=prometheus as node_exporter's textfile collector
# reads it: every file emitted passes `promtool check metrics` (format and
# naming lint), the default file has the same number of series for a store
# of 5 images and one of 50 (nothing per image unless --prometheus-per-image,
# which adds a documented number per image), store byte totals are there
# whatever --section says, the latest scan's start, finish, duration and
# success are exact, and no label makes a new series every night.
. "$(dirname "$0")/lib.sh"
lib_workdir metrics
need qemu-img qemu-io sqlite3 python3 promtool
series() { grep -vc '^#' "$1"; }
# promtool FILE: the text format and Prometheus' naming rules
check() {
	if promtool check metrics <"$1" >"$1.lint" 2>&1; then ok; else bad "promtool check metrics $1: $(head -5 "$1.lint")"; fi
}
val() { grep -E "^$2( |\{)" "$1" | sed 's/.* //'; }

# store N: a base in bases/, N-2 overlays of it in vms/ (each writes 1 MiB),
# one overlay whose base is gone; two roots
store() {
	local d=store$1 n=$1
	mkdir -p $d/bases $d/vms
	qemu-img create -q -f qcow2 $d/bases/base.qcow2 16M
	qemu-io -c 'write -P 0xaa 0 4M' $d/bases/base.qcow2 >/dev/null
	for i in $(seq 1 $((n - 2))); do
		qemu-img create -q -f qcow2 -b ../bases/base.qcow2 -F qcow2 $d/vms/vm$i.qcow2
		qemu-io -c "write -P 0x11 $((i % 8))M 1M" $d/vms/vm$i.qcow2 >/dev/null
	done
	qemu-img create -q -u -f qcow2 -b gone.qcow2 -F qcow2 $d/vms/broken.qcow2 16M
	"$IMGAUDIT" scan --db $d.db --quiet $d/bases $d/vms
}
store 5
eq "scan of 5 exit status" "$?" "0"
store 50
eq "scan of 50 exit status" "$?" "0"

for n in 5 50; do
	"$IMGAUDIT" report --db store$n.db --format=prometheus -o m$n.prom
	eq "report $n exit status" "$?" "0"
	"$IMGAUDIT" report --db store$n.db --format=prometheus --prometheus-per-image -o p$n.prom
	eq "report $n per image exit status" "$?" "0"
	check m$n.prom
	check p$n.prom
done
echo "series: 5 images $(series m5.prom), 50 images $(series m50.prom); per image: $(series p5.prom), $(series p50.prom)"
eq "series bounded as images grow" "$(series m50.prom)" "$(series m5.prom)"
# per image: 10 capacity figures + freed if deleted; directories and bases do not change here
eq "--prometheus-per-image: 12 series per image" "$(($(series p50.prom) - $(series p5.prom)))" "$((12 * 45))"
eq "no per-image series by default" "$(grep -cE '\{(image|directory|base)=' m50.prom)" "0"
rel <p50.prom | grep -qE '^imgaudit_image_allocated_bytes\{image="store50/vms/vm7.qcow2"\} [0-9]+$' && ok || bad "per-image series with the flag"

# no label whose value changes every night, no host (that is `instance`)
grep -E 'scan_id=|host=' m5.prom && bad "a scan_id or host label" || ok
eq "one image count metric, by format and status" "$(grep '^imgaudit_images{' m5.prom | sort | tr '\n' ' ')" \
	'imgaudit_images{format="qcow2",status="missing"} 1 imgaudit_images{format="qcow2",status="ok"} 4 '
grep -q '^imgaudit_images_by_status' m5.prom && bad "imgaudit_images_by_status still there" || ok

# store totals, per root and per format/status, whatever the sections
A5=$(sqlite3 store5.db "SELECT sum(allocated_bytes) FROM v_images")
for s in summary chains orphans findings trend sharing capacity; do
	"$IMGAUDIT" report --db store5.db --format=prometheus --section=$s -o s-$s.prom
	check s-$s.prom
	eq "store allocated bytes with --section=$s" "$(val s-$s.prom imgaudit_store_allocated_bytes)" "$A5"
	eq "last scan success with --section=$s" "$(val s-$s.prom imgaudit_last_scan_success)" "1"
done
eq "per root" "$(rel <m5.prom | grep '^imgaudit_root_images{' | tr '\n' ' ')" 'imgaudit_root_images{root="store5/bases"} 1 imgaudit_root_images{root="store5/vms"} 4 '
eq "per root allocated sums to the store" \
	"$(($(grep '^imgaudit_root_allocated_bytes{' m5.prom | sed 's/.* //' | paste -sd+)))" "$A5"
eq "per format and status allocated sums to the store" \
	"$(($(grep '^imgaudit_images_allocated_bytes{' m5.prom | sed 's/.* //' | paste -sd+)))" "$A5"
eq "findings by category" "$(grep '^imgaudit_findings{' m5.prom | tr '\n' ' ')" \
	'imgaudit_findings{category="image-missing"} 1 imgaudit_findings{category="link-missing"} 1 '
eq "broken links" "$(val m5.prom imgaudit_broken_links)" "1"

# the latest scan that ended: exact timestamps; an aborted one is success 0
ts() { date -u -d "$(sqlite3 store5.db "SELECT $1 FROM scans WHERE id = $2")" +%s; }
eq "last scan start" "$(val m5.prom imgaudit_last_scan_start_timestamp_seconds)" "$(ts started_at 1)"
eq "last scan finish" "$(val m5.prom imgaudit_last_scan_finish_timestamp_seconds)" "$(ts finished_at 1)"
eq "last scan duration" "$(val m5.prom imgaudit_last_scan_duration_seconds)" "$(($(ts finished_at 1) - $(ts started_at 1)))"
qemu-io -c 'write -P 0x99 8M 2M' store5/vms/vm1.qcow2 >/dev/null
"$IMGAUDIT" scan --db store5.db --quiet store5/bases store5/vms
"$IMGAUDIT" report --db store5.db --format=prometheus -o t5.prom
check t5.prom
eq "series with a trend (growth adds no per-image series)" "$(($(series t5.prom) - $(series m5.prom)))" "2"
"$IMGAUDIT" report --db store5.db --format=prometheus --prometheus-per-image -o tp5.prom
check tp5.prom
sqlite3 store5.db "UPDATE scans SET status = 'aborted', exit_status = 3, started_at = '2026-01-02T03:04:05Z', finished_at = '2026-01-02T03:05:00Z' WHERE id = 2"
"$IMGAUDIT" report --db store5.db --format=prometheus -o a5.prom
eq "report after an aborted scan exit status" "$?" "0"
check a5.prom
eq "aborted: last scan success" "$(val a5.prom imgaudit_last_scan_success)" "0"
eq "aborted: last scan start" "$(val a5.prom imgaudit_last_scan_start_timestamp_seconds)" "$(date -u -d 2026-01-02T03:04:05Z +%s)"
eq "aborted: last scan duration" "$(val a5.prom imgaudit_last_scan_duration_seconds)" "55"
eq "aborted: the figures are the last complete scan's" "$(val a5.prom imgaudit_report_scan_id)" "1"

# every metric is documented in contrib/node-exporter.md
python3 - "$SOURCE_DIR/contrib/node-exporter.md" p50.prom tp5.prom <<'PY' && ok || bad "metrics missing from node-exporter.md"
import itertools, re, sys
doc = set()
for m in re.findall(r"`(imgaudit_[a-z_{},]+)`", open(sys.argv[1]).read()):
    parts = re.split(r"\{([^}]*)\}", m)
    for combo in itertools.product(*[[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]):
        doc.add("".join(combo))
emitted = {l.split()[2] for f in sys.argv[2:] for l in open(f) if l.startswith("# TYPE ")}
assert emitted <= doc, sorted(emitted - doc)
PY

lib_summary test_report_metrics
