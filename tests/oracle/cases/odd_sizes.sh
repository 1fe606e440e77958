#!/bin/bash
# Every format and subformat qemu-img creates here, at sizes that are not a
# multiple of anything (cluster, grain, block, CHS track), with writes, zero
# writes and discards at scattered places; each map must equal qemu-img's,
# whole and through a window.  The places come from a fixed seed, so the run
# is the same every time.
. "$(dirname "$0")/../lib.sh"

# plan SEED SIZE: print qemu-io -c arguments, one per line.
plan() {
	python3 - "$1" "$2" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1]))
size = int(sys.argv[2]) // 512 * 512
for k in range(6):
    off = rnd.randrange(size // 512) * 512
    ln = min(rnd.randrange(1, 4096) * 512, size - off)
    op = rnd.choice(['write -P %d' % (k + 1)] * 3 + ['write -z', 'discard'])
    print('%s %d %d' % (op, off, ln))
PY
}

n=0
for spec in vmdk:subformat=monolithicSparse vmdk:subformat=monolithicFlat \
	vmdk:subformat=twoGbMaxExtentSparse vmdk:subformat=twoGbMaxExtentFlat vmdk:zeroed_grain=on \
	vpc:subformat=dynamic vpc:subformat=fixed vpc:subformat=dynamic,force_size=on \
	vpc:subformat=fixed,force_size=on vdi:static=off vdi:static=on qed:cluster_size=4096 \
	qed:cluster_size=65536 qcow: parallels:cluster_size=65536 parallels:cluster_size=1048576; do
	fmt=${spec%%:*} opts=${spec#*:}
	for size in 3000001 9437183; do
		n=$((n + 1))
		scenario "$fmt-$n"
		qemu-img create -q -f "$fmt" ${opts:+-o "$opts"} d.img "$size"
		args=()
		while read -r c; do args+=(-c "$c"); done < <(plan "$n" "$size")
		qemu-io -f "$fmt" "${args[@]}" d.img >/dev/null
		oracle_map -f "$fmt" d.img
		oracle_map -f "$fmt" -s $((size / 3)) -l $((size / 2)) d.img
		[ "$fmt" = vpc ] && [ "${opts#*fixed}" != "$opts" ] || oracle_json d.img
	done
done

oracle_summary
