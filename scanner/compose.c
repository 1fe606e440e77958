/*
 * Per-layer maps, their cache, and chain composition (see compose.h).
 *
 * The composition is a transcription of formats/map.c: chain_status() is
 * ia_chain_status() with the layer's cached runs standing in for
 * ia_layer_status_own(), and compose_mergeable() is ia_map_mergeable() with
 * files compared by store id instead of display name.  Keep them in step.
 */
#include "compose.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "banned.h"

#define RUN_FLAGS (IA_BS_DATA | IA_BS_ZERO | IA_BS_OFFSET | IA_BS_ALLOCATED | IA_BS_COMPRESSED)

static int add_run(struct ia_layer *l, const struct ia_bstatus *st, uint64_t off, int64_t file_id,
                   size_t max_bytes, struct ia_error *err)
{
        unsigned flags = st->flags & RUN_FLAGS;
        struct ia_layer_run *last = l->n ? &l->runs[l->n - 1] : NULL;

        if (last && last->flags == flags && last->start + last->len == off &&
            (!(flags & IA_BS_OFFSET) ||
             (last->file_id == file_id && last->host_off + last->len == st->host_off))) {
                last->len += st->len;
                return 0;
        }
        if (l->n == l->cap) {
                size_t nc = l->cap ? l->cap * 2 : 16;
                size_t max_runs = max_bytes / sizeof(struct ia_layer_run);
                struct ia_layer_run *nr;

                /* in whole runs: a cap that is not a multiple of a run must not
                 * leave a full array "below the cap" and grow it by nothing */
                if (max_bytes && nc > max_runs) {
                        if (l->n >= max_runs) {
                                l->too_big = true;
                                return 1;
                        }
                        nc = max_runs;
                }
                nr = realloc(l->runs, nc * sizeof(*nr));
                if (!nr)
                        return ia_error_set(err, IA_ERR_NOMEM,
                                            "out of memory for the map of a layer (%zu runs)",
                                            l->n);
                l->runs = nr;
                l->cap = nc;
        }
        l->runs[l->n].start = off;
        l->runs[l->n].len = st->len;
        l->runs[l->n].flags = flags;
        l->runs[l->n].host_off = (flags & IA_BS_OFFSET) ? st->host_off : 0;
        l->runs[l->n].file_id = (flags & IA_BS_OFFSET) ? file_id : 0;
        l->n++;
        return 0;
}

/* The spans where l says neither data nor zero, merged (struct ia_layer.und). */
static int layer_spans(struct ia_layer *l, struct ia_error *err)
{
        size_t n = 0;

        for (size_t i = 0; i < l->n; i++)
                if (!(l->runs[i].flags & (IA_BS_DATA | IA_BS_ZERO)) &&
                    (i == 0 || (l->runs[i - 1].flags & (IA_BS_DATA | IA_BS_ZERO))))
                        n++;
        if (n == 0)
                return 0;
        l->und = malloc(n * sizeof(*l->und));
        if (!l->und)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory for the map of a layer");
        for (size_t i = 0; i < l->n; i++) {
                const struct ia_layer_run *r = &l->runs[i];

                if (r->flags & (IA_BS_DATA | IA_BS_ZERO))
                        continue;
                if (l->nund && l->und[l->nund - 1].end == r->start)
                        l->und[l->nund - 1].end = r->start + r->len;
                else
                        l->und[l->nund++] = (struct ia_span){r->start, r->start + r->len};
        }
        return 0;
}

int ia_layer_map(struct ia_image *img, struct ia_layer *l, size_t max_bytes, ia_file_id_fn fid,
                 void *opaque, struct ia_error *err)
{
        const struct ia_file *last_file = NULL;
        int64_t last_id = 0;
        uint64_t off = 0;

        l->size = img->size;
        while (off < img->size) {
                struct ia_bstatus st;
                int64_t id = 0;
                int r;

                ia_error_clear(&l->err);
                if (ia_layer_status_own(img, off, img->size - off, &st, &l->err) < 0) {
                        l->failed = true;
                        l->fail_off = off;
                        return 0;
                }
                if (st.flags & IA_BS_OFFSET) {
                        if (st.file != last_file) {
                                last_file = st.file;
                                last_id = fid(opaque, st.file);
                        }
                        id = last_id;
                }
                r = add_run(l, &st, off, id, max_bytes, err);
                if (r < 0)
                        return -1;
                if (r > 0) {
                        free(l->runs);
                        l->runs = NULL;
                        l->n = l->cap = 0;
                        return 0;
                }
                off += st.len;
        }
        return layer_spans(l, err);
}

void ia_layer_release(struct ia_layer *l)
{
        free(l->runs);
        free(l->und);
        l->runs = NULL;
        l->und = NULL;
        l->n = l->cap = l->nund = 0;
}

/* ---- the cache ---- */

struct ia_layer_cache {
        pthread_mutex_t lock;
        pthread_cond_t ready;
        struct ia_hmap map;                   /* key -> struct ia_layer * */
        struct ia_layer *lru_head, *lru_tail; /* ready, unreferenced; head = oldest */
        size_t bytes, budget, max_layer;
};

struct ia_layer_cache *ia_layer_cache_new(size_t budget, size_t max_layer)
{
        struct ia_layer_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->ready, NULL);
        ia_hmap_init(&c->map);
        c->budget = budget;
        c->max_layer = max_layer;
        return c;
}

static void free_layer(void *value, void *opaque)
{
        struct ia_layer *l = value;

        (void)opaque;
        if (l) {
                ia_layer_release(l);
                free(l);
        }
}

void ia_layer_cache_free(struct ia_layer_cache *c)
{
        if (!c)
                return;
        ia_hmap_each(&c->map, free_layer, NULL);
        ia_hmap_release(&c->map);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->ready);
        free(c);
}

static void lru_unlink(struct ia_layer_cache *c, struct ia_layer *l)
{
        if (l->lru_prev)
                l->lru_prev->lru_next = l->lru_next;
        else if (c->lru_head == l)
                c->lru_head = l->lru_next;
        if (l->lru_next)
                l->lru_next->lru_prev = l->lru_prev;
        else if (c->lru_tail == l)
                c->lru_tail = l->lru_prev;
        l->lru_prev = l->lru_next = NULL;
}

static void lru_append(struct ia_layer_cache *c, struct ia_layer *l)
{
        l->lru_prev = c->lru_tail;
        l->lru_next = NULL;
        if (c->lru_tail)
                c->lru_tail->lru_next = l;
        else
                c->lru_head = l;
        c->lru_tail = l;
}

static size_t layer_bytes(const struct ia_layer *l)
{
        return sizeof(*l) + l->cap * sizeof(struct ia_layer_run) + l->nund * sizeof(struct ia_span);
}

/* Drop unreferenced layers, oldest first, until the cache fits its budget. */
static void evict(struct ia_layer_cache *c)
{
        while (c->bytes > c->budget && c->lru_head) {
                struct ia_layer *l = c->lru_head;

                lru_unlink(c, l);
                ia_hmap_put(&c->map, &l->key, sizeof(l->key), NULL);
                c->bytes -= layer_bytes(l);
                free_layer(l, NULL);
        }
}

int ia_layer_cache_get(struct ia_layer_cache *c, struct ia_image *img, ia_file_id_fn fid,
                       void *opaque, struct ia_layer **out, bool *mapped_now, struct ia_error *err)
{
        struct ia_layer *l;
        struct ia_source *src = img->file->src;

        *out = NULL;
        *mapped_now = false;
        if (!src->dev && !src->ino) {
                /* No identity: a private layer, freed on put. */
                l = calloc(1, sizeof(*l));
                if (!l)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                l->state = -1;
                if (ia_layer_map(img, l, c->max_layer, fid, opaque, err) < 0) {
                        free_layer(l, NULL);
                        return -1;
                }
                *mapped_now = true;
                *out = l;
                return 0;
        }

        struct ia_fid_key_drv key;

        memset(&key, 0, sizeof(key));
        key.dev = src->dev;
        key.ino = src->ino;
        strncpy(key.drv, img->drv->name, sizeof(key.drv) - 1);

        pthread_mutex_lock(&c->lock);
        for (;;) {
                l = ia_hmap_get(&c->map, &key, sizeof(key));
                if (!l || l->state == 1)
                        break;
                pthread_cond_wait(&c->ready, &c->lock); /* another thread is mapping it */
        }
        if (l) {
                if (l->refs++ == 0)
                        lru_unlink(c, l);
                pthread_mutex_unlock(&c->lock);
                *out = l;
                return 0;
        }
        l = calloc(1, sizeof(*l));
        if (!l || ia_hmap_put(&c->map, &key, sizeof(key), l) < 0) {
                pthread_mutex_unlock(&c->lock);
                free(l);
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        l->key = key;
        l->refs = 1;
        pthread_mutex_unlock(&c->lock);

        if (ia_layer_map(img, l, c->max_layer, fid, opaque, err) < 0) {
                pthread_mutex_lock(&c->lock);
                ia_hmap_put(&c->map, &key, sizeof(key), NULL);
                pthread_cond_broadcast(&c->ready);
                pthread_mutex_unlock(&c->lock);
                free_layer(l, NULL);
                return -1;
        }
        pthread_mutex_lock(&c->lock);
        l->state = 1;
        c->bytes += layer_bytes(l);
        pthread_cond_broadcast(&c->ready);
        pthread_mutex_unlock(&c->lock);
        *mapped_now = true;
        *out = l;
        return 0;
}

void ia_layer_cache_put(struct ia_layer_cache *c, struct ia_layer *l)
{
        if (!l)
                return;
        if (l->state == -1) {
                free_layer(l, NULL);
                return;
        }
        pthread_mutex_lock(&c->lock);
        if (--l->refs == 0) {
                lru_append(c, l);
                evict(c);
        }
        pthread_mutex_unlock(&c->lock);
}

/* ---- composition ---- */

struct lstatus {
        uint64_t len, host_off;
        int64_t file_id;
        unsigned flags;
};

/* The first run of l that ends after off (runs tile [0, l->size)). */
static size_t run_at(const struct ia_layer *l, uint64_t off)
{
        size_t lo = 0, hi = l->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (l->runs[mid].start + l->runs[mid].len <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* The cached own status of the layer at off, at most len long (ia_layer_status_own). */
static int lookup(struct ia_compose_layer *cl, uint64_t off, uint64_t len, struct lstatus *st,
                  struct ia_error *err)
{
        const struct ia_layer *l = cl->layer;
        const struct ia_layer_run *r = NULL;
        size_t i = cl->hint;

        if (i < l->n && l->runs[i].start <= off && off - l->runs[i].start < l->runs[i].len) {
                r = &l->runs[i];
        } else if (i + 1 < l->n && l->runs[i + 1].start <= off &&
                   off - l->runs[i + 1].start < l->runs[i + 1].len) {
                r = &l->runs[++i];
        } else {
                size_t k = run_at(l, off);

                if (k < l->n && l->runs[k].start <= off)
                        r = &l->runs[i = k];
        }
        if (!r)
                return ia_error_set(err, IA_ERR_INTERNAL,
                                    "no cached run of a layer covers offset %llu",
                                    (unsigned long long)off);
        cl->hint = i;
        st->len = r->start + r->len - off;
        if (st->len > len)
                st->len = len;
        st->flags = r->flags;
        st->host_off = (r->flags & IA_BS_OFFSET) ? r->host_off + (off - r->start) : 0;
        st->file_id = r->file_id;
        return 0;
}

/* ia_chain_status() over cached layers. */
static int chain_status(struct ia_compose_layer *chain, size_t n, uint64_t off, uint64_t len,
                        struct ia_map_row *e, struct ia_error *err)
{
        struct lstatus st;
        size_t d = 0;

        for (;;) {
                const struct ia_layer *l = chain[d].layer;

                if (off >= l->size) {
                        memset(&st, 0, sizeof(st));
                        st.len = len;
                        break;
                }
                if (lookup(&chain[d], off, len, &st, err) < 0)
                        return -1;
                /* ia_layer_cow_zero() */
                if (!(st.flags & (IA_BS_DATA | IA_BS_ZERO)) && chain[d].cow &&
                    (d + 1 >= n || off >= chain[d + 1].layer->size))
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
        memset(e, 0, sizeof(*e));
        e->start = off;
        e->length = len;
        e->depth = (uint32_t)d;
        e->data = (st.flags & IA_BS_DATA) != 0;
        e->zero = (st.flags & IA_BS_ZERO) != 0;
        e->present = (st.flags & IA_BS_ALLOCATED) != 0;
        e->compressed = (st.flags & IA_BS_COMPRESSED) != 0;
        e->has_offset = (st.flags & IA_BS_OFFSET) != 0;
        e->offset = e->has_offset ? st.host_off : 0;
        e->file_id = e->has_offset ? st.file_id : 0;
        return 0;
}

/* ia_map_mergeable() with IA_MAP_MERGE_COMPRESSED. */
static bool compose_mergeable(const struct ia_map_row *curr, const struct ia_map_row *next)
{
        if (curr->length == 0)
                return false;
        if (curr->zero != next->zero || curr->data != next->data || curr->depth != next->depth ||
            curr->present != next->present)
                return false;
        if (curr->compressed != next->compressed)
                return false;
        if (curr->has_offset != next->has_offset)
                return false;
        if (!curr->has_offset)
                return true;
        if (curr->file_id != next->file_id)
                return false;
        return curr->offset + curr->length == next->offset;
}

int ia_compose(struct ia_compose_layer *chain, size_t n, ia_row_fn fn, void *opaque,
               struct ia_error *err)
{
        struct ia_map_row curr, next;
        uint64_t end;

        if (n == 0)
                return ia_error_set(err, IA_ERR_INTERNAL, "composing an empty chain");
        for (size_t i = 0; i < n; i++) {
                if (chain[i].layer->failed || chain[i].layer->too_big)
                        return 1;
                chain[i].hint = 0;
        }
        end = chain[0].layer->size;
        memset(&curr, 0, sizeof(curr));
        while (curr.start + curr.length < end) {
                uint64_t pos = curr.start + curr.length;

                if (chain_status(chain, n, pos, end - pos, &next, err) < 0)
                        return -1;
                if (compose_mergeable(&curr, &next)) {
                        curr.length += next.length;
                        continue;
                }
                if (curr.length > 0 && fn(opaque, &curr, err) < 0)
                        return -1;
                curr = next;
        }
        return fn(opaque, &curr, err) < 0 ? -1 : 0;
}

void ia_map_row_from_entry(const struct ia_map_entry *e, int64_t file_id, struct ia_map_row *row)
{
        memset(row, 0, sizeof(*row));
        row->start = e->start;
        row->length = e->length;
        row->depth = e->depth;
        row->present = e->present;
        row->zero = e->zero;
        row->data = e->data;
        row->compressed = e->compressed;
        row->has_offset = e->has_offset;
        row->offset = e->has_offset ? e->offset : 0;
        row->file_id = e->has_offset ? file_id : 0;
}

/* ---- pieces ---- */

/* The first undecided span of l that ends after off. */
static size_t span_at(const struct ia_layer *l, uint64_t off)
{
        size_t lo = 0, hi = l->nund;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (l->und[mid].end <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

void ia_space_add_row(struct ia_space *sp, const struct ia_map_row *row)
{
        sp->mapped += row->length;
        if (row->unknown)
                sp->unknown += row->length;
        else if (row->data && row->depth == 0)
                sp->own_data += row->length;
        else if (row->data)
                sp->backing_data += row->length;
        else if (row->present)
                sp->zero += row->length;
        else
                sp->unallocated += row->length;
        if (row->data && row->compressed)
                sp->compressed += row->length;
}

int ia_piece_rows(const struct ia_layer *l, const struct ia_piece *p, ia_row_fn fn, void *opaque,
                  struct ia_error *err)
{
        struct ia_map_row row;
        uint64_t end = p->start + p->len;

        memset(&row, 0, sizeof(row));
        row.depth = p->depth;
        if (p->kind != IA_PIECE_LAYER || p->len == 0) {
                row.start = p->start;
                row.length = p->len;
                row.unknown = p->kind == IA_PIECE_UNKNOWN;
                return fn(opaque, &row, err);
        }
        for (size_t i = run_at(l, p->start); i < l->n && l->runs[i].start < end; i++) {
                const struct ia_layer_run *r = &l->runs[i];
                uint64_t s = r->start > p->start ? r->start : p->start;
                uint64_t e = r->start + r->len < end ? r->start + r->len : end;

                row.start = s;
                row.length = e - s;
                row.data = (r->flags & IA_BS_DATA) != 0;
                /* in a piece its layer decides: what is not data reads as zero */
                row.zero = (r->flags & IA_BS_ZERO) || !row.data;
                row.present = (r->flags & IA_BS_ALLOCATED) != 0;
                row.compressed = (r->flags & IA_BS_COMPRESSED) != 0;
                row.has_offset = (r->flags & IA_BS_OFFSET) != 0;
                row.offset = row.has_offset ? r->host_off + (s - r->start) : 0;
                row.file_id = row.has_offset ? r->file_id : 0;
                if (fn(opaque, &row, err) < 0)
                        return -1;
        }
        return 0;
}

struct piece_walk {
        struct ia_compose_layer *chain;
        size_t n;
        ia_piece_fn fn;
        ia_row_fn row_fn;
        void *opaque;
        struct ia_piece cur; /* being extended; len 0 with have == false: none yet */
        bool have;
};

static int flush_piece(struct piece_walk *w, struct ia_error *err)
{
        if (!w->have)
                return 0;
        w->have = false;
        if (w->row_fn &&
            ia_piece_rows(w->cur.kind == IA_PIECE_LAYER ? w->chain[w->cur.depth].layer : NULL,
                          &w->cur, w->row_fn, w->opaque, err) < 0)
                return -1;
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

/*
 * [a, b) as seen from depth d, where every layer above reads through: the
 * same decisions as chain_status() (ia_chain_status()), taken span by span.
 */
static int walk(struct piece_walk *w, size_t d, uint64_t a, uint64_t b, struct ia_error *err)
{
        const struct ia_compose_layer *cl = &w->chain[d];
        const struct ia_layer *l = cl->layer;
        bool last = d + 1 >= w->n;
        uint64_t below = last ? 0 : w->chain[d + 1].layer->size;

        uint64_t tail = b; /* beyond this layer's end (below a layer without cow): nothing */

        if (b > l->size)
                b = a > l->size ? a : l->size;
        for (size_t k = span_at(l, a); a < b; k++) {
                uint64_t us = k < l->nund && l->und[k].start < b ? l->und[k].start : b;
                uint64_t ue = k < l->nund && l->und[k].end < b ? l->und[k].end : b;

                if (us < a)
                        us = a;
                if (emit(w, a, us, d, IA_PIECE_LAYER, err) < 0)
                        return -1;
                if (us >= b)
                        break;
                /* [us, ue): this layer says nothing there */
                if (last) {
                        enum ia_piece_kind kind = !cl->cow     ? IA_PIECE_END
                                                  : cl->broken ? IA_PIECE_UNKNOWN
                                                               : IA_PIECE_LAYER;

                        if (emit(w, us, ue, kind == IA_PIECE_UNKNOWN ? d + 1 : d, kind, err) < 0)
                                return -1;
                } else if (cl->cow) {
                        /* beyond the backing file's end it reads as zero here */
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

int ia_compose_pieces(struct ia_compose_layer *chain, size_t n, ia_piece_fn piece_fn,
                      ia_row_fn row_fn, void *opaque, struct ia_error *err)
{
        struct piece_walk w = {
            .chain = chain, .n = n, .fn = piece_fn, .row_fn = row_fn, .opaque = opaque};

        if (n == 0)
                return ia_error_set(err, IA_ERR_INTERNAL, "composing an empty chain");
        for (size_t i = 0; i < n; i++)
                if (chain[i].layer->failed || chain[i].layer->too_big)
                        return 1;
        if (chain[0].layer->size == 0) {
                /* the placeholder row qemu prints for an empty image */
                w.cur = (struct ia_piece){0, 0, 0, IA_PIECE_END};
                w.have = true;
        } else if (walk(&w, 0, 0, chain[0].layer->size, err) < 0) {
                return -1;
        }
        return flush_piece(&w, err) < 0 ? -1 : 0;
}
