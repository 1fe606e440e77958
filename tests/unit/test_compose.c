/*
 * Map once, compose many: chains of scripted layers with random contents,
 * composed from per-layer runs (ia_layer_map + ia_compose) must give exactly
 * the rows ia_map() gives with IA_MAP_MERGE_COMPRESSED; plus the layer cache
 * (one map per layer, eviction past the budget, private layers) and the
 * fall-back signal for failed and too-big layers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "map.h"

#define MAXSEG 64
#define UNIT   4096

struct seg {
        uint64_t start, len, host;
        unsigned flags;
        int file; /* index into files */
};

struct script {
        struct seg segs[MAXSEG];
        size_t n;
        uint64_t cut; /* answers stop at off + cut (query-dependent run ends) */
        uint64_t fail_at;
        unsigned calls;
};

static struct ia_file files[3];
static struct ia_source fake_src[3];

static int fake_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                       struct ia_error *err)
{
        struct script *s = img->priv;

        s->calls++;
        if (s->fail_at && off >= s->fail_at)
                return ia_error_set(err, IA_ERR_CORRUPT, "scripted failure");
        memset(st, 0, sizeof(*st));
        st->len = len;
        for (size_t i = 0; i < s->n; i++) {
                const struct seg *g = &s->segs[i];

                if (off >= g->start && off < g->start + g->len) {
                        st->len = g->start + g->len - off;
                        st->flags = g->flags;
                        st->host_off = g->host + (off - g->start);
                        st->file = &files[g->file];
                        break;
                }
                if (g->start > off && g->start - off < st->len)
                        st->len = g->start - off;
        }
        if (s->cut && st->len > s->cut)
                st->len = s->cut;
        if (st->len > len)
                st->len = len;
        return 0;
}

static int fake_open(struct ia_image *img, struct ia_error *err)
{
        (void)img;
        (void)err;
        return 0;
}

static void fake_close(struct ia_image *img)
{
        (void)img;
}

static const struct ia_driver fake_drv = {
    .name = "fake",
    .flags = IA_DRV_BACKING,
    .open = fake_open,
    .block_status = fake_status,
    .close = fake_close,
};

static uint64_t rnd(uint64_t n)
{
        return (uint64_t)rand() % n;
}

/* Random, non-overlapping segments in [0, size). */
static void random_script(struct script *s, uint64_t size)
{
        static const unsigned kinds[] = {
            IA_BS_DATA | IA_BS_OFFSET, IA_BS_DATA | IA_BS_OFFSET,     IA_BS_ZERO,
            IA_BS_ZERO | IA_BS_OFFSET, IA_BS_DATA | IA_BS_COMPRESSED, IA_BS_DATA,
        };
        uint64_t off = 0;

        memset(s, 0, sizeof(*s));
        s->cut = rnd(3) ? 0 : (1 + rnd(4)) * UNIT;
        while (off < size && s->n < MAXSEG) {
                uint64_t gap = rnd(4) * UNIT, len = (1 + rnd(6)) * UNIT;
                struct seg *g;

                off += gap;
                if (off >= size)
                        break;
                if (len > size - off)
                        len = size - off;
                g = &s->segs[s->n++];
                g->start = off;
                g->len = len;
                g->flags = kinds[rnd(sizeof(kinds) / sizeof(kinds[0]))];
                g->file = (int)rnd(2);
                /* sometimes contiguous with the previous segment's host range */
                g->host = rnd(2) && s->n > 1 ? s->segs[s->n - 2].host + s->segs[s->n - 2].len
                                             : rnd(1000) * UNIT;
                off += len;
        }
}

struct rows {
        struct ia_map_row r[4096];
        size_t n;
};

static int64_t fid(void *opaque, const struct ia_file *f)
{
        (void)opaque;
        return (int64_t)(f - files) + 1;
}

static int collect_entry(void *opaque, const struct ia_map_entry *e, bool last,
                         struct ia_error *err)
{
        struct rows *r = opaque;

        (void)last;
        (void)err;
        assert_true(r->n < 4096);
        ia_map_row_from_entry(e, e->has_offset ? fid(NULL, e->file) : 0, &r->r[r->n++]);
        return 0;
}

static int collect_row(void *opaque, const struct ia_map_row *row, struct ia_error *err)
{
        struct rows *r = opaque;

        (void)err;
        assert_true(r->n < 4096);
        r->r[r->n++] = *row;
        return 0;
}

static void same_rows(unsigned seed, const char *what, const struct rows *want,
                      const struct rows *got)
{
        if (want->n != got->n)
                fail_msg("seed %u: ia_map gave %zu rows, %s %zu", seed, want->n, what, got->n);
        for (size_t i = 0; i < want->n; i++)
                if (memcmp(&want->r[i], &got->r[i], sizeof(want->r[i])) != 0)
                        fail_msg("seed %u: %s: row %zu differs (start %llu vs %llu)", seed, what, i,
                                 (unsigned long long)want->r[i].start,
                                 (unsigned long long)got->r[i].start);
}

struct piece_sink {
        struct ia_compose_layer *chain;
        struct rows rows;
        size_t npieces, piece_first_row;
        struct ia_piece pieces[64]; /* the first ones */
        uint64_t next;              /* pieces tile the image in order */
};

/* The rows of a piece come before it, and cover exactly it. */
static int piece_row(void *opaque, const struct ia_map_row *row, struct ia_error *err)
{
        struct piece_sink *ps = opaque;

        return collect_row(&ps->rows, row, err);
}

static int collect_piece(void *opaque, const struct ia_piece *p, struct ia_error *err)
{
        struct piece_sink *ps = opaque;
        uint64_t covered = 0;

        (void)err;
        assert_int_equal(p->start, ps->next);
        ps->next = p->start + p->len;
        ps->npieces++;
        assert_true(ps->rows.n > ps->piece_first_row);
        assert_int_equal(ps->rows.r[ps->piece_first_row].start, p->start);
        for (size_t i = ps->piece_first_row; i < ps->rows.n; i++) {
                assert_int_equal(ps->rows.r[i].depth, p->depth);
                covered += ps->rows.r[i].length;
        }
        assert_int_equal(covered, p->len);

        /* its space figures from the prefix sums are those of its rows */
        struct ia_space want_sp = {0}, got_sp = {0};
        uint64_t nrows = 0;

        for (size_t i = ps->piece_first_row; i < ps->rows.n; i++)
                ia_space_add_row(&want_sp, &ps->rows.r[i]);
        ia_piece_space(p->kind == IA_PIECE_LAYER ? ps->chain[p->depth].layer : NULL, p, &got_sp,
                       &nrows);
        assert_memory_equal(&want_sp, &got_sp, sizeof(want_sp));
        assert_int_equal(nrows, ps->rows.n - ps->piece_first_row);
        if (ps->npieces <= 64)
                ps->pieces[ps->npieces - 1] = *p;
        ps->piece_first_row = ps->rows.n;
        return 0;
}

/*
 * The rows of a chain whose last layer (depth n - 1) lost its backing file,
 * from the rows ia_map gives it as if it had none: a cow layer's
 * unallocated zero there read through, so it is unknown at depth n; rows of
 * one kind merge again.
 */
static void want_unknown(struct rows *r, size_t n, bool cow)
{
        size_t out = 0;

        for (size_t i = 0; i < r->n; i++) {
                struct ia_map_row x = r->r[i];

                if (cow && x.depth == n - 1 && !x.data && x.zero && !x.present) {
                        memset(&x, 0, sizeof(x));
                        x.start = r->r[i].start;
                        x.length = r->r[i].length;
                        x.depth = (uint32_t)n;
                        x.unknown = 1;
                }
                if (out && x.unknown && r->r[out - 1].unknown &&
                    r->r[out - 1].start + r->r[out - 1].length == x.start) {
                        r->r[out - 1].length += x.length;
                        continue;
                }
                r->r[out++] = x;
        }
        r->n = out;
}

struct live_pieces {
        struct ia_piece p[64];
        size_t n;
};

static int collect_live_piece(void *opaque, const struct ia_piece *p, struct ia_error *err)
{
        struct live_pieces *lp = opaque;

        (void)err;
        if (lp->n < 64)
                lp->p[lp->n] = *p;
        lp->n++;
        return 0;
}

static void setup_files(void)
{
        static char n0[] = "a", n1[] = "b", n2[] = "c";
        char *names[3] = {n0, n1, n2};

        for (int i = 0; i < 3; i++) {
                memset(&files[i], 0, sizeof(files[i]));
                files[i].name = names[i];
                files[i].src = &fake_src[i];
        }
}

/* One random chain of n layers, mapped both ways. */
static void one_chain(unsigned seed)
{
        struct ia_open_ctx ctx = {0};
        struct ia_image img[4];
        struct script sc[4];
        struct ia_layer layers[4];
        struct ia_compose_layer chain[4];
        struct ia_map_opts o = {
            .start = 0, .max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
        static struct rows want, got;
        struct ia_error err;
        size_t n;

        srand(seed);
        n = 1 + rnd(4);
        memset(img, 0, sizeof(img));
        for (size_t i = 0; i < n; i++) {
                uint64_t size = (8 + rnd(40)) * UNIT;

                random_script(&sc[i], size);
                img[i].drv = &fake_drv;
                img[i].ctx = &ctx;
                img[i].file = &files[i % 3];
                img[i].priv = &sc[i];
                img[i].size = size;
                img[i].cow = rnd(5) != 0;
                img[i].depth = (unsigned)i;
                img[i].backing_img = i + 1 < n ? &img[i + 1] : NULL;
        }
        want.n = got.n = 0;
        assert_int_equal(ia_map(&img[0], &o, collect_entry, &want, &err), 0);
        for (size_t i = 0; i < n; i++) {
                memset(&layers[i], 0, sizeof(layers[i]));
                sc[i].calls = 0;
                assert_int_equal(ia_layer_map(&img[i], &layers[i], 0, fid, NULL, &err), 0);
                chain[i].layer = &layers[i];
                chain[i].cow = img[i].cow;
        }
        assert_int_equal(ia_compose(chain, n, collect_row, &got, &err), 0);
        same_rows(seed, "composition", &want, &got);

        /* the pieces: their rows are the same rows, each piece's rows its own */
        struct piece_sink ps = {.chain = chain};

        assert_int_equal(ia_compose_pieces(chain, n, collect_piece, piece_row, &ps, &err), 0);
        same_rows(seed, "pieces", &want, &ps.rows);
        assert_true(ps.npieces <= want.n);

        /* the same piece walk over the live images' views gives the same pieces */
        struct ia_layer_view *live;
        size_t nlive;
        struct live_pieces lp = {0};

        assert_int_equal(ia_live_views(&img[0], &live, &nlive, &err), 0);
        assert_int_equal(nlive, n);
        assert_int_equal(ia_walk_pieces(live, nlive, collect_live_piece, &lp, &err), 0);
        free(live);
        assert_int_equal(lp.n, ps.npieces);
        for (size_t i = 0; i < lp.n && i < 64; i++)
                assert_memory_equal(&lp.p[i], &ps.pieces[i], sizeof(lp.p[i]));

        /*
         * A broken chain: the last layer names a backing file that is missing.
         * What reads through to it is unknown (depth n), never zero; every
         * other row is as before (ia_map maps it as if it had no backing).
         */
        chain[n - 1].broken = true;
        ps = (struct piece_sink){.chain = chain};
        assert_int_equal(ia_compose_pieces(chain, n, collect_piece, piece_row, &ps, &err), 0);
        want_unknown(&want, n, chain[n - 1].cow);
        same_rows(seed, "broken pieces", &want, &ps.rows);
        chain[n - 1].broken = false;
        for (size_t i = 0; i < n; i++)
                ia_layer_release(&layers[i]);
}

static void test_random_chains(void **state)
{
        (void)state;
        setup_files();
        for (unsigned seed = 1; seed <= 3000; seed++)
                one_chain(seed);
}

static void test_empty_image(void **state)
{
        struct ia_layer l = {0};
        struct ia_compose_layer c = {.layer = &l, .cow = false};
        static struct rows got;
        struct ia_error err;

        (void)state;
        got.n = 0;
        assert_int_equal(ia_compose(&c, 1, collect_row, &got, &err), 0);
        /* the placeholder entry qemu prints */
        assert_int_equal(got.n, 1);
        assert_int_equal(got.r[0].length, 0);
}

static void test_failed_and_too_big(void **state)
{
        struct ia_open_ctx ctx = {0};
        struct ia_image img;
        struct script sc;
        struct ia_layer l;
        struct ia_compose_layer c;
        static struct rows got;
        struct ia_error err;

        (void)state;
        setup_files();
        srand(7);
        random_script(&sc, 64 * UNIT);
        memset(&img, 0, sizeof(img));
        img.drv = &fake_drv;
        img.ctx = &ctx;
        img.file = &files[0];
        img.priv = &sc;
        img.size = 64 * UNIT;

        sc.fail_at = 16 * UNIT;
        memset(&l, 0, sizeof(l));
        assert_int_equal(ia_layer_map(&img, &l, 0, fid, NULL, &err), 0);
        assert_true(l.failed);
        assert_int_equal(l.fail_off >= 16 * UNIT, 1);
        c.layer = &l;
        c.cow = true;
        got.n = 0;
        assert_int_equal(ia_compose(&c, 1, collect_row, &got, &err), 1);
        assert_int_equal(got.n, 0);
        ia_layer_release(&l);

        sc.fail_at = 0;
        sc.cut = UNIT;
        memset(&l, 0, sizeof(l));
        assert_int_equal(ia_layer_map(&img, &l, 2 * sizeof(struct ia_layer_run), fid, NULL, &err),
                         0);
        assert_true(l.too_big);
        assert_int_equal(ia_compose(&c, 1, collect_row, &got, &err), 1);
        ia_layer_release(&l);

        /* a cap that is not a whole number of runs (the scan's 64 MiB is not):
         * the array stops at 20 runs and the layer is too big, no overflow */
        memset(&l, 0, sizeof(l));
        assert_int_equal(
            ia_layer_map(&img, &l, 20 * sizeof(struct ia_layer_run) + 1, fid, NULL, &err), 0);
        assert_true(l.too_big);
        assert_null(l.runs);
        ia_layer_release(&l);
}

static void test_cache(void **state)
{
        struct ia_open_ctx ctx = {0};
        struct ia_image img[3];
        struct script sc[3];
        struct ia_layer_cache *c = ia_layer_cache_new(1, 0); /* evict as soon as unused */
        struct ia_layer *l1, *l2;
        struct ia_error err;
        bool mapped;

        (void)state;
        setup_files();
        for (int i = 0; i < 3; i++) {
                srand(100 + (unsigned)i);
                random_script(&sc[i], 32 * UNIT);
                memset(&img[i], 0, sizeof(img[i]));
                img[i].drv = &fake_drv;
                img[i].ctx = &ctx;
                img[i].file = &files[i];
                img[i].priv = &sc[i];
                img[i].size = 32 * UNIT;
        }
        fake_src[0].dev = 1;
        fake_src[0].ino = 10;
        fake_src[1].dev = 1;
        fake_src[1].ino = 11;
        fake_src[2].dev = 0; /* no identity: private */
        fake_src[2].ino = 0;
        assert_int_equal(ia_layer_cache_get(c, &img[0], fid, NULL, &l1, &mapped, &err), 0);
        assert_true(mapped);
        assert_int_equal(ia_layer_cache_get(c, &img[0], fid, NULL, &l2, &mapped, &err), 0);
        assert_false(mapped); /* mapped once */
        assert_ptr_equal(l1, l2);
        ia_layer_cache_put(c, l1);
        ia_layer_cache_put(c, l2); /* unreferenced and over budget: evicted */
        assert_int_equal(ia_layer_cache_get(c, &img[0], fid, NULL, &l1, &mapped, &err), 0);
        assert_true(mapped);
        ia_layer_cache_put(c, l1);
        assert_int_equal(ia_layer_cache_get(c, &img[2], fid, NULL, &l1, &mapped, &err), 0);
        assert_true(mapped);
        assert_int_equal(ia_layer_cache_get(c, &img[2], fid, NULL, &l2, &mapped, &err), 0);
        assert_true(mapped);
        assert_ptr_not_equal(l1, l2);
        ia_layer_cache_put(c, l1);
        ia_layer_cache_put(c, l2);
        ia_layer_cache_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_random_chains),
            cmocka_unit_test(test_empty_image),
            cmocka_unit_test(test_failed_and_too_big),
            cmocka_unit_test(test_cache),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
