/*
 * imgaudit push, the layers a scan adds: those its pieces and chain_layers
 * name that the central database lacks.  Their runs go first, packed in
 * blocks of RUNS_PER_BLOCK runs (schema/pg/002_packed_runs.sql), and each
 * layer's fingerprint is computed on the way, in the one pass over its runs;
 * then the layers rows with their fingerprints.  Both COPYs are in the
 * scan's transaction, so a layer and its runs arrive together or not at
 * all (the layers key refuses a second copy).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_push_int.h"
#include "banned.h"

/* The runs of one central layer_runs_packed row (schema/pg/002_packed_runs.sql). */
#define RUNS_PER_BLOCK 48

/* layer_runs_packed.flags bits */
enum { RUN_PRESENT = 1, RUN_ZERO = 2, RUN_DATA = 4, RUN_COMPRESSED = 8 };

struct run_block {
        int64_t layer_id;
        int64_t start[RUNS_PER_BLOCK], length[RUNS_PER_BLOCK], flags[RUNS_PER_BLOCK];
        int64_t offset[RUNS_PER_BLOCK], file_id[RUNS_PER_BLOCK];
        bool no_offset[RUNS_PER_BLOCK], no_file[RUNS_PER_BLOCK];
        size_t n;
};

/* FNV-1a 64 over little-endian 64-bit words (schema/pg/001_initial.sql, layers). */
static uint64_t fnv_word(uint64_t h, int64_t w)
{
        uint64_t u = (uint64_t)w;

        for (int i = 0; i < 8; i++) {
                h ^= (u >> (8 * i)) & 0xff;
                h *= 0x100000001b3ULL;
        }
        return h;
}

/* The ids of the layers scan_id's maps name that the central database lacks, ascending. */
static int fresh_layers(struct ia_push *p, int64_t scan_id, struct ia_idset *fresh,
                        struct ia_error *err)
{
        static const char sql[] =
            "SELECT layer_id FROM pieces WHERE layer_id IS NOT NULL AND image_id IN "
            "(SELECT id FROM images WHERE scan_id = ?1) UNION "
            "SELECT layer_id FROM chain_layers WHERE layer_id IS NOT NULL AND image_id IN "
            "(SELECT id FROM images WHERE scan_id = ?1) ORDER BY 1";
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(p->db, sql, -1, &st, NULL) != SQLITE_OK)
                return ia_push_local_error(p, "layers", err);
        sqlite3_bind_int64(st, 1, scan_id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);

                if (!ia_idset_has(&p->central_layers, id) && ia_idset_add(fresh, id) < 0) {
                        sqlite3_finalize(st);
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : ia_push_local_error(p, "layers", err);
}

/* One layer_runs_packed row: store_id, layer_id, start, stop and the five arrays. */
static int block_flush(struct ia_push *p, struct ia_pg_copy *c, struct run_block *b,
                       struct ia_error *err)
{
        size_t n = b->n;

        if (n == 0)
                return 0;
        ia_pg_copy_uuid(c, p->store_id);
        ia_pg_copy_int(c, b->layer_id);
        ia_pg_copy_int(c, b->start[0]);
        /* wrapping, never undefined, for a store that holds nonsense */
        ia_pg_copy_int(c, (int64_t)((uint64_t)b->start[n - 1] + (uint64_t)b->length[n - 1]));
        ia_pg_copy_int_array(c, b->start, NULL, n);
        ia_pg_copy_int_array(c, b->length, NULL, n);
        ia_pg_copy_small_array(c, b->flags, n);
        ia_pg_copy_int_array(c, b->offset, b->no_offset, n);
        ia_pg_copy_int_array(c, b->file_id, b->no_file, n);
        b->n = 0;
        return ia_pg_copy_end_row(c, err);
}

/*
 * Run st's row (a layer_runs row: layer_id, start, ... file_id) into b; h:
 * the fingerprint.  Each column is read once (a column read costs more
 * than the packing).
 */
static void block_add(struct run_block *b, sqlite3_stmt *st, uint64_t *h)
{
        size_t k = b->n++;
        int64_t w[6];

        for (int i = 0; i < 6; i++)
                w[i] = sqlite3_column_int64(st, i + 1);
        b->start[k] = w[0];
        b->length[k] = w[1];
        b->flags[k] = (w[2] ? RUN_PRESENT : 0) | (w[3] ? RUN_ZERO : 0) | (w[4] ? RUN_DATA : 0) |
                      (w[5] ? RUN_COMPRESSED : 0);
        b->no_offset[k] = sqlite3_column_type(st, 7) == SQLITE_NULL;
        b->offset[k] = b->no_offset[k] ? 0 : sqlite3_column_int64(st, 7);
        b->no_file[k] = sqlite3_column_type(st, 8) == SQLITE_NULL;
        b->file_id[k] = b->no_file[k] ? 0 : sqlite3_column_int64(st, 8);
        for (int i = 0; i < 6; i++)
                *h = fnv_word(*h, w[i]);
        *h = fnv_word(*h, b->no_offset[k] ? -1 : b->offset[k]);
}

/*
 * COPY the runs of the fresh layers, packed; fp[k] gets layer k's
 * fingerprint.  The rows counted are the runs (local rows), not the blocks.
 */
static int copy_runs(struct ia_push *p, const struct ia_idset *fresh, uint64_t *fp,
                     struct ia_error *err)
{
        static const char copy[] = "COPY layer_runs_packed (store_id, layer_id, start, stop, "
                                   "starts, lengths, flags, offsets, file_ids) "
                                   "FROM STDIN (FORMAT binary)";
        char *sel = ia_push_select_sql(IA_PGT_LAYER_RUNS, "layer_id = ?1 ORDER BY start");
        struct run_block *b = calloc(1, sizeof(*b));
        sqlite3_stmt *st = NULL;
        struct ia_pg_copy c;
        uint64_t runs = 0;
        int rc, ret = -1;

        if (!sel || !b) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(p->db, sel, -1, &st, NULL) != SQLITE_OK) {
                ia_push_local_error(p, "layer runs", err);
                goto out;
        }
        if (ia_pg_copy_begin(&c, &p->pg, copy, err) < 0)
                goto out;
        for (size_t k = 0; k < fresh->n; k++) {
                uint64_t h = 0xcbf29ce484222325ULL;

                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, fresh->v[k]);
                b->layer_id = fresh->v[k];
                while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                        block_add(b, st, &h);
                        runs++;
                        if (b->n == RUNS_PER_BLOCK && block_flush(p, &c, b, err) < 0)
                                goto abort;
                }
                if (rc != SQLITE_DONE) {
                        ia_push_local_error(p, "layer runs", err);
                        goto abort;
                }
                if (block_flush(p, &c, b, err) < 0)
                        goto abort;
                fp[k] = h;
        }
        c.rows = runs;
        ret = ia_push_copy_finish(p, &c, true, err);
        goto out;
abort:
        ia_push_copy_finish(p, &c, false, NULL);
out:
        sqlite3_finalize(st);
        free(sel);
        free(b);
        return ret;
}

/* COPY the layers rows of the fresh layers, each with its fingerprint fp[k]. */
static int copy_layer_rows(struct ia_push *p, const struct ia_idset *fresh, const uint64_t *fp,
                           struct ia_error *err)
{
        struct ia_push_rows r = {.t = IA_PGT_LAYERS,
                                 .where = "id = ?1",
                                 .bind = fresh->v,
                                 .nbind = fresh->n,
                                 .post = "fingerprint",
                                 .post_hex = fp};

        return ia_push_copy_rows(p, &r, err);
}

int ia_push_copy_layers(struct ia_push *p, int64_t scan_id, struct ia_idset *fresh,
                        struct ia_error *err)
{
        uint64_t *fp;
        int ret;

        if (fresh_layers(p, scan_id, fresh, err) < 0)
                return -1;
        if (fresh->n == 0)
                return 0;
        fp = calloc(fresh->n, sizeof(*fp));
        if (!fp)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        ret = copy_runs(p, fresh, fp, err) < 0 || copy_layer_rows(p, fresh, fp, err) < 0 ? -1 : 0;
        free(fp);
        return ret;
}
