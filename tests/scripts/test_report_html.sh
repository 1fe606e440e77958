#!/bin/bash
# The HTML report as a team reads it in the morning, rendered in headless
# Chromium at 1280 and 1920 px: no element wider than the viewport outside
# a scroll container, every chart label inside its SVG, legend swatches in
# the colours of the marks (html_layout.js, injected into a copy of the page
# since the page itself allows no script), plus navigation and anchors,
# paths relative to the scan root, dates on the trend axis, sharing bars
# labelled with what they show, and a trend listing changes only.
# Screenshots are kept in the build directory (test-artifacts/) to look at.
. "$(dirname "$0")/lib.sh"
lib_workdir html
ART=${ARTIFACTS:-$(cd "$(dirname "$(command -v "$IMGAUDIT")")" && pwd)/test-artifacts}
need qemu-img qemu-io sqlite3 python3 chromium
mkdir -p "$ART"
chrome() {
	timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$(mktemp -d "$WORK/chrome.XXXXXX")" "$@" 2>>chrome.err
}

# ---- a store with the long names of a real one ----
R=srv/virtualisation/production-cluster-eu-west/images
V=$R/vms/team-alpha/databases-and-other-long-directory-names
mkdir -p $R/bases $V
qemu-img create -q -f qcow2 $R/bases/debian-12-genericcloud-amd64-20261201.qcow2 64M
qemu-io -c 'write -P 1 0 8M' $R/bases/debian-12-genericcloud-amd64-20261201.qcow2 >/dev/null
for i in $(seq 1 12); do
	qemu-img create -q -f qcow2 -b ../../../bases/debian-12-genericcloud-amd64-20261201.qcow2 -F qcow2 \
		$V/customer-database-replica-$i-with-a-rather-long-name.qcow2
	qemu-io -c "write -P 2 $((i % 6))M 1M" $V/customer-database-replica-$i-with-a-rather-long-name.qcow2 >/dev/null
done
# a base whose one overlay overwrote half of it: 2 MiB visible, 2 MiB dead
qemu-img create -q -f qcow2 $R/bases/windows-server-2022-datacenter-core-golden-image.qcow2 32M
qemu-io -c 'write -P 3 0 4M' $R/bases/windows-server-2022-datacenter-core-golden-image.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../bases/windows-server-2022-datacenter-core-golden-image.qcow2 -F qcow2 $R/vms/w1.qcow2
qemu-io -c 'write -P 4 0 2M' $R/vms/w1.qcow2 >/dev/null
# wide characters in a chart label
mkdir -p "$R/vms/日本語のディスク置き場-🚀"
qemu-img create -q -f qcow2 "$R/vms/日本語のディスク置き場-🚀/仮想マシン.qcow2" 8M
qemu-io -c 'write -P 6 0 3M' "$R/vms/日本語のディスク置き場-🚀/仮想マシン.qcow2" >/dev/null
qemu-img create -q -u -f qcow2 -b gone.qcow2 -F qcow2 $R/vms/broken-overlay-whose-base-was-deleted-last-week.qcow2 16M
for n in 1 2 3; do
	[ $n = 3 ] && qemu-io -c 'write -P 5 20M 4M' $V/customer-database-replica-3-with-a-rather-long-name.qcow2 >/dev/null
	"$IMGAUDIT" scan --db db.sqlite --quiet $R
done
# three nightly scans on three days
sqlite3 db.sqlite "UPDATE scans SET started_at = '2026-11-2' || id || 'T02:30:00Z', finished_at = '2026-11-2' || id || 'T02:41:00Z'"
"$IMGAUDIT" report --db db.sqlite --format=html -o r.html
eq "html exit status" "$?" "0"

# ---- the page, statically ----
python3 - r.html "$WORK/$R" <<'PY' && ok || bad "html structure" # the root as stored: canonical
import html, re, sys
page, root = open(sys.argv[1]).read(), sys.argv[2]
secs = ["summary", "capacity", "sharing", "chains", "orphans", "findings", "trend"]
nav = re.search(r'<nav class="toc"[^>]*>(.*?)</nav>', page).group(1)
assert re.findall(r'href="#s-([a-z]+)"', nav) == secs, nav
for s in secs:
    assert f'<section id="s-{s}">' in page and f'<a href="#s-{s}">' in page, s
# every table in a scroll container
assert page.count('<table class="t"') == page.count('<div class="tw"><table class="t"') > 10
# paths relative to the root: no cell shows it, every shortened name keeps it in its title
cells = re.findall(r"<td[^>]*>(?:└─&nbsp;)?(.*?)</td>", page)
shown = [re.sub(r"<[^>]+>", "", c) for c in cells]
assert not [c for c in shown if c.startswith(root + "/")], [c for c in shown if c.startswith(root)][:3]
assert f'<span class="p" title="{root}/bases/debian-12-genericcloud-amd64-20261201.qcow2">bases/debian-12-genericcloud-amd64-20261201.qcow2</span>' in page
# the sharing chart says what each bar is made of
sh = re.search(r'<svg id="chart-sharing".*?</svg>', page, re.S).group(0)
vals = [html.unescape(re.sub(r"<[^>]+>", "", v)) for v in re.findall(r'<text x="[0-9.]+" y="[0-9.]+">(.*?)</text>', sh)]
assert "8.0 MiB visible (12 overlays)" in vals and "2.0 MiB visible, 2.0 MiB dead (1 overlay)" in vals, vals
assert not [v for v in vals if " / " in v], vals
# the trend axis: dates, not scan ids
tr = re.search(r'<svg id="chart-trend".*?</svg>', page, re.S).group(0)
assert re.findall(r'<text class="date"[^>]*>([^<]*)</text>', tr) == ["2026-11-21", "2026-11-22", "2026-11-23"], tr
# the trend lists changes only: the grown overlay and its base family, the total
rows = re.search(r'<table class="t" id="t-trend">.*?</table>', page, re.S).group(0)
changes = re.findall(r'<tr><td>([a-z]+)</td><td>(?:<span[^>]*>)?([^<]*)(?:</span>)?</td><td>([a-z]+)</td>', rows)
assert [c for c in changes if c[2] == "same"] == [("total", "all", "same")] or \
    [c for c in changes if c[2] == "same"] == [], changes
assert ("image", "vms/team-alpha/databases-and-other-long-directory-names/customer-database-replica-3-with-a-rather-long-name.qcow2", "grown") in changes, changes
assert len([c for c in changes if c[0] == "image"]) == 1, changes
assert re.search(r"[0-9]+ unchanged rows not listed", page)
PY

# ---- rendered: layout checks and screenshots at two widths ----
python3 - r.html "$SOURCE_DIR/tests/scripts/html_layout.js" check.html <<'PY'
import re, sys
page = open(sys.argv[1]).read()
page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
page = page.replace("</body>", "<script>" + open(sys.argv[2]).read() + "</script></body>")
open(sys.argv[3], "w").write(page)
PY
for w in 1280 1920; do
	chrome --window-size=$w,2000 --dump-dom "file://$WORK/check.html" >dom$w.html
	eq "chromium --dump-dom at $w px" "$?" "0"
	python3 - dom$w.html $w <<'PY' && ok || bad "layout at $w px"
import html, json, re, sys
m = re.search(r'<pre id="layout-check">(.*?)</pre>', open(sys.argv[1]).read(), re.S)
assert m, "no verdict in the DOM"
v = json.loads(html.unescape(m.group(1)))
print("  %s px: viewport %d, %d charts, %d labels checked, %d problems" % (sys.argv[2], v["width"], v["svgs"], v["texts"], len(v["bad"])))
for b in v["bad"][:20]:
    print("   ", b)
assert v["svgs"] == 3 and v["texts"] > 15 and v["width"] > int(sys.argv[2]) - 40 and not v["bad"]
PY
	rm -f "$ART/report-$w.png"
	chrome --window-size=$w,2000 --screenshot="$ART/report-$w.png" "file://$WORK/r.html" >/dev/null
	[ -s "$ART/report-$w.png" ] && ok || bad "screenshot at $w px"
done
# a narrow window: the wide tables scroll inside their sections, the page does not
chrome --window-size=800,2000 --dump-dom "file://$WORK/check.html" >dom800.html
python3 - dom800.html <<'PY' && ok || bad "layout at 800 px"
import html, json, re, sys
v = json.loads(html.unescape(re.search(r'<pre id="layout-check">(.*?)</pre>', open(sys.argv[1]).read(), re.S).group(1)))
assert not [b for b in v["bad"] if "label outside" in b or "sideways" in b or "swatch" in b], v["bad"]
PY
echo "screenshots: $ART/report-1280.png $ART/report-1920.png"

lib_summary test_report_html
