/*
 * The one chain walk, its merge rule and the extent sink (see layerwalk.h), with
 * qemu-img map's semantics: ../shared/reference/qemu-img-map.md §3–§4.
 */
#include "layerwalk.h"

#include <string.h>
#include "banned.h"

/*
 * What the chain adds to a layer's own status at off: a layer that reads
 * through, with no backing layer or beyond its backing layer's end, reads
 * as zero where it has nothing (qemu's bdrv_co_block_status).
 */
static bool reads_zero_here(const struct ia_layer_view *chain, size_t n, size_t d, uint64_t off)
{
        return chain[d].cow && (d + 1 >= n || off >= chain[d + 1].size);
}

int ia_walk_status(struct ia_layer_view *chain, size_t n, uint64_t off, uint64_t len,
                   struct ia_map_entry *e, struct ia_error *err)
{
        struct ia_view_status st;
        size_t d = 0;

        memset(e, 0, sizeof(*e));
        for (;;) {
                struct ia_layer_view *v = &chain[d];

                if (off >= v->size) {
                        /* A layer shorter than the one above: caught by the backing-size
                         * rule above it, never reached for the top. */
                        memset(&st, 0, sizeof(st));
                        st.len = len;
                        break;
                }
                if (v->status(v, off, len, &st, err) < 0)
                        return -1;
                if (st.len > len)
                        st.len = len;
                if (!(st.flags & (IA_BS_DATA | IA_BS_ZERO)) && reads_zero_here(chain, n, d, off))
                        st.flags |= IA_BS_ZERO;
                len = st.len;
                if (st.flags & (IA_BS_ZERO | IA_BS_DATA))
                        break;
                if (d + 1 >= n) {
                        st.flags = 0;
                        break;
                }
                d++;
        }
        e->start = off;
        e->length = len;
        e->depth = (uint32_t)d;
        e->data = (st.flags & IA_BS_DATA) != 0;
        e->zero = (st.flags & IA_BS_ZERO) != 0;
        e->present = (st.flags & IA_BS_ALLOCATED) != 0;
        e->compressed = (st.flags & IA_BS_COMPRESSED) != 0;
        e->has_offset = (st.flags & IA_BS_OFFSET) != 0;
        e->offset = e->has_offset ? st.host_off : 0;
        e->file = e->has_offset ? st.file : NULL;
        e->file_id = e->has_offset ? st.file_id : 0;
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
        /* Different files never merge, even where the offsets happen to line up:
         * live entries name files (by display name), cached ones by store id. */
        if (curr->file != next->file &&
            (!curr->file || !next->file || strcmp(curr->file->name, next->file->name) != 0))
                return false;
        if (curr->file_id != next->file_id)
                return false;
        return curr->offset + curr->length == next->offset;
}

void ia_extent_sink_init(struct ia_extent_sink *s, uint64_t start, unsigned flags, ia_map_fn fn,
                         void *opaque)
{
        memset(s, 0, sizeof(*s));
        s->curr.start = start;
        s->flags = flags;
        s->fn = fn;
        s->opaque = opaque;
}

int ia_extent_sink_add(struct ia_extent_sink *s, const struct ia_map_entry *e, struct ia_error *err)
{
        struct ia_map_entry next = *e;

        if (next.length == 0 || next.start != ia_extent_sink_end(s))
                return ia_error_set(err, IA_ERR_INTERNAL,
                                    "map entry at %llu (length %llu) does not follow the one "
                                    "ending at %llu",
                                    (unsigned long long)next.start, (unsigned long long)next.length,
                                    (unsigned long long)ia_extent_sink_end(s));
        if (ia_map_mergeable(&s->curr, &next, s->flags)) {
                s->curr.length += next.length;
                return 0;
        }
        if (s->curr.length > 0) {
                if (s->fn(s->opaque, &s->curr, false, err) < 0)
                        return -1;
                if ((s->flags & IA_MAP_HUMAN_COALESCE) && (!next.data || next.zero)) {
                        /* qemu's human mode: what follows a printed entry merges as zero */
                        next.data = false;
                        next.zero = true;
                }
        }
        s->curr = next;
        return 0;
}

int ia_extent_sink_finish(struct ia_extent_sink *s, struct ia_error *err)
{
        return s->fn(s->opaque, &s->curr, true, err);
}

int ia_walk_map(struct ia_layer_view *chain, size_t n, uint64_t start, uint64_t end, unsigned flags,
                ia_map_fn fn, void *opaque, struct ia_error *err)
{
        struct ia_extent_sink sink;

        ia_extent_sink_init(&sink, start, flags, fn, opaque);
        while (ia_extent_sink_end(&sink) < end) {
                struct ia_map_entry next;
                uint64_t pos = ia_extent_sink_end(&sink);

                if (ia_walk_status(chain, n, pos, end - pos, &next, err) < 0 ||
                    ia_extent_sink_add(&sink, &next, err) < 0)
                        return -1;
        }
        return ia_extent_sink_finish(&sink, err);
}

/* ---- pieces ---- */

struct piece_walk {
        struct ia_layer_view *chain;
        size_t n;
        ia_piece_fn fn;
        void *opaque;
        struct ia_piece cur; /* being extended, with have */
        bool have;
};

static int flush_piece(struct piece_walk *w, struct ia_error *err)
{
        if (!w->have)
                return 0;
        w->have = false;
        return w->fn(w->opaque, &w->cur, err);
}

/* Append [a, b) decided at depth with kind, extending the current piece when it can. */
static int emit(struct piece_walk *w, uint64_t a, uint64_t b, size_t depth, enum ia_piece_kind kind,
                struct ia_error *err)
{
        if (a >= b)
                return 0;
        if (w->have && w->cur.depth == depth && w->cur.kind == kind &&
            w->cur.start + w->cur.len == a) {
                w->cur.len += b - a;
                return 0;
        }
        if (flush_piece(w, err) < 0)
                return -1;
        w->cur = (struct ia_piece){a, b - a, (uint32_t)depth, kind};
        w->have = true;
        return 0;
}

/* ia_view_undecided_fn from status calls, for views without one. */
static int undecided_by_status(struct ia_layer_view *v, uint64_t off, uint64_t end, uint64_t *us,
                               uint64_t *ue, struct ia_error *err)
{
        struct ia_view_status st;

        *us = *ue = end;
        while (off < end) {
                if (v->status(v, off, end - off, &st, err) < 0)
                        return -1;
                if (st.len > end - off)
                        st.len = end - off;
                if (!(st.flags & (IA_BS_DATA | IA_BS_ZERO))) {
                        if (*us == end)
                                *us = off;
                        *ue = off + st.len;
                } else if (*us != end) {
                        break;
                }
                off += st.len;
        }
        return 0;
}

/*
 * [a, b) as seen from depth d, where every layer above reads through: the
 * decisions of ia_walk_status(), taken span by span.
 */
static int walk(struct piece_walk *w, size_t d, uint64_t a, uint64_t b, struct ia_error *err)
{
        struct ia_layer_view *v = &w->chain[d];
        bool last = d + 1 >= w->n;
        uint64_t tail = b; /* beyond this layer's end (below a layer without cow): nothing */

        if (b > v->size)
                b = a > v->size ? a : v->size;
        while (a < b) {
                uint64_t us, ue;
                int rc = v->undecided ? v->undecided(v, a, b, &us, &ue, err)
                                      : undecided_by_status(v, a, b, &us, &ue, err);

                if (rc < 0 || emit(w, a, us, d, IA_PIECE_LAYER, err) < 0)
                        return -1;
                if (us >= b)
                        break;
                /* [us, ue): this layer says nothing there */
                if (last) {
                        enum ia_piece_kind kind = !v->cow     ? IA_PIECE_END
                                                  : v->broken ? IA_PIECE_UNKNOWN
                                                              : IA_PIECE_LAYER;

                        if (emit(w, us, ue, kind == IA_PIECE_UNKNOWN ? d + 1 : d, kind, err) < 0)
                                return -1;
                } else if (v->cow) {
                        /* beyond the backing layer's end it reads as zero here */
                        uint64_t below = w->chain[d + 1].size;
                        uint64_t cut = ue < below ? ue : (us > below ? us : below);

                        if (us < cut && walk(w, d + 1, us, cut, err) < 0)
                                return -1;
                        if (emit(w, cut, ue, d, IA_PIECE_LAYER, err) < 0)
                                return -1;
                } else if (walk(w, d + 1, us, ue, err) < 0) {
                        return -1;
                }
                a = ue;
        }
        return emit(w, b, tail, d, IA_PIECE_END, err);
}

int ia_walk_pieces(struct ia_layer_view *chain, size_t n, ia_piece_fn fn, void *opaque,
                   struct ia_error *err)
{
        struct piece_walk w = {.chain = chain, .n = n, .fn = fn, .opaque = opaque};

        if (n == 0)
                return ia_error_set(err, IA_ERR_INTERNAL, "walking an empty chain");
        if (chain[0].size == 0) {
                /* the placeholder row qemu prints for an empty image */
                w.cur = (struct ia_piece){0, 0, 0, IA_PIECE_END};
                w.have = true;
        } else if (walk(&w, 0, 0, chain[0].size, err) < 0) {
                return -1;
        }
        return flush_piece(&w, err);
}
