/*
 * Bounded windows over on-disk tables (see window.h).
 */
#include <string.h>

#include "bytes.h"
#include "window.h"
#include "banned.h"

void ia_window_init(struct ia_window *w, struct ia_source *src, uint64_t off, uint64_t count,
                    uint32_t entry_size, uint32_t cap, unsigned flags, const char *what)
{
        w->src = src;
        w->what = what;
        w->off = off;
        w->count = count;
        w->entry_size = entry_size ? entry_size : 1;
        if (cap == 0 || cap > IA_WINDOW_BYTES / w->entry_size)
                cap = IA_WINDOW_BYTES / w->entry_size;
        w->cap = cap;
        w->flags = flags;
        w->first = 0;
        w->n = 0;
}

uint64_t ia_window_bytes(const struct ia_window *w)
{
        uint64_t bytes;

        if (!ia_mul_ok(w->count, w->entry_size, &bytes))
                return UINT64_MAX;
        return bytes;
}

bool ia_window_fits(const struct ia_window *w)
{
        uint64_t bytes;

        if (!ia_mul_ok(w->count, w->entry_size, &bytes))
                return false;
        return ia_range_in(w->off, bytes, w->src->size);
}

void ia_window_move(struct ia_window *w, uint64_t off)
{
        if (off != w->off) {
                w->off = off;
                w->n = 0;
        }
}

const uint8_t *ia_window_entry(struct ia_window *w, uint64_t index, struct ia_error *err)
{
        if (index >= w->count) {
                ia_error_set(err, IA_ERR_INTERNAL, "%s: entry %llu beyond the %llu of the table",
                             w->what, (unsigned long long)index, (unsigned long long)w->count);
                return NULL;
        }
        if (index < w->first || index - w->first >= w->n) {
                uint64_t first = w->flags & IA_WINDOW_ALIGNED ? index / w->cap * w->cap : index;
                uint64_t n = ia_min_u64(w->count - first, w->cap), at;

                w->n = 0;
                /* An offset that overflows lies past the end of any file. */
                if (!ia_mul_ok(first, w->entry_size, &at) || !ia_add_ok(w->off, at, &at)) {
                        ia_error_set(err, IA_ERR_TRUNCATED,
                                     "%s: entry %llu lies past the end of the file", w->what,
                                     (unsigned long long)first);
                        return NULL;
                }
                if (ia_read(w->src, w->buf, (size_t)n * w->entry_size, at, w->what, err) < 0)
                        return NULL;
                w->first = first;
                w->n = n;
        }
        return w->buf + (size_t)(index - w->first) * w->entry_size;
}
