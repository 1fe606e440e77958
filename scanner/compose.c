/*
 * Per-layer maps, their cache, and chain composition (see compose.h).
 *
 * A cached layer is a layer view (formats/layerwalk.h) whose status is a lookup in
 * its runs: the composition is formats/layerwalk.c's chain walk, merge rule and
 * extent sink over such views, the very code ia_map() runs over live images.
 */
#include "compose.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "layerwalk.h"
#include "banned.h"

#define RUN_FLAGS (IA_BS_DATA | IA_BS_ZERO | IA_BS_OFFSET | IA_BS_ALLOCATED | IA_BS_COMPRESSED)

/* Where a layer's own status goes: its merged runs, at most max_runs of them. */
struct run_sink {
        struct ia_layer *l;
        size_t max_bytes;
};

static int append_run(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct run_sink *rs = opaque;
        struct ia_layer *l = rs->l;
        struct ia_layer_run *r;

        (void)last;
        if (e->length == 0)
                return 0;
        if (l->n == l->cap) {
                size_t nc = l->cap ? l->cap * 2 : 16;
                size_t max_runs = rs->max_bytes / sizeof(struct ia_layer_run);
                struct ia_layer_run *nr;

                /* in whole runs: a cap that is not a multiple of a run must not
                 * leave a full array "below the cap" and grow it by nothing */
                if (rs->max_bytes && nc > max_runs) {
                        if (l->n >= max_runs) {
                                l->too_big = true;
                                return -1;
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
        r = &l->runs[l->n++];
        r->start = e->start;
        r->len = e->length;
        r->flags = (e->data ? IA_BS_DATA : 0) | (e->zero ? IA_BS_ZERO : 0) |
                   (e->present ? IA_BS_ALLOCATED : 0) | (e->compressed ? IA_BS_COMPRESSED : 0) |
                   (e->has_offset ? IA_BS_OFFSET : 0);
        r->host_off = e->has_offset ? e->offset : 0;
        r->file_id = e->has_offset ? e->file_id : 0;
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

/* Prefix sums of the runs' bytes by kind (struct ia_layer.cum). */
static int layer_sums(struct ia_layer *l, struct ia_error *err)
{
        l->cum = malloc((l->n + 1) * sizeof(*l->cum));
        if (!l->cum)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory for the map of a layer");
        memset(&l->cum[0], 0, sizeof(l->cum[0]));
        for (size_t i = 0; i < l->n; i++) {
                const struct ia_layer_run *r = &l->runs[i];
                struct ia_run_sums *c = &l->cum[i + 1];

                *c = l->cum[i];
                if (r->flags & IA_BS_DATA) {
                        c->data += r->len;
                        if (r->flags & IA_BS_COMPRESSED)
                                c->compressed += r->len;
                } else if (r->flags & IA_BS_ALLOCATED) {
                        c->zero += r->len;
                }
        }
        return 0;
}

int ia_layer_map(struct ia_image *img, struct ia_layer *l, size_t max_bytes, ia_file_id_fn fid,
                 void *opaque, struct ia_error *err)
{
        const struct ia_file *last_file = NULL;
        int64_t last_id = 0;
        uint64_t off = 0;
        struct run_sink rs = {l, max_bytes};
        struct ia_extent_sink sink;
        int rc = 0;

        l->size = img->size;
        ia_extent_sink_init(&sink, 0, IA_MAP_MERGE_COMPRESSED, append_run, &rs);
        while (off < img->size && rc == 0) {
                struct ia_bstatus st;
                struct ia_map_entry e;

                ia_error_clear(&l->err);
                if (ia_layer_status_own(img, off, img->size - off, &st, &l->err) < 0) {
                        l->failed = true;
                        l->fail_off = off;
                        break;
                }
                memset(&e, 0, sizeof(e));
                e.start = off;
                e.length = st.len;
                e.data = (st.flags & IA_BS_DATA) != 0;
                e.zero = (st.flags & IA_BS_ZERO) != 0;
                e.present = (st.flags & IA_BS_ALLOCATED) != 0;
                e.compressed = (st.flags & IA_BS_COMPRESSED) != 0;
                e.has_offset = (st.flags & IA_BS_OFFSET) != 0;
                if (e.has_offset) {
                        if (st.file != last_file) {
                                last_file = st.file;
                                last_id = fid(opaque, st.file);
                        }
                        e.offset = st.host_off;
                        e.file_id = last_id;
                }
                rc = ia_extent_sink_add(&sink, &e, err);
                off += st.len;
        }
        if (rc == 0)
                rc = ia_extent_sink_finish(&sink, err);
        if (rc < 0 && !l->too_big)
                return -1;
        if (l->too_big) {
                free(l->runs);
                l->runs = NULL;
                l->n = l->cap = 0;
                return 0;
        }
        if (layer_sums(l, err) < 0)
                return -1;
        return layer_spans(l, err);
}

void ia_layer_release(struct ia_layer *l)
{
        free(l->runs);
        free(l->und);
        free(l->cum);
        l->runs = NULL;
        l->und = NULL;
        l->cum = NULL;
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
        return sizeof(*l) + l->cap * sizeof(struct ia_layer_run) +
               l->nund * sizeof(struct ia_span) + (l->cum ? (l->n + 1) * sizeof(*l->cum) : 0);
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

static bool run_covers(const struct ia_layer *l, size_t i, uint64_t off)
{
        return i < l->n && l->runs[i].start <= off && off - l->runs[i].start < l->runs[i].len;
}

/* A cached layer's own status at off: its run there (ia_view_status_fn). */
static int cached_status(struct ia_layer_view *v, uint64_t off, uint64_t len,
                         struct ia_view_status *st, struct ia_error *err)
{
        const struct ia_layer *l = v->priv;
        const struct ia_layer_run *r;
        size_t i = v->hint;

        if (!run_covers(l, i, off)) {
                if (run_covers(l, i + 1, off))
                        i++;
                else if (!run_covers(l, i = run_at(l, off), off))
                        return ia_error_set(err, IA_ERR_INTERNAL,
                                            "no cached run of a layer covers offset %llu",
                                            (unsigned long long)off);
        }
        v->hint = i;
        r = &l->runs[i];
        st->len = r->start + r->len - off;
        if (st->len > len)
                st->len = len;
        st->flags = r->flags;
        st->host_off = (r->flags & IA_BS_OFFSET) ? r->host_off + (off - r->start) : 0;
        st->file = NULL;
        st->file_id = r->file_id;
        return 0;
}

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

/* Whether span k is the first of l that ends after off (span_at(l, off) == k). */
static bool span_first_after(const struct ia_layer *l, size_t k, uint64_t off)
{
        return k <= l->nund && (k == l->nund || l->und[k].end > off) &&
               (k == 0 || l->und[k - 1].end <= off);
}

/* The layer's undecided spans, kept when it was mapped (ia_view_undecided_fn). */
static int cached_undecided(struct ia_layer_view *v, uint64_t off, uint64_t end, uint64_t *us,
                            uint64_t *ue, struct ia_error *err)
{
        const struct ia_layer *l = v->priv;
        size_t k = v->hint;

        (void)err;
        /* the walk asks span after span: the last answer or the next, else a search */
        if (!span_first_after(l, k, off)) {
                if (span_first_after(l, k + 1, off))
                        k++;
                else
                        k = span_at(l, off);
        }
        v->hint = k;
        *us = *ue = end;
        if (k < l->nund && l->und[k].start < end) {
                *us = l->und[k].start > off ? l->und[k].start : off;
                *ue = l->und[k].end < end ? l->und[k].end : end;
        }
        return 0;
}

/* The views of a chain of cached layers; 1 when one failed or is too big. */
static int cached_views(const struct ia_compose_layer *chain, size_t n, struct ia_layer_view **out,
                        struct ia_error *err)
{
        struct ia_layer_view *v;

        *out = NULL;
        if (n == 0)
                return ia_error_set(err, IA_ERR_INTERNAL, "composing an empty chain");
        for (size_t i = 0; i < n; i++)
                if (chain[i].layer->failed || chain[i].layer->too_big)
                        return 1;
        v = calloc(n, sizeof(*v));
        if (!v)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                v[i].size = chain[i].layer->size;
                v[i].cow = chain[i].cow;
                v[i].broken = i + 1 == n && chain[i].broken;
                v[i].status = cached_status;
                v[i].undecided = cached_undecided;
                v[i].priv = (void *)chain[i].layer;
        }
        *out = v;
        return 0;
}

struct row_out {
        ia_row_fn fn;
        void *opaque;
};

static int entry_to_row(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct row_out *o = opaque;
        struct ia_map_row row;

        (void)last;
        ia_map_row_from_entry(e, e->file_id, &row);
        return o->fn(o->opaque, &row, err);
}

int ia_compose(struct ia_compose_layer *chain, size_t n, ia_row_fn fn, void *opaque,
               struct ia_error *err)
{
        struct ia_layer_view *v;
        struct row_out o = {fn, opaque};
        int rc = cached_views(chain, n, &v, err);

        if (rc != 0)
                return rc;
        rc = ia_walk_map(v, n, 0, v[0].size, IA_MAP_MERGE_COMPRESSED, entry_to_row, &o, err);
        free(v);
        return rc < 0 ? -1 : 0;
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

/* Add the bytes [a, b) of run r (which covers them) to the sums. */
static void add_part(struct ia_run_sums *s, const struct ia_layer_run *r, uint64_t a, uint64_t b)
{
        if (r->flags & IA_BS_DATA) {
                s->data += b - a;
                if (r->flags & IA_BS_COMPRESSED)
                        s->compressed += b - a;
        } else if (r->flags & IA_BS_ALLOCATED) {
                s->zero += b - a;
        }
}

void ia_piece_space(const struct ia_layer *l, const struct ia_piece *p, struct ia_space *sp,
                    uint64_t *rows)
{
        struct ia_run_sums s = {0, 0, 0};
        uint64_t end = p->start + p->len;
        size_t k0, k1;

        if (p->kind != IA_PIECE_LAYER || p->len == 0) {
                struct ia_map_row row = {.start = p->start, .length = p->len, .depth = p->depth};

                row.unknown = p->kind == IA_PIECE_UNKNOWN;
                ia_space_add_row(sp, &row);
                (*rows)++;
                return;
        }
        /* the runs k0..k1 overlap the piece: the first and last clipped, the
         * ones between from the prefix sums */
        k0 = run_at(l, p->start);
        k1 = run_at(l, end - 1);
        if (k0 == k1) {
                add_part(&s, &l->runs[k0], p->start, end);
        } else {
                const struct ia_layer_run *r0 = &l->runs[k0], *r1 = &l->runs[k1];

                add_part(&s, r0, p->start, r0->start + r0->len);
                add_part(&s, r1, r1->start, end);
                s.data += l->cum[k1].data - l->cum[k0 + 1].data;
                s.zero += l->cum[k1].zero - l->cum[k0 + 1].zero;
                s.compressed += l->cum[k1].compressed - l->cum[k0 + 1].compressed;
        }
        *rows += k1 - k0 + 1;
        sp->mapped += p->len;
        if (p->depth == 0)
                sp->own_data += s.data;
        else
                sp->backing_data += s.data;
        sp->zero += s.zero;
        sp->unallocated += p->len - s.data - s.zero;
        sp->compressed += s.compressed;
}

struct piece_out {
        const struct ia_compose_layer *chain;
        ia_piece_fn fn;
        ia_row_fn row_fn;
        void *opaque;
};

static int piece_with_rows(void *opaque, const struct ia_piece *p, struct ia_error *err)
{
        struct piece_out *o = opaque;

        if (o->row_fn && ia_piece_rows(p->kind == IA_PIECE_LAYER ? o->chain[p->depth].layer : NULL,
                                       p, o->row_fn, o->opaque, err) < 0)
                return -1;
        return o->fn(o->opaque, p, err);
}

int ia_compose_pieces(struct ia_compose_layer *chain, size_t n, ia_piece_fn piece_fn,
                      ia_row_fn row_fn, void *opaque, struct ia_error *err)
{
        struct ia_layer_view *v;
        struct piece_out o = {chain, piece_fn, row_fn, opaque};
        int rc = cached_views(chain, n, &v, err);

        if (rc != 0)
                return rc;
        rc = ia_walk_pieces(v, n, piece_with_rows, &o, err);
        free(v);
        return rc < 0 ? -1 : 0;
}
