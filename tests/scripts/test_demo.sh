#!/bin/bash
# contrib/demo.sh deletes only what it made: a DEMO_STORE that exists without
# the marker file demo.sh leaves in it (or is a symlink, a file, or holds a
# symlink for a marker) is refused and left as it was; a directory the demo
# made is replaced on the next run.  Runs the demo with this build's binary
# (IMGAUDIT=...: no install, no build).
. "$(dirname "$0")/lib.sh"
DEMO=$SOURCE_DIR/contrib/demo.sh
lib_workdir demo
need qemu-img qemu-io sqlite3 tar
demo() { DEMO_STORE=$1 IMGAUDIT=$IMGAUDIT bash "$DEMO" >demo.out 2>demo.err; }
tree() { find "$1" -printf '%p %y %s\n' 2>/dev/null | sort | md5sum; }

# refused: a directory of someone else's files
mkdir -p precious/sub
echo data >precious/sub/file
before=$(tree precious)
demo "$WORK/precious"
eq "foreign directory: exit status" "$?" "1"
eq "foreign directory: untouched" "$(tree precious)" "$before"
grep -q "was not made by demo.sh" demo.err && ok || bad "foreign directory: message: $(cat demo.err)"

# refused: a regular file, a symlink to a demo directory, a symlinked marker
echo data >afile
demo "$WORK/afile"
eq "a file: exit status" "$?" "1"
eq "a file: untouched" "$(cat afile)" "data"
mkdir -p real && : >real/.imgaudit-demo && echo keep >real/keep
ln -s real link
demo "$WORK/link"
eq "a symlink: exit status" "$?" "1"
eq "a symlink: its target untouched" "$(cat real/keep)" "keep"
mkdir -p fake && ln -s "$WORK/real/.imgaudit-demo" fake/.imgaudit-demo && echo keep >fake/keep
demo "$WORK/fake"
eq "a symlinked marker: exit status" "$?" "1"
eq "a symlinked marker: untouched" "$(cat fake/keep)" "keep"

# accepted: a new directory, then the demo's own directory again
demo "$WORK/new"
eq "new directory: exit status" "$?" "0"
[ -f new/.imgaudit-demo ] && ok || bad "new directory: no marker"
eq "new directory: images scanned" "$(sqlite3 new/imgaudit.db 'SELECT count(*) FROM v_images')" "7"
: >new/images/leftover
demo "$WORK/new"
eq "second run: exit status" "$?" "0"
[ ! -e new/images/leftover ] && ok || bad "second run: the old demo directory was not replaced"
eq "second run: one scan in a fresh database" "$(sqlite3 new/imgaudit.db 'SELECT count(*) FROM scans')" "1"
eq "nothing else touched" "$(ls "$WORK" | tr '\n' ' ')" "afile demo.err demo.out fake link new precious real "

lib_summary test_demo
