#!/bin/bash
# contrib/systemd: the units pass `systemd-analyze verify`; the service is
# rated at most 2.0 by `systemd-analyze security --offline=yes`, has no
# [Install] section (the timer starts it) and carries the hardening the
# README promises.  Its ExecStart is then run for real on a store of
# root-owned 0600 images, as the unit would run it: an unprivileged uid (the
# dynamic user), the unit's capability set (bounding, inheritable, ambient),
# its umask, no new privileges; the images must be read, the database and
# reports created 0640, the metrics written through the textfile directory's
# group; without the capability the same run cannot read them.  Last, every
# system call the run makes (strace -f) must be allowed by the unit's
# SystemCallFilter=, and no socket may be of another family than AF_UNIX.
. "$(dirname "$0")/lib.sh"
UNIT=$SOURCE_DIR/contrib/systemd/imgaudit.service
TIMER=$SOURCE_DIR/contrib/systemd/imgaudit.timer
lib_workdir systemd
need systemd-analyze setpriv qemu-img sqlite3 python3 strace
[ "$(id -u)" = 0 ] || { echo "test_systemd: 0 passed, 0 failed, 1 skipped (needs root)"; exit 0; }
# prop NAME: the unit's value(s) of a [Service] setting, one a line
prop() { sed -n "s/^$1=//p" "$UNIT"; }

# ---- systemd-analyze ----
systemd-analyze verify --man=no "$UNIT" "$TIMER" >verify.out 2>&1
eq "systemd-analyze verify exit status" "$?" "0"
[ ! -s verify.out ] && ok || bad "systemd-analyze verify: $(cat verify.out)"
systemd-analyze security --offline=yes "$UNIT" >security.out 2>&1
score=$(sed -n 's/.*Overall exposure level for imgaudit\.service: \([0-9.]*\) .*/\1/p' security.out)
[ -n "$score" ] && ok || bad "no exposure level in: $(tail -3 security.out)"
echo "systemd-analyze security: $score"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 2.0 else 1)' "${score:-99}" && ok || bad "exposure level $score is over 2.0"

# ---- the unit's settings ----
grep -q '^\[Install\]' "$UNIT" && bad "the service has an [Install] section (enabling it would scan at every boot)" || ok
grep -q '^WantedBy=timers.target$' "$TIMER" && ok || bad "the timer is not wanted by timers.target"
for want in 'Type=oneshot' 'DynamicUser=yes' 'StateDirectory=imgaudit' 'UMask=0027' \
	'CapabilityBoundingSet=CAP_DAC_READ_SEARCH' 'AmbientCapabilities=CAP_DAC_READ_SEARCH' \
	'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateDevices=yes' 'PrivateNetwork=yes' \
	'RestrictAddressFamilies=AF_UNIX' 'SystemCallFilter=@system-service' \
	'CPUSchedulingPolicy=batch' 'IOSchedulingClass=idle' 'Nice=10'; do
	grep -qx "$want" "$UNIT" && ok || bad "the service lacks $want"
done
grep -qE '^TimeoutStartSec=[0-9]+[hmin]*$' "$UNIT" && ok || bad "the service has no TimeoutStartSec"
grep -q '^PrivateUsers=yes' "$UNIT" && bad "PrivateUsers=yes: the capability would not apply to root's files" || ok

# ---- the command line, run as the unit runs it ----
python3 - "$UNIT" >service.sh <<'PY'
import re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
line = [l for l in text.split("\n") if l.startswith("ExecStart=")][0]
m = re.fullmatch(r"ExecStart=/bin/sh -c '([^']*)'", line)
assert m and "${" not in m.group(1), line
print(m.group(1))
PY
eq "ExecStart parsed" "$?" "0"
umask_=$(prop UMask)
caps=$(prop AmbientCapabilities | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,+/g')
bound=$(prop CapabilityBoundingSet | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,+/g')
eq "capabilities read from the unit" "$caps/$bound" "dac_read_search/dac_read_search"
# a uid and gid in systemd's dynamic range that no account uses
U=61873
while getent passwd $U >/dev/null || getent group $U >/dev/null; do U=$((U + 1)); done
PROM_GID=$((U + 1))

chmod 755 "$WORK"
mkdir -p store/vms store/secret state textfile
qemu-img create -q -f qcow2 store/base.qcow2 4M
qemu-io -c 'write -P 1 0 64k' store/base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../base.qcow2 -F qcow2 store/vms/vm1.qcow2
qemu-io -c 'write -P 2 64k 64k' store/vms/vm1.qcow2 >/dev/null
qemu-img create -q -f qcow2 store/secret/disk.qcow2 1M
chown -R root:root store
chmod 600 store/base.qcow2 store/vms/vm1.qcow2 store/secret/disk.qcow2
chmod 700 store/secret
# what systemd makes of StateDirectory= for the dynamic user
chown $U:$U state
chmod "$(prop StateDirectoryMode)" state
# the textfile directory as the unit's comments say: its group, 2775
chown root:$PROM_GID textfile
chmod 2775 textfile

# run_unit CAPS: the ExecStart script as the unit's user (CAPS "" for none)
run_unit() {
	local capargs=()
	if [ -n "$1" ]; then
		capargs=(--inh-caps="+$1" --ambient-caps="+$1" --bounding-set="-all,+$bound")
	else
		capargs=(--inh-caps=-all --bounding-set=-all)
	fi
	env -i PATH="$(dirname "$IMGAUDIT"):/usr/bin:/bin" IMGAUDIT_DB="$WORK/state/store.db" \
		ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" \
		IMGAUDIT_ROOTS="$WORK/store" IMGAUDIT_REPORT_DIR="$WORK/state" \
		IMGAUDIT_TEXTFILE_DIR="$WORK/textfile" \
		${STRACE:-} setpriv --reuid=$U --regid=$U --groups=$PROM_GID "${capargs[@]}" --no-new-privs \
		sh -c 'umask "$0"; exec sh -c "$1"' "$umask_" "$(cat service.sh)"
}
run_unit "$caps" >run.out 2>&1
eq "the unit's command line, with its capability: exit status" "$?" "0"
eq "all images read" "$(command sqlite3 state/store.db "SELECT group_concat(path || ':' || status, ' ') FROM (SELECT * FROM v_images ORDER BY path)")" \
	"$WORK/store/base.qcow2:ok $WORK/store/secret/disk.qcow2:ok $WORK/store/vms/vm1.qcow2:ok"
eq "the chain resolved" "$(sqlite3 state/store.db "SELECT status FROM v_links")" "ok"
eq "nothing unreadable" "$(sqlite3 state/store.db "SELECT count(*) FROM v_entries WHERE kind = 'unreadable'")" "0"
for f in state/store.db state/report.json state/report.html; do
	eq "$f: owner and mode (umask $umask_)" "$(stat -c '%u %a' "$f")" "$U 640"
done
eq "metrics: through the directory's group, readable by it" "$(stat -c '%u %g %a' textfile/imgaudit.prom)" "$U $PROM_GID 640"
grep -q '^imgaudit_' textfile/imgaudit.prom && ok || bad "metrics file empty"
eq "the images untouched" "$(stat -c '%U %a' store/base.qcow2 store/vms/vm1.qcow2 store/secret/disk.qcow2 | sort -u)" "root 600"

# the capability is what reads them: the same run without it cannot
rm -rf state/* textfile/*
run_unit "" >nocap.out 2>&1
eq "without the capability: scan exit status 1 (problems)" "$?" "1"
eq "without the capability: nothing mapped" "$(sqlite3 state/store.db "SELECT count(*) FROM v_images WHERE status = 'ok'")" "0"

# ---- every system call of the run is allowed by SystemCallFilter= ----
# (traced as the unit runs, as its user: SQLite, for one, calls fchown only
# as root; what setpriv does before it execs the shell is systemd's part)
rm -rf state/* textfile/*
# (LeakSanitizer cannot run under ptrace: the sanitizer build checks leaks elsewhere)
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" STRACE="strace -f -qq -o $WORK/trace.txt" \
	run_unit "$caps" >strace.out 2>&1
eq "under strace: exit status" "$?" "0"
systemd-analyze syscall-filter >groups.txt 2>/dev/null
prop SystemCallFilter >filters.txt
python3 - groups.txt filters.txt trace.txt <<'PY' && ok || bad "system calls outside the unit's filter"
import re, sys
groups, cur = {}, None
for raw in open(sys.argv[1]):
    line = raw.strip()
    if raw.startswith("@"):  # a group; its members are indented
        cur = groups.setdefault(line, set())
    elif line and not line.startswith("#") and cur is not None:
        cur.add(line)
def expand(name, seen=()):
    if not name.startswith("@"):
        return {name}
    out = set()
    for m in groups.get(name, ()):
        if m not in seen:
            out |= expand(m, seen + (name,))
    return out
allowed = None
for f in open(sys.argv[2]).read().split("\n"):
    f = f.strip()
    if not f:
        continue
    deny = f.startswith("~")
    names = set().union(*(expand(n) for n in f.lstrip("~").split()))
    if deny:
        allowed = (allowed if allowed is not None else set()) - names
    else:
        allowed = (allowed or set()) | names
used, families = set(), set()
first, started = None, False
for line in open(sys.argv[3]):
    m = re.match(r"(\d+)\s", line)
    if not m:
        continue
    if first is None:
        first = m.group(1)
    if m.group(1) == first and not started:
        started = re.match(first + r' +execve\("[^"]*/sh", .* = 0$', line) is not None
        continue
    m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
    if m:
        used.add(m.group(1))
    m = re.match(r"\d+\s+socket\((\w+)", line)
    if m:
        families.add(m.group(1))
bad = sorted(used - allowed)
if bad:
    print("not allowed by the filter:", " ".join(bad))
if families - {"AF_UNIX"}:
    print("socket families:", families)
print(f"{len(used)} distinct system calls, all allowed" if not bad else "")
sys.exit(1 if bad or families - {"AF_UNIX"} else 0)
PY

# ---- the cron line: the same nice and idle I/O for every step ----
CRON=$SOURCE_DIR/contrib/imgaudit.cron
line=$(grep -E '^[0-9*]' "$CRON")
grep -q 'N="nice -n 10 ionice -c 3"' <<<"$line" && ok || bad "cron: no nice -n 10 ionice -c 3"
eq "cron: every imgaudit runs under \$N" "$(grep -o '[^ ]* imgaudit ' <<<"$line" | sort -u | tr -d '\n')" '$N imgaudit '

lib_summary test_systemd
