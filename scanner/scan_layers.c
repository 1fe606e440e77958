/* An image's map in the layered store: layers stored once, pieces composed, live rows. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "banned.h"

/* Every row of the image's map: its space figures and what it reads from each depth. */
static void count_row(struct img_job *j, const struct ia_map_row *row)
{
        ia_space_add_row(&j->sp, row);
        j->rows++;
        if (row->depth < j->nchain && !row->unknown) {
                if (row->data)
                        j->chain[row->depth].data += row->length;
                else if (row->zero)
                        j->chain[row->depth].zero += row->length;
        }
}

static const char *const piece_kind_name[] = {
    [IA_PIECE_LAYER] = "layer", [IA_PIECE_END] = "end", [IA_PIECE_UNKNOWN] = "unknown"};

static int put_piece(struct img_job *j, const struct ia_piece_row *p, struct ia_error *err)
{
        struct ia_rec *r = j->pieces_rec;

        /* most images have a handful of pieces: a small chunk, grown as needed */
        if (r && !ia_rec_chunk_room(r)) {
                scan_put_chunk(j->s, &j->pieces_rec);
                r = NULL;
        }
        if (!r && !(r = j->pieces_rec = ia_rec_new_chunk(IA_REC_PIECES, 16)))
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        r->u.pieces.image_id = j->image_id;
        r->u.pieces.pieces[r->u.pieces.n++] = *p;
        return 0;
}

static int piece_cb(void *opaque, const struct ia_piece *p, struct ia_error *err)
{
        struct img_job *j = opaque;
        struct ia_space sp = {0};
        uint64_t rows = 0;

        /* count_row() for each of its rows, from the layer's prefix sums */
        ia_piece_space(p->kind == IA_PIECE_LAYER ? j->composing[p->depth].layer : NULL, p, &sp,
                       &rows);
        j->rows += rows;
        j->sp.own_data += sp.own_data;
        j->sp.backing_data += sp.backing_data;
        j->sp.zero += sp.zero;
        j->sp.unallocated += sp.unallocated;
        j->sp.compressed += sp.compressed;
        j->sp.unknown += sp.unknown;
        j->sp.mapped += sp.mapped;
        if (p->depth < j->nchain && p->kind != IA_PIECE_UNKNOWN) {
                j->chain[p->depth].data += sp.own_data + sp.backing_data;
                if (p->kind == IA_PIECE_LAYER)
                        j->chain[p->depth].zero += p->len - sp.own_data - sp.backing_data;
        }
        struct ia_piece_row row = {
            .start = p->start,
            .len = p->len,
            .depth = p->depth,
            .kind = piece_kind_name[p->kind],
            .layer_id = p->kind == IA_PIECE_LAYER ? j->layer_ids[p->depth] : 0,
        };

        return put_piece(j, &row, err);
}

/* A row of a chain mapped live: a run of the image's 'rows' layer, in a piece. */
static int live_row(struct img_job *j, struct ia_map_row row, struct ia_error *err)
{
        enum ia_piece_kind kind = IA_PIECE_LAYER;

        if (j->broken && row.depth + 1 == j->nchain && !row.data && row.zero && !row.present) {
                /* read through to the backing file that is missing: unknown, not zero */
                struct ia_map_row u = {.start = row.start, .length = row.length};

                u.depth = (uint32_t)j->nchain;
                u.unknown = 1;
                row = u;
        }
        if (row.unknown)
                kind = IA_PIECE_UNKNOWN;
        else if (!row.data && !row.zero)
                kind = IA_PIECE_END;
        count_row(j, &row);
        if (kind == IA_PIECE_LAYER) {
                struct ia_rec *r = scan_chunk_rec(&j->runs_rec, IA_REC_RUNS, err);

                if (!r)
                        return -1;
                r->u.runs.layer_id = j->rows_layer;
                r->u.runs.rows[r->u.runs.n++] = row;
                j->nruns++;
                if (r->u.runs.n == IA_MAP_CHUNK)
                        scan_put_chunk(j->s, &j->runs_rec);
        }
        if (j->cur.kind && j->cur.depth == row.depth && j->cur.kind == piece_kind_name[kind] &&
            j->cur.start + j->cur.len == row.start) {
                j->cur.len += row.length;
                return 0;
        }
        if (j->cur.kind && put_piece(j, &j->cur, err) < 0)
                return -1;
        j->cur = (struct ia_piece_row){.start = row.start,
                                       .len = row.length,
                                       .depth = row.depth,
                                       .kind = piece_kind_name[kind],
                                       .layer_id = kind == IA_PIECE_LAYER ? j->rows_layer : 0};
        return 0;
}

static int entry_cb(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct img_job *j = opaque;
        struct ia_map_row row;
        int64_t fid = e->has_offset && e->file ? scan_file_ref(j, e->file, NULL) : 0;

        (void)last;
        ia_map_row_from_entry(e, fid, &row);
        return live_row(j, row, err);
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

/* The other files a layer reads (its data files, extents): "ID,ID", ascending. */
static char *layer_deps(struct img_job *j, int64_t file_id)
{
        int64_t *ids = calloc(j->nlinks + 1, sizeof(*ids));
        size_t n = 0, len = 0;
        char *out;

        if (!ids)
                return NULL;
        for (size_t i = 0; i < j->nlinks; i++)
                if (j->links[i].from_file_id == file_id && strcmp(j->links[i].kind, "backing") &&
                    j->links[i].target_file_id)
                        ids[n++] = j->links[i].target_file_id;
        qsort(ids, n, sizeof(*ids), cmp_i64);
        out = malloc(n * 21 + 1);
        if (out) {
                out[0] = '\0';
                for (size_t i = 0; i < n; i++)
                        if (i == 0 || ids[i] != ids[i - 1])
                                len += (size_t)snprintf(out + len, 22, "%s%lld", len ? "," : "",
                                                        (long long)ids[i]);
        }
        free(ids);
        return out;
}

/*
 * The layers row of layer l (img's own runs): the one stored by this scan or
 * an earlier one when there is one, else a new one, with its runs.  0 with
 * *id set, or -1 (ENOMEM).
 */
static int store_layer(struct img_job *j, struct ia_image *img, const struct ia_layer *l,
                       int64_t file_id, int64_t *id)
{
        struct scan *s = j->s;
        char *deps = layer_deps(j, file_id), *key;
        size_t kl;
        bool fresh = false;
        struct ia_rec *r, *runs = NULL;

        if (!deps)
                return -1;
        kl = strlen(deps) + strlen(img->drv->name) + 24;
        key = malloc(kl);
        if (!key) {
                free(deps);
                return -1;
        }
        kl = (size_t)snprintf(key, kl, "%lld %s %s", (long long)file_id, img->drv->name, deps);
        pthread_mutex_lock(&s->reg_lock);
        *id = (int64_t)(intptr_t)ia_hmap_get(&s->layer_ids, key, kl);
        if (!*id) {
                *id = atomic_fetch_add(&s->next_layer_id, 1);
                fresh = ia_hmap_put(&s->layer_ids, key, kl, (void *)(intptr_t)*id) == 0;
        }
        pthread_mutex_unlock(&s->reg_lock);
        free(key);
        if (!fresh) {
                free(deps);
                return 0;
        }
        r = ia_rec_new(IA_REC_LAYER);
        if (!r) {
                free(deps);
                return -1;
        }
        r->u.layer.id = *id;
        r->u.layer.kind = "layer";
        r->u.layer.file_id = file_id;
        r->u.layer.format = scan_xstrdup(img->drv->name);
        r->u.layer.deps = deps;
        r->u.layer.size = l->size;
        r->u.layer.runs = l->n;
        scan_put(s, r);
        for (size_t i = 0; i < l->n; i++) {
                const struct ia_layer_run *u = &l->runs[i];
                struct ia_map_row *m;

                if (!runs && !(runs = ia_rec_new_chunk(IA_REC_RUNS, l->n - i)))
                        return -1;
                runs->u.runs.layer_id = *id;
                m = &runs->u.runs.rows[runs->u.runs.n++];
                memset(m, 0, sizeof(*m));
                m->start = u->start;
                m->length = u->len;
                m->present = (u->flags & IA_BS_ALLOCATED) != 0;
                m->zero = (u->flags & IA_BS_ZERO) != 0;
                m->data = (u->flags & IA_BS_DATA) != 0;
                m->compressed = (u->flags & IA_BS_COMPRESSED) != 0;
                m->has_offset = (u->flags & IA_BS_OFFSET) != 0;
                m->offset = u->host_off;
                m->file_id = u->file_id;
                if (runs->u.runs.n == runs->u.runs.cap)
                        scan_put_chunk(s, &runs);
        }
        scan_put_chunk(s, &runs);
        return 0;
}

/* Compose the pieces of the chain from its cached layers; 1 if it must be mapped live. */
static int compose_chain(struct img_job *j, struct ia_image *top, struct ia_error *err)
{
        struct scan *s = j->s;
        struct ia_compose_layer *chain = calloc(j->nchain, sizeof(*chain));
        struct ia_layer **held = calloc(j->nchain, sizeof(*held));
        struct ia_image *img = top;
        size_t got = 0;
        int rc = 1;

        if (!chain || !held)
                goto out;
        for (got = 0; got < j->nchain; got++, img = img->backing_img) {
                struct ia_error lerr;
                bool mapped = false;

                ia_error_clear(&lerr);
                if (ia_layer_cache_get(s->cache, img, scan_file_id_cb, j, &held[got], &mapped,
                                       &lerr) < 0)
                        break;
                if (mapped)
                        s->layers_mapped++;
                chain[got].layer = held[got];
                chain[got].cow = img->cow;
        }
        if (got < j->nchain)
                goto out;
        chain[j->nchain - 1].broken = j->broken;
        for (size_t d = 0; d < j->nchain; d++)
                if (chain[d].layer->failed || chain[d].layer->too_big)
                        goto out;
        img = top;
        for (size_t d = 0; d < j->nchain; d++, img = img->backing_img) {
                if (store_layer(j, img, chain[d].layer, j->chain[d].file_id, &j->layer_ids[d]) <
                    0) {
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        goto out;
                }
                j->chain[d].layer_id = j->layer_ids[d];
        }
        j->composing = chain;
        rc = ia_compose_pieces(chain, j->nchain, piece_cb, NULL, j, err);
        j->composing = NULL;
out:
        for (size_t i = 0; i < got; i++)
                ia_layer_cache_put(s->cache, held[i]);
        free(chain);
        free(held);
        return rc;
}

/*
 * Map the opened chain into the store: its pieces over the layers (each
 * stored once), or, when a layer failed or is too big, its rows mapped live
 * as one 'rows' layer; then what it reads from each depth.
 */
int scan_map_chain(struct img_job *j, struct ia_image *top, struct ia_error *err)
{
        struct scan *s = j->s;
        struct ia_image *img;
        struct ia_rec *c;
        int rc = -1;

        j->nchain = 0;
        for (img = top; img; img = img->backing_img) {
                j->nchain++;
                if (!img->backing_img)
                        j->broken = img->backing && img->backing[0];
        }
        j->chain = calloc(j->nchain, sizeof(*j->chain));
        j->layer_ids = calloc(j->nchain, sizeof(*j->layer_ids));
        if (!j->chain || !j->layer_ids) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        img = top;
        for (size_t d = 0; d < j->nchain; d++, img = img->backing_img) {
                j->chain[d].depth = (uint32_t)d;
                j->chain[d].file_id = scan_file_ref(j, img->file, NULL);
        }
        rc = compose_chain(j, top, err);
        if (rc == 1) {
                /* a layer failed, is too big, or memory ran out: map it live, streaming */
                struct ia_map_opts o = {
                    .start = 0, .max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
                struct ia_rec *r;

                if (j->rows || j->pieces_rec) {
                        rc = ia_error_set(err, IA_ERR_INTERNAL,
                                          "composition stopped after emitting pieces");
                        goto out;
                }
                j->rows_layer = atomic_fetch_add(&s->next_layer_id, 1);
                rc = ia_map(top, &o, entry_cb, j, err);
                if (j->cur.kind && put_piece(j, &j->cur, rc < 0 ? NULL : err) < 0)
                        rc = -1;
                r = ia_rec_new(IA_REC_LAYER);
                if (r) {
                        r->u.layer.id = j->rows_layer;
                        r->u.layer.kind = "rows";
                        r->u.layer.file_id = j->chain[0].file_id;
                        r->u.layer.format = scan_xstrdup(top->drv->name);
                        r->u.layer.size = top->size;
                        r->u.layer.runs = j->nruns;
                }
                scan_put_chunk(s, &j->runs_rec);
                scan_put(s, r);
        }
        scan_put_chunk(s, &j->pieces_rec);
        /* what it reads from each backing layer (depth 0 is the image's own_data_bytes) */
        if (j->nchain > 1) {
                c = ia_rec_new(IA_REC_CHAIN);
                if (c) {
                        memmove(j->chain, j->chain + 1, (j->nchain - 1) * sizeof(*j->chain));
                        c->u.chain.image_id = j->image_id;
                        c->u.chain.rows = j->chain;
                        c->u.chain.n = j->nchain - 1;
                        j->chain = NULL;
                }
                scan_put(s, c);
        }
out:
        free(j->chain);
        free(j->layer_ids);
        j->chain = NULL;
        j->layer_ids = NULL;
        return rc;
}
