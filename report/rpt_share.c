/*
 * The sharing figures of one backing image, from the store's layers and
 * pieces (schema 3) without composing any image's map: the pieces of its
 * descendants that its layer decides, merged per layer, clipped once to the
 * layer's data runs.  A hundred overlays on a base of 20,000 runs cost one
 * pass over those runs, not a hundred.  Images of schema-2 scans (no
 * pieces) are read from their map rows, as before.
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
        sqlite3_stmt *has_pieces, *pieces, *runs, *rows, *reads;
};

static int step_err(struct share *sh, int rc, struct ia_error *err)
{
        return rc == SQLITE_DONE ? 0 : ia_rpt_db_error(sh->r, err, "reading the maps");
}

/* Does the map of images row map_id live in pieces (schema 3) rather than map rows? */
static int has_pieces(struct share *sh, int64_t map_id, bool *yes, struct ia_error *err)
{
        int rc;

        *yes = false;
        if (sh->r->db_schema < 3)
                return 0;
        sqlite3_reset(sh->has_pieces);
        sqlite3_bind_int64(sh->has_pieces, 1, map_id);
        rc = sqlite3_step(sh->has_pieces);
        if (rc == SQLITE_ROW) {
                *yes = true;
                return 0;
        }
        return step_err(sh, rc, err);
}

/* The data rows of a schema-2 map at depth, into a; their sum in *sum. */
static int rows_at(struct share *sh, int64_t map_id, int depth, struct ivals *a, uint64_t *sum,
                   struct ia_error *err)
{
        int rc;

        *sum = 0;
        sqlite3_reset(sh->rows);
        sqlite3_bind_int64(sh->rows, 1, map_id);
        sqlite3_bind_int(sh->rows, 2, depth);
        while ((rc = sqlite3_step(sh->rows)) == SQLITE_ROW) {
                uint64_t len = (uint64_t)sqlite3_column_int64(sh->rows, 1);

                *sum += len;
                if (ivals_add(a, (uint64_t)sqlite3_column_int64(sh->rows, 0), len) < 0)
                        return NOMEM(err);
        }
        return step_err(sh, rc, err);
}

/* The pieces of map_id at depth that a layer decides, into l. */
static int pieces_at(struct share *sh, int64_t map_id, int depth, struct lranges *l,
                     struct ia_error *err)
{
        int rc;

        sqlite3_reset(sh->pieces);
        sqlite3_bind_int64(sh->pieces, 1, map_id);
        sqlite3_bind_int(sh->pieces, 2, depth);
        while ((rc = sqlite3_step(sh->pieces)) == SQLITE_ROW) {
                uint64_t s = (uint64_t)sqlite3_column_int64(sh->pieces, 0);

                if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
                        return NOMEM(err);
                l->v[l->n++] = (struct lrange){sqlite3_column_int64(sh->pieces, 2), s,
                                               s + (uint64_t)sqlite3_column_int64(sh->pieces, 1)};
        }
        return step_err(sh, rc, err);
}

/* The data of layer within [s, e), into a. */
static int clip(struct share *sh, int64_t layer, uint64_t s, uint64_t e, struct ivals *a,
                struct ia_error *err)
{
        int rc;

        sqlite3_reset(sh->runs);
        sqlite3_bind_int64(sh->runs, 1, layer);
        sqlite3_bind_int64(sh->runs, 2, (int64_t)s);
        sqlite3_bind_int64(sh->runs, 3, (int64_t)e);
        while ((rc = sqlite3_step(sh->runs)) == SQLITE_ROW) {
                uint64_t rs = (uint64_t)sqlite3_column_int64(sh->runs, 0);
                uint64_t re = rs + (uint64_t)sqlite3_column_int64(sh->runs, 1);

                if (rs < s)
                        rs = s;
                if (re > e)
                        re = e;
                if (rs < re && ivals_add(a, rs, re - rs) < 0)
                        return NOMEM(err);
        }
        return step_err(sh, rc, err);
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

/* What map_id reads at depth (schema 3: stored with the scan). */
static int reads_at(struct share *sh, int64_t map_id, int depth, uint64_t *sum,
                    struct ia_error *err)
{
        int rc;

        *sum = 0;
        sqlite3_reset(sh->reads);
        sqlite3_bind_int64(sh->reads, 1, map_id);
        sqlite3_bind_int(sh->reads, 2, depth);
        rc = sqlite3_step(sh->reads);
        if (rc == SQLITE_ROW) {
                *sum = (uint64_t)sqlite3_column_int64(sh->reads, 0);
                return 0;
        }
        return step_err(sh, rc, err);
}

/* Image map_id's data at depth: pieces into l, or schema-2 rows straight into a. */
static int data_at(struct share *sh, int64_t map_id, int depth, struct lranges *l, struct ivals *a,
                   uint64_t *sum, struct ia_error *err)
{
        bool pieces;

        if (has_pieces(sh, map_id, &pieces, err) < 0)
                return -1;
        if (!pieces)
                return rows_at(sh, map_id, depth, a, sum, err);
        if (pieces_at(sh, map_id, depth, l, err) < 0)
                return -1;
        return reads_at(sh, map_id, depth, sum, err);
}

int ia_rpt_share(struct ia_rpt *r, size_t base, const size_t *desc, const int *depth, size_t nd,
                 uint64_t *visible, uint64_t *reads, struct ia_error *err)
{
        static const char *const sql[] = {
            "SELECT 1 FROM pieces WHERE image_id = ?1 LIMIT 1",
            "SELECT start, length, layer_id FROM pieces WHERE image_id = ?1 AND depth = ?2 "
            "AND kind = 'layer' ORDER BY start",
            "SELECT start, length FROM layer_runs WHERE layer_id = ?1 AND data AND start < ?3 "
            "AND start >= coalesce((SELECT max(start) FROM layer_runs WHERE layer_id = ?1 "
            "AND start <= ?2), 0) ORDER BY start",
            "SELECT start, length FROM map WHERE image_id = ?1 AND depth = ?2 AND data "
            "ORDER BY start",
            "SELECT data_bytes FROM chain_layers WHERE image_id = ?1 AND depth = ?2",
        };
        struct share sh = {.r = r};
        sqlite3_stmt **st[] = {&sh.has_pieces, &sh.pieces, &sh.runs, &sh.rows, &sh.reads};
        struct ivals own = {0}, vis = {0};
        struct lranges l = {0};
        uint64_t sum;
        int ret = -1;

        for (size_t k = 0; k < sizeof(st) / sizeof(st[0]); k++) {
                /* schema 2 has no pieces: those statements are never run */
                if (r->db_schema < 3 && k != 3)
                        continue;
                if (ia_rpt_prepare(r, sql[k], st[k], err) < 0)
                        goto out;
        }
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
        for (size_t k = 0; k < sizeof(st) / sizeof(st[0]); k++)
                sqlite3_finalize(*st[k]);
        free(own.v);
        free(vis.v);
        free(l.v);
        return ret;
}
