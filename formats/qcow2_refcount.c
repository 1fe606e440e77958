/*
 * qcow2 refcounts, for qemu's "metadata preallocation" heuristic only: the
 * refcount table is read through a window, one 4 KiB chunk of one refcount
 * block is cached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_int.h"
#include "banned.h"

/* The refcount of cluster idx is non-zero?  -1 on error (the heuristic then says no). */
static int refcount_nonzero(struct ia_image *img, struct qcow2 *q, uint64_t idx,
                            struct ia_error *err)
{
        unsigned rb_bits = q->cluster_bits + 3 - q->refcount_order; /* log2 entries per block */
        uint64_t rt_idx = idx >> rb_bits, in_block = idx & ((1ull << rb_bits) - 1);
        uint64_t rb, bit, byte, chunk;
        unsigned width = 1u << q->refcount_order;
        const uint8_t *p;

        if (rt_idx >= q->rt_entries)
                return 0;
        p = ia_window_entry(&q->rt, rt_idx, err);
        if (!p)
                return -1;
        rb = ia_be64(p) & QCOW2_RT_OFFSET_MASK;
        if (!rb)
                return 0;
        if (rb & (q->cluster_size - 1)) {
                /* qemu: a fatal corruption; the query goes on, later ones fail. */
                q->dead_after_next = true;
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: refcount block offset %llu is not cluster aligned",
                                    (unsigned long long)rb);
        }
        bit = in_block * width;
        byte = bit / 8;
        chunk = byte / QCOW2_RB_CHUNK * QCOW2_RB_CHUNK;
        if (q->rb_off != rb + chunk) {
                int64_t n;

                q->rb_off = 0;
                memset(q->rb, 0, sizeof(q->rb));
                /* Past the end of the file qemu reads zeroes. */
                n = ia_read_upto(img->file->src, q->rb, sizeof(q->rb), rb + chunk, err);
                if (n < 0)
                        return -1;
                q->rb_off = rb + chunk;
        }
        byte -= chunk;
        if (width < 8)
                return (q->rb[byte] >> (bit % 8)) & ((1u << width) - 1) ? 1 : 0;
        for (unsigned i = 0; i < width / 8; i++)
                if (q->rb[byte + i])
                        return 1;
        return 0;
}

/*
 * qemu's metadata-preallocation heuristic: more refcounted clusters than file
 * blocks.  Like qemu, a damaged refcount structure means "no" (1 or 0); but a
 * read that failed is an error (-1), not a silently different map.
 */
int qcow2_detect_prealloc(struct ia_image *img, struct qcow2 *q, struct ia_error *err)
{
        uint64_t file_len = img->file->len;
        uint64_t real = img->file->src->allocated / q->cluster_size;
        uint64_t threshold = real * 10 / 9 > real + 2 ? real * 10 / 9 : real + 2;
        uint64_t end = (file_len + q->cluster_size - 1) >> q->cluster_bits;
        uint64_t count = 0;
        struct ia_error local;

        for (uint64_t i = 0; i < end && count < threshold; i++) {
                int r = refcount_nonzero(img, q, i, &local);

                if (r < 0 && local.cat == IA_ERR_IO) {
                        *err = local;
                        ia_error_prefix(err, "qcow2: reading the refcounts");
                        return -1;
                }
                if (r < 0)
                        return 0;
                count += (uint64_t)r;
        }
        return count >= threshold;
}
