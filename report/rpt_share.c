/*
 * The sharing figures of one backing image, from the store's layers and
 * pieces (schema 3) without composing any image's map: the pieces of its
 * descendants that its layer decides, merged per layer, clipped once to the
 * layer's data runs.  A hundred overlays on a base of 20,000 runs cost one
 * pass over those runs, not a hundred.  Images of schema-2 scans (no
 * pieces) are read from their map rows, as before.  The queries are the
 * store's (schema/store_report.h, "maps").
 */
#include <stdlib.h>
#include <string.h>

#include "rpt.h"
#include "banned.h"

struct ival {
        uint64_t s, e; /* [s, e) */
};

struct ivals {
        struct ival *v;
        size_t n, cap;
};

/* A range of an image's map that one layer decides. */
struct lrange {
        int64_t layer;
        uint64_t s, e;
};

struct lranges {
        struct lrange *v;
        size_t n, cap;
};

#define NOMEM(err) ia_error_set(err, IA_ERR_NOMEM, "out of memory")

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
        size_t nc;
        void *nv;

        if (n < *cap)
                return 0;
        nc = *cap ? *cap * 2 : 256;
        nv = realloc(*v, nc * size);
        if (!nv)
                return -1;
        *v = nv;
        *cap = nc;
        return 0;
}

static int ivals_add(struct ivals *a, uint64_t s, uint64_t len)
{
        if (len == 0)
                return 0;
        if (grow((void **)&a->v, &a->cap, a->n, sizeof(*a->v)) < 0)
                return -1;
        a->v[a->n].s = s;
        a->v[a->n].e = s + len < s ? UINT64_MAX : s + len;
        a->n++;
        return 0;
}

static int cmp_ival(const void *a, const void *b)
{
        const struct ival *x = a, *y = b;

        return x->s < y->s ? -1 : x->s > y->s;
}

static int cmp_lrange(const void *a, const void *b)
{
        const struct lrange *x = a, *y = b;

        if (x->layer != y->layer)
                return x->layer < y->layer ? -1 : 1;
        return x->s < y->s ? -1 : x->s > y->s;
}

/* Sort and merge overlapping or touching intervals in place. */
static void ivals_union(struct ivals *a)
{
        size_t k = 0;

        if (a->n == 0)
                return;
        qsort(a->v, a->n, sizeof(*a->v), cmp_ival);
        for (size_t i = 1; i < a->n; i++) {
                if (a->v[i].s <= a->v[k].e) {
                        if (a->v[i].e > a->v[k].e)
                                a->v[k].e = a->v[i].e;
                } else {
                        a->v[++k] = a->v[i];
                }
        }
        a->n = k + 1;
}

/* Bytes in both (each sorted and merged). */
static uint64_t ivals_overlap(const struct ivals *a, const struct ivals *b)
{
        uint64_t n = 0;
        size_t i = 0, j = 0;

        while (i < a->n && j < b->n) {
                uint64_t s = a->v[i].s > b->v[j].s ? a->v[i].s : b->v[j].s;
                uint64_t e = a->v[i].e < b->v[j].e ? a->v[i].e : b->v[j].e;

                if (s < e)
                        n += e - s;
                if (a->v[i].e < b->v[j].e)
                        i++;
                else
                        j++;
        }
        return n;
}

struct share {
        struct ia_rpt *r;
        struct ivals *a;   /* range_row, clip_row: where the data goes */
        struct lranges *l; /* piece_row: where the pieces go */
        uint64_t *sum;     /* range_row: the sum of the lengths, or NULL */
        uint64_t s, e;     /* clip_row: the clip */
};

/* A data row of a schema-2 map, into sh->a, summed into *sh->sum. */
static int range_row(void *ctx, const struct ia_rdb_range *x, struct ia_error *err)
{
        struct share *sh = ctx;

        *sh->sum += x->length;
        return ivals_add(sh->a, x->start, x->length) < 0 ? NOMEM(err) : 0;
}

/* A piece a layer decides, into sh->l. */
static int piece_row(void *ctx, const struct ia_rdb_range *x, struct ia_error *err)
{
        struct share *sh = ctx;
        struct lranges *l = sh->l;

        if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
                return NOMEM(err);
        l->v[l->n++] = (struct lrange){x->layer_id, x->start, x->start + x->length};
        return 0;
}

/* A data run of a layer, clipped to [sh->s, sh->e), into sh->a. */
static int clip_row(void *ctx, const struct ia_rdb_range *x, struct ia_error *err)
{
        struct share *sh = ctx;
        uint64_t rs = x->start, re = x->start + x->length;

        if (rs < sh->s)
                rs = sh->s;
        if (re > sh->e)
                re = sh->e;
        if (rs < re && ivals_add(sh->a, rs, re - rs) < 0)
                return NOMEM(err);
        return 0;
}

/* The data of layer within [s, e), into a. */
static int clip(struct share *sh, int64_t layer, uint64_t s, uint64_t e, struct ivals *a,
                struct ia_error *err)
{
        sh->a = a;
        sh->s = s;
        sh->e = e;
        return ia_rdb_layer_data(sh->r->db, layer, s, e, clip_row, sh, err);
}

/* The data the ranges in l read, each layer's ranges merged first: into a. */
static int clip_all(struct share *sh, struct lranges *l, struct ivals *a, struct ia_error *err)
{
        size_t i = 0;

        if (l->n == 0)
                return 0; /* (qsort of NULL, even of nothing, is undefined) */
        qsort(l->v, l->n, sizeof(*l->v), cmp_lrange);
        while (i < l->n) {
                struct lrange cur = l->v[i++];

                while (i < l->n && l->v[i].layer == cur.layer && l->v[i].s <= cur.e) {
                        if (l->v[i].e > cur.e)
                                cur.e = l->v[i].e;
                        i++;
                }
                if (clip(sh, cur.layer, cur.s, cur.e, a, err) < 0)
                        return -1;
        }
        l->n = 0;
        return 0;
}

/* Image map_id's data at depth: pieces into l, or schema-2 rows straight into a. */
static int data_at(struct share *sh, int64_t map_id, int depth, struct lranges *l, struct ivals *a,
                   uint64_t *sum, struct ia_error *err)
{
        struct ia_rdb *d = sh->r->db;
        bool pieces;

        *sum = 0;
        if (ia_rdb_has_pieces(d, map_id, &pieces, err) < 0)
                return -1;
        if (!pieces) {
                sh->a = a;
                sh->sum = sum;
                return ia_rdb_map_data(d, map_id, depth, range_row, sh, err);
        }
        sh->l = l;
        if (ia_rdb_layer_pieces(d, map_id, depth, piece_row, sh, err) < 0)
                return -1;
        /* what map_id reads at depth: stored with the scan (schema 3) */
        return ia_rdb_chain_reads(d, map_id, depth, sum, err);
}

int ia_rpt_share(struct ia_rpt *r, size_t base, const size_t *desc, const int *depth, size_t nd,
                 uint64_t *visible, uint64_t *reads, struct ia_error *err)
{
        struct share sh = {.r = r};
        struct ivals own = {0}, vis = {0};
        struct lranges l = {0};
        uint64_t sum;
        int ret = -1;

        if (data_at(&sh, r->img[base].map_id, 0, &l, &own, &sum, err) < 0 ||
            clip_all(&sh, &l, &own, err) < 0)
                goto out;
        for (size_t k = 0; k < nd; k++)
                if (data_at(&sh, r->img[desc[k]].map_id, depth[k], &l, &vis, &reads[k], err) < 0)
                        goto out;
        if (clip_all(&sh, &l, &vis, err) < 0)
                goto out;
        ivals_union(&own);
        ivals_union(&vis);
        *visible = ivals_overlap(&own, &vis);
        ret = 0;
out:
        free(own.v);
        free(vis.v);
        free(l.v);
        return ret;
}
