#!/bin/bash
# The fleet database, against a real PostgreSQL server: a cluster made with
# initdb in a temporary directory (as an unprivileged user when run as root),
# listening on a Unix socket in that directory only.  Three hosts' stores
# (built here with qemu-img) are pushed by the push role of
# contrib/fleet/roles.sql; every view of each host equals the host's SQLite
# view, and the report (every format) equals the host's local report; a
# push killed with SIGKILL at several points, and a server stopped mid-push,
# leave nothing partial; a scan pushed twice is stored once; two hosts push
# at once without waiting for each other; the read-only role reads and
# cannot write; unreachable server, bad credentials, a full disk on the
# server and a newer server schema each have their exit status, and no
# password reaches a message; a central database of schema 1 holding every
# host's history, migrated to schema 2, holds the same runs and gives the
# same views and report; packed runs of a wrong shape are a clear error.
. "$(dirname "$0")/lib.sh"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "FAIL: PostgreSQL server binaries not found (tests/setup.sh installs postgresql)"; exit 1; }
lib_workdir fleet
chmod 711 "$WORK"
PGD=$WORK/pg
BG=
BG2=
as_pg() {
	if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; else "$@"; fi
}
pg_start() {
	as_pg "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w -s \
		-o "-c listen_addresses='' -c unix_socket_directories=$PGD -c fsync=off -c max_connections=40" start
}
pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$PGD/data" -w -s -m "${1:-fast}" stop; }
lib_on_exit() {
	mountpoint -q "$WORK/tiny" 2>/dev/null && umount -l "$WORK/tiny"
	[ -n "$BG" ] && kill -9 "$BG" 2>/dev/null
	[ -n "$BG2" ] && kill -9 "$BG2" 2>/dev/null
	[ -f "$PGD/data/postmaster.pid" ] && pg_stop immediate >/dev/null 2>&1
}

# ---- the cluster: scram passwords for everyone, one socket in $PGD ----
mkdir -p "$PGD" && echo adminpw >"$PGD/pw"
[ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$PGD"
as_pg "$PGBIN/initdb" -D "$PGD/data" -U admin --pwfile="$PGD/pw" -A scram-sha-256 \
	--locale=C.UTF-8 --encoding=UTF8 >/dev/null || { echo "FAIL: initdb"; exit 1; }
pg_start || { echo "FAIL: server start"; cat "$PGD/log"; exit 1; }
export PGPASSFILE=$WORK/pgpass
printf '%s\n' "$PGD:5432:*:admin:adminpw" "$PGD:5432:*:imgaudit_push:pushpw" \
	"$PGD:5432:*:imgaudit_read:readpw" >"$PGPASSFILE"
chmod 600 "$PGPASSFILE"
ADMIN="host=$PGD user=admin dbname=fleet"
PUSH="host=$PGD user=imgaudit_push dbname=fleet"
READ="host=$PGD user=imgaudit_read dbname=fleet"
adm() { psql "$ADMIN" -X -At -F'|' -v ON_ERROR_STOP=1 -c "$1"; }
psql "host=$PGD user=admin dbname=postgres" -X -q -c "CREATE DATABASE fleet" || exit 1

# ---- the schema: pg-migrate, then the documented roles ----
out=$("$IMGAUDIT" pg-migrate --to "$ADMIN" --check)
eq "pg-migrate --check on an empty database" "$?|$out" "0|central schema version 0 at user=admin dbname=fleet host=$PGD (this imgaudit: 2)"
"$IMGAUDIT" pg-migrate --to "$ADMIN" >/dev/null; eq "pg-migrate" "$?" "0"
eq "schema version" "$(adm 'SELECT max(version) FROM imgaudit_schema')" "2"
"$IMGAUDIT" pg-migrate --to "$ADMIN" >/dev/null; eq "pg-migrate again" "$?" "0"
eq "applied once" "$(adm 'SELECT count(*) FROM imgaudit_schema')" "2"
psql "$ADMIN" -X -q -v ON_ERROR_STOP=1 -f "$SOURCE_DIR/contrib/fleet/roles.sql" || bad "roles.sql"
adm "ALTER ROLE imgaudit_push PASSWORD 'pushpw'; ALTER ROLE imgaudit_read PASSWORD 'readpw'" >/dev/null

# ---- three hosts ----
# hA: a base, overlays, a broken chain, a name that is not UTF-8; two scans
mkdir -p hA/s/base hA/s/vm
qemu-img create -q -f qcow2 hA/s/base/debian.qcow2 8M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 3M 512k' hA/s/base/debian.qcow2 >/dev/null
for i in 1 2 3; do
	qemu-img create -q -f qcow2 -b ../base/debian.qcow2 -F qcow2 hA/s/vm/o$i.qcow2
	qemu-io -c "write -P $i $((i * 512))k 64k" hA/s/vm/o$i.qcow2 >/dev/null
done
qemu-img create -q -f qcow2 -b gone.qcow2 -F qcow2 hA/s/vm/broken.qcow2 8M 2>/dev/null
cp hA/s/vm/o1.qcow2 "hA/s/vm/caf$(printf '\xe9').qcow2"
"$IMGAUDIT" scan --db hA.db --quiet hA/s; eq "scan hA" "$?" "0"
qemu-io -c 'write -P 7 6M 1M' hA/s/vm/o2.qcow2 >/dev/null
touch -d '-5 sec' hA/s/vm/o2.qcow2
"$IMGAUDIT" scan --db hA.db --quiet hA/s; eq "scan hA again" "$?" "0"
# hB: the same base (a copy) and its own overlays, a raw image
mkdir -p hB/s/base hB/s/vm
cp hA/s/base/debian.qcow2 hB/s/base/debian.qcow2
for i in 1 2; do
	qemu-img create -q -f qcow2 -b ../base/debian.qcow2 -F qcow2 hB/s/vm/b$i.qcow2
	qemu-io -c "write -P 5 $((i * 256))k 128k" hB/s/vm/b$i.qcow2 >/dev/null
done
truncate -s 4M hB/s/vm/raw.img
printf 'data' | dd of=hB/s/vm/raw.img bs=1 seek=1048576 conv=notrunc 2>/dev/null
"$IMGAUDIT" scan --db hB.db --quiet hB/s; eq "scan hB" "$?" "0"
# hC: vmdk, vpc, a chain of three
mkdir -p hC/s
qemu-img create -q -f vmdk hC/s/disk.vmdk 4M
qemu-img create -q -f vpc hC/s/disk.vhd 4M
qemu-img create -q -f qcow2 hC/s/l0.qcow2 4M
qemu-io -c 'write -P 3 0 256k' hC/s/l0.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b l0.qcow2 -F qcow2 hC/s/l1.qcow2
qemu-io -c 'write -P 4 1M 64k' hC/s/l1.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b l1.qcow2 -F qcow2 hC/s/l2.qcow2
"$IMGAUDIT" scan --db hC.db --quiet hC/s; eq "scan hC" "$?" "0"

for h in hA hB hC; do
	"$IMGAUDIT" push --db $h.db --to "$PUSH" --host $h >push.out 2>push.err
	eq "push $h" "$?" "0"
done
grep -q "^store .* (host hC) -> user=imgaudit_push dbname=fleet host=$PGD: 1 scans pushed, 0 already there" push.out && ok || { bad "push summary"; cat push.out push.err; }
sid() { sqlite3 "$1" "SELECT store_id FROM store_identity"; }
eq "store identity stable" "$(sid hA.db)" "$(sqlite3 hA.db 'SELECT store_id FROM store_identity')"
eq "stores" "$(adm 'SELECT host FROM stores ORDER BY host' | tr '\n' ' ')" "hA hB hC "
eq "scans of hA" "$(adm "SELECT id FROM scans WHERE host = 'hA' ORDER BY id" | tr '\n' ' ')" "1 2 "

# ---- every view of each host equals its SQLite view ----
declare -A VIEWS=(
	[v_images]="path, format, virtual_size, file_size, allocated_bytes, backing, backing_path, chain_depth, status, error"
	[v_map]="path, start, length, depth, present, zero, data, compressed, \"offset\", file"
	[v_links]="path, backing, target_path, status, kind"
	[v_entries]="path, kind, reason, detail"
	[v_findings]="path, code, message"
	[v_space]="path, format, virtual_size, allocated_bytes, own_data_bytes, backing_data_bytes, zero_bytes, unallocated_bytes, compressed_bytes, unknown_bytes, mapped_bytes"
	[v_base_readers]="base, image, depth, data_bytes, zero_bytes"
)
# one sort key for both sides: every column, as text, bytes in order
view_pg() { psql "$READ" -X -At -F'|' -c "SELECT $2 FROM $1 WHERE host = '$3'" | LC_ALL=C sort; }
# (a name that is not UTF-8 is shown with \xNN in the central views, as in reports)
view_sq() {
	command sqlite3 "$3.db" "SELECT $2 FROM $1" |
		python3 -c 'import sys; sys.stdout.write(sys.stdin.buffer.read().decode("utf-8", "backslashreplace"))' |
		LC_ALL=C sort
}
for h in hA hB hC; do
	for v in "${!VIEWS[@]}"; do
		a=$(view_pg "$v" "${VIEWS[$v]}" "$h")
		b=$(view_sq "$v" "${VIEWS[$v]}" "$h")
		[ "$a" == "$b" ] && ok || { bad "$v of $h differs from its SQLite view"; diff <(echo "$a") <(echo "$b") | head -5; }
	done
done
eq "v_map rows of hA" "$(psql "$READ" -X -At -c "SELECT count(*) FROM v_map WHERE host = 'hA'")" "$(sqlite3 hA.db 'SELECT count(*) FROM v_map')"
eq "unknown kept unknown" "$(psql "$READ" -X -At -c "SELECT count(*) FROM v_map WHERE host = 'hA' AND zero IS NULL")" "$(sqlite3 hA.db 'SELECT count(*) FROM v_map WHERE zero IS NULL')"
# the name that is not UTF-8: \xNN in path, its exact bytes in path_raw
eq "raw name" "$(adm "SELECT path || ' ' || encode(path_raw, 'hex') FROM files WHERE path_raw IS NOT NULL LIMIT 1")" \
	"$WORK/hA/s/vm/caf\\xe9.qcow2 $(printf '%s/hA/s/vm/caf\xe9.qcow2' "$WORK" | od -An -tx1 | tr -d ' \n')"

# ---- fleet views ----
eq "fleet hosts" "$(adm "SELECT host, images, allocated_bytes FROM v_fleet_hosts ORDER BY host" | tr '\n' ' ')" \
	"$(for h in hA hB hC; do echo "$h|$(sqlite3 $h.db 'SELECT count(*), sum(allocated_bytes) FROM v_images')"; done | tr '\n' ' ')"
eq "a base on two hosts" "$(adm "SELECT format, virtual_size, hosts, host_list, copies FROM v_fleet_bases")" "qcow2|8388608|2|hA,hB|2"
eq "fingerprint is a hash of the runs" "$(adm "SELECT count(DISTINCT fingerprint) FROM layers WHERE kind = 'layer'") $(adm "SELECT length(min(fingerprint)) FROM layers")" \
	"$(adm "SELECT count(*) FROM (SELECT DISTINCT (SELECT string_agg(r.start || ':' || r.length || ':' || r.data || ':' || r.zero || ':' || r.present || ':' || coalesce(r.\"offset\", -1), ',' ORDER BY r.start) FROM layer_runs r WHERE r.store_id = l.store_id AND r.layer_id = l.id) FROM layers l WHERE kind = 'layer') x") 16"
eq "growth of hA" "$(adm "SELECT scan_id, images_growth, allocated_growth > 0 FROM v_fleet_growth WHERE host = 'hA' ORDER BY scan_id" | tr '\n' ' ')" "1|| 2|0|t "

# ---- the report: every format of each host equals the local report ----
nogen() { sed '/"generated_at"/d'; }
for h in hA hB hC; do
	for f in json human csv prometheus html; do
		"$IMGAUDIT" report --db "$READ" --host $h --format $f -o pg.$f 2>rep.err; rc=$?
		"$IMGAUDIT" report --db $h.db --format $f -o local.$f
		eq "report $f of $h: exit status" "$rc" "0"
		if [ $f = csv ]; then # -o DIR: a file per table
			diff -r pg.csv local.csv >/dev/null && [ -s local.csv/summary.csv ] && ok ||
				{ bad "report csv of $h differs from the local one"; diff -r pg.csv local.csv | head -5; cat rep.err; }
			rm -rf pg.csv local.csv
			continue
		fi
		cmp -s <(nogen <pg.$f) <(nogen <local.$f) && ok || { bad "report $f of $h differs from the local one"; diff <(nogen <pg.$f) <(nogen <local.$f) | head -5; cat rep.err; }
	done
done
# csv of the whole fleet: a directory per host, or one section on stdout
"$IMGAUDIT" report --db "$READ" --format csv -o fleetcsv
eq "fleet csv -o DIR" "$?" "0"
for h in hA hB hC; do
	"$IMGAUDIT" report --db $h.db --format csv -o local.csv
	diff -r fleetcsv/$h local.csv >/dev/null && ok || bad "fleet csv of $h differs from its local tables"
	rm -rf local.csv
done
"$IMGAUDIT" report --db "$READ" --format csv --section capacity >fleet-cap.csv
eq "fleet csv, one section to stdout" "$?" "0"
eq "fleet csv: one heading per host" "$(grep -c '^host,store_id' fleet-cap.csv)" "3"
# --scan: an earlier scan of one host
"$IMGAUDIT" report --db "$READ" --host hA --scan 1 --format json | nogen >pg1.json
"$IMGAUDIT" report --db hA.db --scan 1 --format json | nogen >local1.json
cmp -s pg1.json local1.json && ok || bad "report --scan 1 of hA"
# the whole fleet: one report per host, each the host's own
"$IMGAUDIT" report --db "postgresql://imgaudit_read@/fleet?host=$PGD" --format json >fleet.json
eq "fleet report" "$?" "0"
python3 - fleet.json <<'PY' && ok || bad "fleet JSON: hosts and reports"
import json, subprocess, sys, os
doc = json.load(open(sys.argv[1]))
hosts = [e["host"] for e in doc["fleet"]]
assert hosts == ["hA", "hB", "hC"], hosts
for e in doc["fleet"]:
    local = json.loads(subprocess.check_output([os.environ.get("IMGAUDIT", "imgaudit"), "report", "--db", e["host"] + ".db", "--format", "json"]))
    for d in (local, e["report"]):
        d.pop("generated_at", None)
    assert local == e["report"], e["host"]
PY
"$IMGAUDIT" report --db "$READ" >fleet.txt
eq "fleet human headings" "$(grep -c '^######## host h[ABC] (store ' fleet.txt)" "3"
"$IMGAUDIT" report --db "$READ" --format prometheus >fleet.prom
eq "prometheus: each family described once" "$(grep -c '^# TYPE imgaudit_images ' fleet.prom)" "1"
eq "prometheus: each host labelled" "$(grep -c '^imgaudit_scan_errors{fleet_host="h[ABC]"} ' fleet.prom)" "3"
"$IMGAUDIT" report --db "$READ" --host nosuch 2>err.txt; eq "unknown host" "$?" "1"
grep -q "no complete scan of host 'nosuch'" err.txt && ok || bad "unknown host message"

# ---- pushed twice: stored once ----
counts() { adm "SELECT (SELECT count(*) FROM scans), (SELECT count(*) FROM images), (SELECT count(*) FROM files), (SELECT count(*) FROM layers), (SELECT count(*) FROM layer_runs), (SELECT count(*) FROM pieces), (SELECT count(*) FROM links), (SELECT count(*) FROM findings)"; }
before=$(counts)
out=$("$IMGAUDIT" push --db hA.db --to "$PUSH" --host hA)
eq "push again" "$?" "0"
echo "$out" | grep -q ": 0 scans pushed, 2 already there; 0 rows" && ok || bad "push again pushed: $out"
eq "nothing stored twice" "$(counts)" "$before"
"$IMGAUDIT" push --db hC.db --to "$PUSH" --host hC2 --quiet; eq "push under a new host name" "$?" "0"
eq "the store renamed" "$(adm "SELECT host FROM v_latest_scan WHERE store_id = '$(sid hC.db)'")" "hC2"
"$IMGAUDIT" push --db hC.db --to "$PUSH" --host hC --quiet
eq "and back" "$(adm "SELECT host FROM v_latest_scan WHERE store_id = '$(sid hC.db)'")" "hC"
eq "nothing stored twice by renaming" "$(counts)" "$before"
# a new scan of hA: only it goes, and layers already central are not sent again
touch -d '-5 sec' hA/s/vm/o3.qcow2
"$IMGAUDIT" scan --db hA.db --quiet hA/s
layers_before=$(adm "SELECT count(*) FROM layers WHERE store_id = '$(sid hA.db)'")
out=$("$IMGAUDIT" push --db hA.db --to "$PUSH" --host hA)
echo "$out" | grep -q "pushed scan 3:" && ok || bad "third scan: $out"
eq "layers sent once" "$(adm "SELECT count(*) FROM layers WHERE store_id = '$(sid hA.db)'")" \
	"$(sqlite3 hA.db "SELECT count(DISTINCT layer_id) FROM (SELECT layer_id FROM pieces UNION SELECT layer_id FROM chain_layers) WHERE layer_id IS NOT NULL")"
[ "$(adm "SELECT count(*) FROM layers WHERE store_id = '$(sid hA.db)'")" -ge "$layers_before" ] && ok || bad "layers"

# ---- a large, slowed store for the crash tests ----
mkdir -p hD/s
python3 - hD/s/frag.raw <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, 64 << 20)
for i in range(0, 6000):
    os.pwrite(fd, b"x" * 4096, i * 8192)
os.close(fd)
PY
qemu-img create -q -f qcow2 -b frag.raw -F raw hD/s/top.qcow2
"$IMGAUDIT" scan --db hD.db --quiet hD/s; eq "scan hD" "$?" "0"
touch -d '-5 sec' hD/s/top.qcow2
"$IMGAUDIT" scan --db hD.db --quiet --full hD/s; eq "scan hD again" "$?" "0"
SD=$(sid hD.db)
sid_db=hD.db
# nothing partial: every central scan of the store is whole, and no row of
# the store lies outside a central scan
whole() {
	local s bad_rows=0 c
	for s in $(adm "SELECT id FROM scans WHERE store_id = '$SD'"); do
		[ "$(adm "SELECT count(*) FROM images WHERE store_id = '$SD' AND scan_id = $s")" == "$(sqlite3 "$sid_db" "SELECT count(*) FROM images WHERE scan_id = $s")" ] || bad_rows=1
		[ "$(adm "SELECT count(*) FROM links WHERE store_id = '$SD' AND scan_id = $s")" == "$(sqlite3 "$sid_db" "SELECT count(*) FROM links WHERE scan_id = $s")" ] || bad_rows=1
	done
	c=$(adm "SELECT (SELECT count(*) FROM images i WHERE store_id = '$SD' AND NOT EXISTS (SELECT 1 FROM scans s WHERE s.store_id = i.store_id AND s.id = i.scan_id)) + (SELECT count(*) FROM layers l WHERE store_id = '$SD' AND runs <> (SELECT count(*) FROM layer_runs r WHERE r.store_id = l.store_id AND r.layer_id = l.id)) + (SELECT count(*) FROM files WHERE store_id = '$SD' AND NOT EXISTS (SELECT 1 FROM scans WHERE store_id = '$SD'))")
	[ "$c" = 0 ] || bad_rows=1
	return $bad_rows
}
backend_gone() {
	for _ in $(seq 100); do
		[ "$(adm "SELECT count(*) FROM pg_stat_activity WHERE usename = 'imgaudit_push'")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}
for delay in 0.3 1.0 2.0; do
	IMGAUDIT_TEST_PUSH_DELAY_MS=10 "$IMGAUDIT" push --db hD.db --to "$PUSH" --host hD --quiet &
	BG=$!
	sleep $delay
	kill -9 $BG; wait $BG 2>/dev/null; BG=
	backend_gone && ok || bad "backend of the killed push still there"
	whole && ok || bad "partial rows visible after kill -9 at ${delay}s"
done
# one killed in the middle of a COPY, for certain
IMGAUDIT_TEST_PUSH_DELAY_MS=20 "$IMGAUDIT" push --db hD.db --to "$PUSH" --host hD --quiet &
BG=$!
for _ in $(seq 100); do
	[ "$(adm "SELECT count(*) FROM pg_stat_activity WHERE usename = 'imgaudit_push' AND query LIKE 'COPY layer_runs%'")" = 1 ] && break
	sleep 0.05
done
eq "caught mid-COPY" "$(adm "SELECT count(*) FROM pg_stat_activity WHERE usename = 'imgaudit_push' AND query LIKE 'COPY layer_runs%'")" "1"
kill -9 $BG; wait $BG 2>/dev/null; BG=
backend_gone && ok || bad "backend still there"
whole && ok || bad "partial rows visible after kill -9 mid-COPY"

# ---- the server stopped mid-push: a clear error, exit 1, nothing partial ----
"$IMGAUDIT" push --db hD.db --to "$PUSH" --host hD --quiet; eq "push hD" "$?" "0"
whole && ok || bad "hD whole"
cp hD.db hH.db && sqlite3 hH.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-000000000011'"
SD=00000000-0000-4000-8000-000000000011
sid_db=hH.db
IMGAUDIT_TEST_PUSH_DELAY_MS=20 "$IMGAUDIT" push --db hH.db --to "$PUSH" --host hD --quiet 2>stop.err &
BG=$!
for _ in $(seq 100); do
	[ "$(adm "SELECT count(*) FROM pg_stat_activity WHERE usename = 'imgaudit_push' AND query LIKE 'COPY%'")" = 1 ] && break
	sleep 0.05
done
pg_stop fast
wait $BG; rc=$?; BG=
eq "server stopped mid-push: exit status" "$rc" "1"
grep -q "^imgaudit push: scan 1 not pushed: PostgreSQL at 'user=imgaudit_push dbname=fleet host=$PGD': " stop.err && ok || { bad "server stopped: message"; cat stop.err; }
# the server is down: unreachable, exit 4
"$IMGAUDIT" push --db hH.db --to "$PUSH" --host hD 2>down.err; eq "server down: exit status" "$?" "4"
grep -q "cannot connect to PostgreSQL at 'user=imgaudit_push dbname=fleet host=$PGD'" down.err && ok || { bad "server down: message"; cat down.err; }
pg_start || bad "restart"
whole && ok || bad "partial rows after the server stopped mid-push"
eq "nothing of hH" "$(adm "SELECT (SELECT count(*) FROM scans WHERE store_id = '$SD') + (SELECT count(*) FROM files WHERE store_id = '$SD') + (SELECT count(*) FROM layer_runs WHERE store_id = '$SD')")" "0"
"$IMGAUDIT" push --db hH.db --to "$PUSH" --host hH --quiet; eq "push after restart" "$?" "0"
whole && ok || bad "hH whole"
eq "hH scans" "$(adm "SELECT count(*) FROM scans WHERE store_id = '$SD'")" "2"
for h in hD hH; do
	a=$(view_pg v_map "${VIEWS[v_map]}" $h); b=$(view_sq v_map "${VIEWS[v_map]}" $h)
	[ "$a" == "$b" ] && ok || bad "v_map of $h after the crashes"
	eq "$h map rows" "$(echo "$a" | wc -l)" "$(sqlite3 $h.db 'SELECT count(*) FROM v_map')"
done

# ---- two hosts at once: neither waits for the other ----
cp hD.db hE.db && sqlite3 hE.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-00000000000e'"
cp hB.db hF.db && sqlite3 hF.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-00000000000f'"
IMGAUDIT_TEST_PUSH_DELAY_MS=20 "$IMGAUDIT" push --db hE.db --to "$PUSH" --host hE --quiet &
BG=$!
for _ in $(seq 100); do
	[ "$(adm "SELECT count(*) FROM pg_stat_activity WHERE usename = 'imgaudit_push' AND query LIKE 'COPY%'")" = 1 ] && break
	sleep 0.05
done
# the same store at once: refused at once, exit 7
"$IMGAUDIT" push --db hE.db --to "$PUSH" --host hE 2>busy.err; eq "same store twice at once" "$?" "7"
grep -q "another push of store 00000000-0000-4000-8000-00000000000e is running" busy.err && ok || { bad "busy message"; cat busy.err; }
t0=$(date +%s%N)
"$IMGAUDIT" push --db hF.db --to "$PUSH" --host hF --quiet; eq "hF while hE pushes" "$?" "0"
t1=$(date +%s%N)
kill -0 $BG 2>/dev/null && ok || bad "hE finished before hF: the test proves nothing"
[ $(((t1 - t0) / 1000000)) -lt 3000 ] && ok || bad "hF waited $(((t1 - t0) / 1000000)) ms"
wait $BG; eq "hE" "$?" "0"; BG=
eq "both stored" "$(adm "SELECT host FROM v_latest_scan WHERE host IN ('hE', 'hF') ORDER BY host" | tr '\n' ' ')" "hE hF "

# ---- the read-only role reads, never writes; push as it is refused ----
eq "reader reads views" "$(psql "$READ" -X -At -c "SELECT count(*) > 0 FROM v_images")" "t"
psql "$READ" -X -At -c "INSERT INTO stores (store_id, host) VALUES ('00000000-0000-4000-8000-000000000001', 'x')" 2>ro.err
eq "reader cannot insert" "$?" "1"
grep -q "permission denied" ro.err && ok || bad "reader insert message"
psql "$READ" -X -At -c "DELETE FROM scans" 2>/dev/null; eq "reader cannot delete" "$?" "1"
cp hC.db hG.db && sqlite3 hG.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-00000000000a'"
"$IMGAUDIT" push --db hG.db --to "$READ" --host hG 2>ro.err; eq "push as the reader" "$?" "1"
grep -q "permission denied" ro.err && ok || { bad "push as reader message"; cat ro.err; }
psql "$PUSH" -X -At -c "DELETE FROM scans" 2>/dev/null; eq "the push role cannot delete" "$?" "1"
psql "$PUSH" -X -At -c "CREATE TABLE x (i int)" 2>/dev/null; eq "the push role cannot create" "$?" "1"

# ---- a server whose disk is full: exit 1, a clear error, nothing stored ----
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$WORK/tiny" && mount -t tmpfs -o size=64m tmpfs "$WORK/tiny" && chown nobody:nogroup "$WORK/tiny"
	adm "CREATE TABLESPACE tiny LOCATION '$WORK/tiny'" >/dev/null
	psql "host=$PGD user=admin dbname=postgres" -X -q -c "CREATE DATABASE fleetfull TABLESPACE tiny"
	"$IMGAUDIT" pg-migrate --to "host=$PGD user=admin dbname=fleetfull" >/dev/null; eq "pg-migrate on the small disk" "$?" "0"
	# fill the disk but for 256 KiB: less than hD's layer runs
	free=$(df -k --output=avail "$WORK/tiny" | tail -1)
	fallocate -l $(((free - 256) * 1024)) "$WORK/tiny/filler"
	"$IMGAUDIT" push --db hD.db --to "host=$PGD user=admin dbname=fleetfull" --host hD 2>full.err >/dev/null
	eq "disk full: exit status" "$?" "1"
	grep -q "^imgaudit push: scan 1 not pushed: PostgreSQL at 'user=admin dbname=fleetfull host=$PGD': .*No space left on device" full.err && ok || { bad "disk full message"; cat full.err; }
	eq "disk full: nothing stored" "$(psql "host=$PGD user=admin dbname=fleetfull" -X -At -c "SELECT (SELECT count(*) FROM scans) + (SELECT count(*) FROM files) + (SELECT count(*) FROM layer_runs)")" "0"
	psql "host=$PGD user=admin dbname=postgres" -X -q -c "DROP DATABASE fleetfull" -c "DROP TABLESPACE tiny"
	umount "$WORK/tiny"
else
	bad "the disk-full case needs root (a tmpfs mount)"
fi

# ---- the push unit's command, with a libpq service file and a pgpass file ----
exec_line=$(sed -n 's/^ExecStart=//p' "$SOURCE_DIR/contrib/systemd/imgaudit-push.service")
eq "push unit command" "$exec_line" "imgaudit push --quiet"
grep -q '^Environment=IMGAUDIT_PUSH_TO=service=imgaudit$' "$SOURCE_DIR/contrib/systemd/imgaudit-push.service" && ok || bad "push unit: IMGAUDIT_PUSH_TO"
grep -q '^After=imgaudit.service' "$SOURCE_DIR/contrib/systemd/imgaudit-push.service" && ok || bad "push unit: after the scan"
printf '[imgaudit]\nhost=%s\ndbname=fleet\nuser=imgaudit_push\n' "$PGD" >pg_service.conf
cp hC.db hS.db && sqlite3 hS.db "UPDATE store_identity SET store_id = '00000000-0000-4000-8000-000000000005'"
out=$(env IMGAUDIT_DB=hS.db IMGAUDIT_PUSH_TO=service=imgaudit PGSERVICEFILE="$WORK/pg_service.conf" \
	"$IMGAUDIT" ${exec_line#imgaudit } 2>&1)
eq "push unit command: exit status and output" "$?|$out" "0|"
eq "pushed through the service" "$(adm "SELECT count(*) FROM scans WHERE store_id = '00000000-0000-4000-8000-000000000005'")" "1"

# ---- bad credentials (exit 5), no password in any message ----
"$IMGAUDIT" push --db hC.db --to "postgresql://imgaudit_push:s3cr3t-wrong@/fleet?host=$PGD" 2>auth.err
eq "bad password: exit status" "$?" "5"
grep -q "password authentication failed" auth.err && ok || { bad "bad password message"; cat auth.err; }
grep -q "s3cr3t-wrong" auth.err && bad "the password reached a message" || ok
"$IMGAUDIT" push --db hC.db --to "host=$PGD user=nobody_here dbname=fleet" 2>auth.err; eq "unknown role: exit status" "$?" "5"
PGPASSFILE=/dev/null "$IMGAUDIT" push --db hC.db --to "$PUSH" 2>auth.err; eq "no password: exit status" "$?" "5"
IMGAUDIT_PUSH_TO="$PUSH" "$IMGAUDIT" push --db hC.db --host hC --quiet; eq "IMGAUDIT_PUSH_TO" "$?" "0"
"$IMGAUDIT" push --db hC.db 2>/dev/null; eq "no --to: usage" "$?" "2"
"$IMGAUDIT" push --db nosuch.db --to "$PUSH" 2>/dev/null; eq "no store: exit status" "$?" "3"

# ---- central schema 1 with history, migrated to 2: the same rows and answers ----
psql "host=$PGD user=admin dbname=postgres" -X -q -c "CREATE DATABASE fleet1" || bad "create fleet1"
ADMIN1="host=$PGD user=admin dbname=fleet1"
{ cat "$SOURCE_DIR/schema/pg/001_initial.sql"; echo "INSERT INTO imgaudit_schema (version) VALUES (1);"; } |
	psql "$ADMIN1" -X -q -v ON_ERROR_STOP=1 >/dev/null || bad "schema 1"
for t in stores scans scan_roots files scan_files entries images links map findings ovf_disks layers layer_runs pieces chain_layers; do
	psql "$ADMIN" -X -q -c "\\copy (SELECT * FROM $t) TO '$WORK/t.copy'" &&
		psql "$ADMIN1" -X -q -c "\\copy $t FROM '$WORK/t.copy'" || bad "copy $t to schema 1"
done
eq "schema 1 holds the runs" "$(psql "$ADMIN1" -X -At -c "SELECT count(*) FROM layer_runs")" "$(adm "SELECT count(*) FROM layer_runs")"
out=$("$IMGAUDIT" pg-migrate --to "$ADMIN1"); eq "pg-migrate 1 -> 2" "$?|$out" "0|central schema version 2 at user=admin dbname=fleet1 host=$PGD (was 1)"
packed="SELECT store_id, layer_id, start, stop, starts, lengths, flags, offsets, file_ids FROM layer_runs_packed ORDER BY 1, 2, 3"
[ "$(psql "$ADMIN1" -X -At -c "SELECT count(*) FROM layer_runs_packed")" -gt 100 ] && [ "$(psql "$ADMIN1" -X -At -c "SELECT count(*) FROM v_map")" -gt 100 ] && ok || bad "nothing migrated"
eq "migrated runs packed as push packs them" "$(psql "$ADMIN1" -X -At -c "$packed" | md5sum)" "$(adm "$packed" | md5sum)"
runs="SELECT * FROM layer_runs ORDER BY store_id, layer_id, start"
eq "layer_runs view after the migration" "$(psql "$ADMIN1" -X -At -c "$runs" | md5sum)" "$(adm "$runs" | md5sum)"
eq "v_map after the migration" "$(psql "$ADMIN1" -X -At -c "SELECT * FROM v_map" | LC_ALL=C sort | md5sum)" "$(adm "SELECT * FROM v_map" | LC_ALL=C sort | md5sum)"
"$IMGAUDIT" report --db "$ADMIN1" --host hA --format json | nogen >mig.json
"$IMGAUDIT" report --db hA.db --format json | nogen >local.json
cmp -s mig.json local.json && ok || bad "report of hA from the migrated database"
psql "$READ" -X -At -c "SELECT count(*) FROM layer_runs" >/dev/null && ok || bad "the reader reads layer_runs"
# the roles existed before the migration: it grants them their rights on what it replaced
eq "rights after the migration" "$(psql "host=$PGD user=imgaudit_read dbname=fleet1" -X -At -c "SELECT count(*) > 0 FROM layer_runs, (SELECT count(*) FROM v_map) m" 2>&1) $(psql "host=$PGD user=imgaudit_push dbname=fleet1" -X -At -c "SELECT has_table_privilege('layer_runs_packed', 'INSERT'), has_table_privilege('layer_runs', 'SELECT')" 2>&1)" "t t|t"
psql "host=$PGD user=admin dbname=postgres" -X -q -c "DROP DATABASE fleet1"

# ---- packed runs of an unexpected shape (arrays of unequal lengths): a clear error ----
adm "INSERT INTO layer_runs_packed SELECT store_id, layer_id, -1, 0, '{0,1}', '{1}', '{4}', '{NULL}', '{NULL}' FROM layer_runs_packed WHERE store_id = '$(sid hC.db)' LIMIT 1" >/dev/null
"$IMGAUDIT" report --db "$READ" --host hC --format json >/dev/null 2>shape.err; eq "bad packed runs: exit status" "$?" "1"
grep -q "^imgaudit report: host 'hC' (store $(sid hC.db)): PostgreSQL at '.*': layer_runs_packed: COPY data of an unexpected shape" shape.err && ok || { bad "bad packed runs: message"; cat shape.err; }
adm "DELETE FROM layer_runs_packed WHERE store_id = '$(sid hC.db)' AND start = -1" >/dev/null

# ---- a server schema newer than this imgaudit: refused, exit 6 ----
adm "INSERT INTO imgaudit_schema (version) VALUES (99)" >/dev/null
"$IMGAUDIT" push --db hC.db --to "$PUSH" 2>new.err; eq "newer server schema: exit status" "$?" "6"
grep -q "has central schema version 99, newer than this imgaudit's 2; refusing to touch it" new.err && ok || { bad "newer schema message"; cat new.err; }
"$IMGAUDIT" report --db "$READ" 2>/dev/null >/dev/null; eq "report refuses it too" "$?" "1"
"$IMGAUDIT" pg-migrate --to "$ADMIN" 2>/dev/null; eq "pg-migrate refuses it" "$?" "6"
adm "DELETE FROM imgaudit_schema WHERE version = 99" >/dev/null

pg_stop fast
lib_summary "fleet (PostgreSQL)"
