/*
 * One layer's status with qemu's generic block-status rules
 * (bdrv_co_block_status), a live image as a layer view, and ia_map(): the
 * chain walk and the merge rule over live views (layerwalk.c).  See
 * ../shared/reference/qemu-img-map.md §3–§4.
 */
#include "map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layerwalk.h"
#include "banned.h"

/*
 * Data that a layer places beyond the end of the file holding it cannot be
 * read: the map still says what qemu says (it prints such offsets), but the
 * image gets a finding, once.
 */
static void check_past_eof(struct ia_image *img, uint64_t off, const struct ia_bstatus *st)
{
        uint64_t end;

        if ((st->flags & (IA_BS_DATA | IA_BS_OFFSET)) != (IA_BS_DATA | IA_BS_OFFSET) ||
            img->found_past_eof)
                return;
        if (!__builtin_add_overflow(st->host_off, st->len, &end) && end <= st->file->src->size)
                return;
        img->found_past_eof = true;
        ia_image_finding(img, "data-past-eof",
                         "guest bytes %llu..%llu are mapped to host offset %llu of '%s', past "
                         "the end of that file (%llu bytes)",
                         (unsigned long long)off, (unsigned long long)(off + st->len),
                         (unsigned long long)st->host_off, st->file->name,
                         (unsigned long long)st->file->src->size);
}

int ia_layer_status_own(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                        struct ia_error *err)
{
        if (len > img->size - off)
                len = img->size - off;
        memset(st, 0, sizeof(*st));
        if (img->ctx && img->ctx->deadline_ns && ia_clock_ns() > img->ctx->deadline_ns) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "the time budget for this image ran out at guest offset %llu of %llu",
                             (unsigned long long)off, (unsigned long long)img->size);
                if (err)
                        err->reason = "budget";
                return -1;
        }
        if (!img->drv->block_status) {
                /* A format without block status: all data, no offset (qemu does the same). */
                st->len = len;
                st->flags = IA_BS_DATA;
        } else {
                if (img->drv->block_status(img, off, len, st, err) < 0)
                        return -1;
                if (st->len == 0)
                        return ia_error_set(err, IA_ERR_INTERNAL,
                                            "%s driver answered an empty run at offset %llu",
                                            img->drv->name, (unsigned long long)off);
                if (st->len > len)
                        st->len = len;
                if ((st->flags & IA_BS_OFFSET) && !st->file)
                        return ia_error_set(err, IA_ERR_INTERNAL,
                                            "%s driver gave an offset without a file",
                                            img->drv->name);
        }
        if (st->flags & (IA_BS_DATA | IA_BS_ZERO))
                st->flags |= IA_BS_ALLOCATED;
        check_past_eof(img, off, st);

        if ((st->flags & IA_BS_RECURSE) && (st->flags & IA_BS_DATA) && !(st->flags & IA_BS_ZERO) &&
            (st->flags & IA_BS_OFFSET)) {
                /* Preallocated formats: holes of the host file read as zero. */
                struct ia_bstatus fs;
                struct ia_error ignored;

                if (ia_file_status(st->file, st->host_off, st->len, &fs, &ignored) == 0) {
                        if (fs.eof && (fs.len == 0 || (fs.flags & IA_BS_ZERO))) {
                                st->flags |= IA_BS_ZERO;
                        } else {
                                st->len = fs.len;
                                st->flags |= fs.flags & IA_BS_ZERO;
                        }
                }
        }
        st->flags &= ~IA_BS_RECURSE;
        return 0;
}

/* A live image as a layer view: its own status from its driver. */
static int live_status(struct ia_layer_view *v, uint64_t off, uint64_t len,
                       struct ia_view_status *st, struct ia_error *err)
{
        struct ia_bstatus bs;

        if (ia_layer_status_own(v->priv, off, len, &bs, err) < 0)
                return -1;
        st->len = bs.len;
        st->flags = bs.flags;
        st->host_off = (bs.flags & IA_BS_OFFSET) ? bs.host_off : 0;
        st->file = (bs.flags & IA_BS_OFFSET) ? bs.file : NULL;
        st->file_id = 0;
        return 0;
}

int ia_live_views(struct ia_image *top, struct ia_layer_view **out, size_t *n, struct ia_error *err)
{
        struct ia_layer_view *v;
        size_t k = 0;

        for (struct ia_image *img = top; img; img = img->backing_img)
                k++;
        v = calloc(k, sizeof(*v));
        if (!v)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory for a chain of %zu layers",
                                    k);
        k = 0;
        for (struct ia_image *img = top; img; img = img->backing_img, k++) {
                v[k].size = img->size;
                v[k].cow = img->cow;
                v[k].status = live_status;
                v[k].priv = img;
        }
        *out = v;
        *n = k;
        return 0;
}

int ia_map(struct ia_image *top, const struct ia_map_opts *opts, ia_map_fn fn, void *opaque,
           struct ia_error *err)
{
        struct ia_layer_view *chain = NULL;
        uint64_t end = top->size;
        size_t n = 0;
        int rc;

        if (opts->max_len != IA_MAP_NO_MAX) {
                /* qemu adds two signed 64-bit values; a sum past INT64_MAX examines nothing. */
                uint64_t sum = opts->start + opts->max_len;

                if (sum > (uint64_t)INT64_MAX)
                        end = 0;
                else if (sum < end)
                        end = sum;
        }
        if (ia_live_views(top, &chain, &n, err) < 0)
                return -1;
        rc = ia_walk_map(chain, n, opts->start, end, opts->flags, fn, opaque, err);
        free(chain);
        return rc;
}
