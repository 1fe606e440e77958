#!/bin/bash
# Every file the code and the READMEs name is in the repository: each name
# with a source extension (.c .h .sql .sh .py .md) in a comment, a string or
# a README is matched against the tracked files (as a path, or as the end of
# one).  Not checked: system headers (<...>), placeholders (NAME.c, NNN),
# build outputs (generated/), and names of other projects' or the corpus's
# files on a line that says whose they are (qemu, ../shared, the corpus).
# It first proves that it finds a stale name in a small tree made here.
. "$(dirname "$0")/lib.sh"
lib_workdir refs

check_refs() { # DIR: prints each stale reference, FILE:LINE: NAME
	(cd "$1" && python3 - <<'PY'
import os, re, subprocess
try:
    files = subprocess.check_output(["git", "ls-files"], text=True, stderr=subprocess.DEVNULL).split()
except Exception:
    files = [os.path.relpath(os.path.join(d, f)) for d, _, fs in os.walk(".") for f in fs]
tracked = set(files)
pat = re.compile(r"(?<![\w./$<-])((?:[\w.-]+/)*[\w-]+\.(?:c|h|sql|sh|py|md))\b")
external = re.compile(r"qemu|QEMU|nbdkit|libarchive's|\.\./shared|shared/|corpus|truth\.py")
placeholder = re.compile(r"NAME|NNN|PART|FILE|generated/")
for f in files:
    base = os.path.basename(f)
    if not (f.endswith((".c", ".h")) or base == "README.md") or f.startswith("tests/boundaries/"):
        continue
    for n, line in enumerate(open(f, errors="replace"), 1):
        if re.match(r"\s*#\s*include\s*<", line) or external.search(line):
            continue
        for m in pat.finditer(line):
            r = m.group(1)
            while r.startswith("../"):
                r = r[3:]
            # a placeholder, or SQL's alias.column (m.sql)
            if placeholder.search(r) or re.fullmatch(r"\w\.\w+", r):
                continue
            if not any(t == r or t.endswith("/" + r) for t in tracked):
                print(f"{f}:{n}: {r}")
PY
	)
}

# the check finds a stale name
mkdir -p t/formats && printf '/* see formats/gone.c and here.h */\n' >t/formats/here.h
eq "a stale name is found" "$(check_refs t)" "formats/here.h:1: formats/gone.c"

stale=$(check_refs "$SOURCE_DIR")
eq "every file named is in the repository" "$stale" ""
lib_summary test_refs
