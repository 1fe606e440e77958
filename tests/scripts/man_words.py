#!/usr/bin/env python3
# man_words.py PAGE.1 RENDERED.txt: every word of the rendered man page is a
# word of its source.  A mis-quoted macro line (".IR name ).  One scan ...")
# renders its arguments glued together ("Onescanatatime"), which no source
# line holds.
import re, shlex, sys
src = open(sys.argv[1], encoding="utf-8").read()
text = open(sys.argv[2], encoding="utf-8").read()
def strip(s):
    return re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\[-&ec]|\\\s", " ", s)
words = set(re.findall(r"[A-Za-z]+", strip(src)))
# alternating-font macros glue their arguments: "ROOT s" is "ROOTs", "k th"
# is "kth"; only a short suffix counts, so a whole sentence glued by a
# mis-quoted .IR still fails
for line in src.splitlines():
    if re.match(r"\.(BR|RB|IR|RI|BI|IB) ", line):
        try:
            args = shlex.split(line[4:].replace("\\", "\\\\"))
        except ValueError:
            continue
        for a, b in zip(args, args[1:]):
            if re.fullmatch(r"[a-z]{1,3}", b):
                words.update(re.findall(r"[A-Za-z]+", strip(a + b)))
glued = sorted({w for w in re.findall(r"[A-Za-z]+", text) if w not in words})
if glued:
    print("rendered words not in the source (glued together?):", " ".join(glued[:20]))
    sys.exit(1)
