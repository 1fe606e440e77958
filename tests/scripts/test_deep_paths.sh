#!/bin/bash
# Paths longer than PATH_MAX (issue 10): 40 directories of 255-byte names
# (a path of 10 KiB).  An overlay there whose backing file is beside it or
# two levels up (relative names) resolves and maps, in `map` (oracle: qemu-img
# run from inside the deep directory, where its names are short) and in
# `scan`, confined or not; a backing name that climbs out of the allowed root
# from there is still refused.  Messages are whole: an unreadable and a
# malformed image down there are recorded with the full escaped path and the
# cause, and `report findings` shows both.
. "$(dirname "$0")/lib.sh"
need_qemu
need python3 sqlite3
lib_workdir deep
export WORK
q() { command sqlite3 "$DB" "$1"; } # the absolute paths themselves

python3 - <<'PY'
import os, subprocess
def run(*a, **k):
    subprocess.run(list(a), check=True, stdout=subprocess.DEVNULL, **k)
os.mkdir("deep")
os.chdir("deep")
p = "deep"
for i in range(40):
    name = ("a" if i % 2 == 0 else "b") * 255
    os.mkdir(name)
    os.chdir(name)  # one component at a time: the whole path is longer than PATH_MAX
    p += "/" + name
    if i == 37:  # two levels above the deepest directory
        run("qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "8M")
        run("qemu-io", "-c", "write -P 7 0 64k", "-c", "write -P 8 1M 64k", "base.qcow2")
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "../../base.qcow2", "-F", "qcow2", "ov.qcow2", "8M")
run("qemu-io", "-c", "write -P 9 1M 4k", "ov.qcow2")
run("qemu-img", "create", "-q", "-f", "raw", "side.raw", "8M")
run("qemu-io", "-f", "raw", "-c", "write -P 5 2M 64k", "side.raw")
run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "side.raw", "-F", "raw", "ov2.qcow2", "8M")
# 41 levels up is $WORK, outside the root "deep"
# a malformed image (cluster_bits 99) and one nobody may read, with a control byte in the name
with open("bad\x01name.qcow2", "wb") as f:
    f.write(b"QFI\xfb\0\0\0\x03" + bytes(12) + b"\0\0\0\x63" + bytes(80))
with open("locked\x01.qcow2", "wb") as f:
    f.write(bytes(1024))
os.chmod("locked\x01.qcow2", 0)
run("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "../" * 41 + "secret.raw", "-F", "raw",
    "escape.qcow2", "8M")
for n in ("ov.qcow2", "ov2.qcow2"):
    with open(os.environ["WORK"] + "/" + n + ".qemu.json", "w") as f:
        subprocess.run(["qemu-img", "map", "--output=json", n], check=True, stdout=f)
with open(os.environ["WORK"] + "/deeppath.txt", "w") as f:
    f.write(p)
PY
truncate -s 8M secret.raw
DEEP=$(cat deeppath.txt)
QEMU_COMPAT=$(qemu-img --version | sed -n 's/^qemu-img version \([0-9]*\.[0-9]*\).*/\1/p')
check "the path is longer than PATH_MAX" '[ ${#DEEP} -gt 4096 ]'

# ---- map ----
for n in ov.qcow2 ov2.qcow2; do
	"$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output=json "$DEEP/$n" >"$n.json" 2>"$n.err"
	eq "map $n: exit status" "$?" "0"
	eq "map $n = qemu-img map" "$(cat "$n.json")" "$(cat "$n.qemu.json")"
	"$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output=json --allow-root=deep "$DEEP/$n" >"$n.confined.json" 2>&1
	eq "map --allow-root $n = qemu-img map" "$(cat "$n.confined.json")" "$(cat "$n.qemu.json")"
done
(cd "$WORK/deep" && "$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output=json "${DEEP#deep/}/ov.qcow2" >"$WORK/rel.json" 2>&1)
eq "map by a relative name = qemu-img map" "$(cat rel.json)" "$(cat ov.qcow2.qemu.json)"
"$IMGAUDIT" map --qemu-compat="$QEMU_COMPAT" --output=json --allow-root=deep "$DEEP/escape.qcow2" >escape.json 2>escape.err
check "map: climbing out of the root is refused" '[ $? -ne 0 ] && grep -q "outside the allowed roots" escape.err'

# ---- scan ----
DB=$WORK/deep.db
"$IMGAUDIT" scan --db "$DB" --quiet deep
eq "scan: exit status (the malformed image)" "$?" "1"
eq "scan: links" "$(q "SELECT substr(path, -12) || ' ' || backing || ' ' || status || ' ' || length(target_path) FROM v_links ORDER BY path")" \
	"$(printf '%s\n%s\n%s' "escape.qcow2 $(printf '../%.0s' $(seq 41))secret.raw outside-roots $((${#WORK} + 11))" \
		"bbb/ov.qcow2 ../../base.qcow2 ok $(q "SELECT length(path) FROM files WHERE path LIKE '%/base.qcow2'")" \
		"bb/ov2.qcow2 side.raw ok $(q "SELECT length(path) FROM files WHERE path LIKE '%/side.raw'")")"
eq "scan: the base two levels up" "$(q "SELECT length(path) FROM files WHERE path LIKE '%/base.qcow2'")" \
	"$(q "SELECT length(path) - 2 * 256 - length('ov.qcow2') + length('base.qcow2') FROM files WHERE path LIKE '%/ov.qcow2'")"
eq "scan: the overlay's chain is mapped through the base" \
	"$(q "SELECT chain_depth || ' ' || own_data_bytes || ' ' || backing_data_bytes || ' ' || unknown_bytes FROM images i JOIN files f ON f.id = i.file_id WHERE f.path LIKE '%/ov.qcow2'")" \
	"1 65536 65536 0"
eq "scan: ov2 maps its raw backing file" \
	"$(q "SELECT chain_depth || ' ' || own_data_bytes || ' ' || backing_data_bytes || ' ' || unknown_bytes FROM images i JOIN files f ON f.id = i.file_id WHERE f.path LIKE '%/ov2.qcow2'")" \
	"1 0 69632 0"

eq "scan: where the escape would lead, canonical" "$(q "SELECT target_path FROM links WHERE status = 'outside-roots'")" "$WORK/secret.raw"
eq "scan: the escape's whole message" \
	"$(q "SELECT length(error) > 10000, instr(error, '$DEEP/$(printf '../%.0s' $(seq 41))secret.raw') > 0, substr(error, -34) FROM links WHERE status = 'outside-roots'")" \
	"1|1|resolves outside the allowed roots"

# ---- whole messages: unreadable and malformed images down there ----
# As root nothing is unreadable: the scan runs as nobody then.
as_user() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; else "$@"; fi; }
chmod 755 "$WORK"
mkdir -p db && { [ "$(id -u)" != 0 ] || chown nobody db; }
DB=$WORK/db/user.db
as_user "$IMGAUDIT" scan --db "$DB" --quiet "$WORK/deep"
eq "unreadable: exit status" "$?" "1"
LOCKED=$(printf '%s/locked\001.qcow2' "$DEEP")
eq "unreadable: the entry holds the whole path and the cause" \
	"$(q "SELECT reason, length(path) = length(CAST('$WORK/$LOCKED' AS BLOB)), path = CAST('$WORK/$LOCKED' AS BLOB) OR path = '$WORK/$LOCKED', instr(detail, '${LOCKED#deep/}') > 0, substr(detail, -30) FROM entries WHERE kind = 'unreadable'")" \
	"permission|1|1|1|for reading: Permission denied"
eq "malformed: the image row" \
	"$(q "SELECT status || ' ' || error FROM v_images WHERE path LIKE '%/bad%name.qcow2'")" \
	"corrupt qcow2: cluster_bits 99 is outside 9..21"
as_user "$IMGAUDIT" report --db "$DB" --section=findings --format=json >findings.json
eq "report findings (json): the unreadable and the malformed image, whole" "$(python3 - "$WORK/$DEEP" <<'PY'
import json, sys
deep = sys.argv[1]
out = []
def walk(o):
    if isinstance(o, dict):
        if "message" in o and "image" in o:
            out.append((o["image"], o["message"]))
        for v in o.values():
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(json.load(open("findings.json")))
for name, msg in sorted(out):
    if "escape" in name:
        continue
    print(name == deep + "/bad\\x01name.qcow2" or name == deep + "/locked\\x01.qcow2",
          name[-20:], msg[-40:], len(msg) > 10000 or "cluster_bits" in msg)
PY
)" "$(printf '%s\n%s' "True bb/bad\\x01name.qcow2 qcow2: cluster_bits 99 is outside 9..21 True" \
	"True bbb/locked\\x01.qcow2 01.qcow2' for reading: Permission denied True")"
as_user "$IMGAUDIT" report --db "$DB" --section=findings >findings.txt
check "report findings (human): the whole escaped path" "grep -qF '$WORK/$DEEP/locked\\x01.qcow2' findings.txt"
check "report findings (human): the cause" "grep -q 'unreadable-permission.*for reading: Permission denied' findings.txt"

lib_summary test_deep_paths
