/*
 * The chain walk and the map loop, with qemu-img map's exact semantics:
 * qemu's generic block-status rules per layer (bdrv_co_block_status), the
 * walk down the chain (qemu-img's get_block_status), and the merge rule and
 * main loop of img_map.  See ../shared/reference/qemu-img-map.md §3–§4.
 */
#include "map.h"

#include <stdint.h>
#include <string.h>
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

void ia_layer_cow_zero(const struct ia_image *img, uint64_t off, struct ia_bstatus *st)
{
        /* Unallocated with no backing, or beyond the backing file's end, reads as zero. */
        if (!(st->flags & (IA_BS_DATA | IA_BS_ZERO)) && img->cow &&
            (!img->backing_img || off >= img->backing_img->size))
                st->flags |= IA_BS_ZERO;
}

int ia_layer_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                    struct ia_error *err)
{
        if (ia_layer_status_own(img, off, len, st, err) < 0)
                return -1;
        ia_layer_cow_zero(img, off, st);
        return 0;
}

int ia_chain_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_map_entry *e,
                    struct ia_error *err)
{
        struct ia_bstatus st;
        uint32_t depth = 0;

        memset(e, 0, sizeof(*e));
        for (;;) {
                if (off >= img->size) {
                        /* Never reached from ia_map for the top; a layer shorter than the
                         * overlay is caught by the backing-size rule above it. */
                        memset(&st, 0, sizeof(st));
                        st.len = len;
                        break;
                }
                if (ia_layer_status(img, off, len, &st, err) < 0)
                        return -1;
                len = st.len;
                if (st.flags & (IA_BS_ZERO | IA_BS_DATA))
                        break;
                if (!img->backing_img) {
                        st.flags = 0;
                        break;
                }
                img = img->backing_img;
                depth++;
        }
        e->start = off;
        e->length = len;
        e->depth = depth;
        e->data = (st.flags & IA_BS_DATA) != 0;
        e->zero = (st.flags & IA_BS_ZERO) != 0;
        e->present = (st.flags & IA_BS_ALLOCATED) != 0;
        e->compressed = (st.flags & IA_BS_COMPRESSED) != 0;
        e->has_offset = (st.flags & IA_BS_OFFSET) != 0;
        e->offset = e->has_offset ? st.host_off : 0;
        e->file = e->has_offset ? st.file : NULL;
        return 0;
}

bool ia_map_mergeable(const struct ia_map_entry *curr, const struct ia_map_entry *next,
                      unsigned flags)
{
        if (curr->length == 0)
                return false;
        if (curr->zero != next->zero || curr->data != next->data || curr->depth != next->depth ||
            curr->present != next->present)
                return false;
        if ((flags & IA_MAP_MERGE_COMPRESSED) && curr->compressed != next->compressed)
                return false;
        if (curr->has_offset != next->has_offset)
                return false;
        if (!curr->has_offset)
                return true;
        /* Different files never merge, even where the offsets happen to line up. */
        if (curr->file != next->file && strcmp(curr->file->name, next->file->name) != 0)
                return false;
        return curr->offset + curr->length == next->offset;
}

int ia_map(struct ia_image *top, const struct ia_map_opts *opts, ia_map_fn fn, void *opaque,
           struct ia_error *err)
{
        struct ia_map_entry curr, next;
        uint64_t end = top->size;

        if (opts->max_len != IA_MAP_NO_MAX) {
                /* qemu adds two signed 64-bit values; a sum past INT64_MAX examines nothing. */
                uint64_t sum = opts->start + opts->max_len;

                if (sum > (uint64_t)INT64_MAX)
                        end = 0;
                else if (sum < end)
                        end = sum;
        }

        memset(&curr, 0, sizeof(curr));
        curr.start = opts->start;
        while (curr.start + curr.length < end) {
                uint64_t pos = curr.start + curr.length;

                if (ia_chain_status(top, pos, end - pos, &next, err) < 0)
                        return -1;
                if (ia_map_mergeable(&curr, &next, opts->flags)) {
                        curr.length += next.length;
                        continue;
                }
                if (curr.length > 0) {
                        if (fn(opaque, &curr, false, err) < 0)
                                return -1;
                        if ((opts->flags & IA_MAP_HUMAN_COALESCE) && (!next.data || next.zero)) {
                                next.data = false;
                                next.zero = true;
                        }
                }
                curr = next;
        }
        return fn(opaque, &curr, true, err);
}
