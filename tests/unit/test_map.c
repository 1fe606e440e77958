/*
 * The map core against a scripted driver: qemu's per-layer rules, the chain
 * walk and depth, the merge rule, human-mode coalescing, the placeholder
 * entry, windows and their overflow, errors mid-way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "map.h"

struct seg {
        uint64_t start, len;
        unsigned flags;
        uint64_t host;
        struct ia_file *file;
};

struct script {
        const struct seg *segs;
        size_t n;
        uint64_t fail_at; /* block_status at this offset fails (0: never) */
};

static int fake_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                       struct ia_error *err)
{
        const struct script *s = img->priv;

        if (s->fail_at && off >= s->fail_at)
                return ia_error_set(err, IA_ERR_CORRUPT, "scripted failure at %llu",
                                    (unsigned long long)off);
        for (size_t i = 0; i < s->n; i++) {
                const struct seg *g = &s->segs[i];
                if (off >= g->start && off < g->start + g->len) {
                        st->len = g->start + g->len - off;
                        if (st->len > len)
                                st->len = len;
                        st->flags = g->flags;
                        st->host_off = g->host + (off - g->start);
                        st->file = g->file;
                        return 0;
                }
        }
        st->len = len; /* unallocated up to the next segment */
        for (size_t i = 0; i < s->n; i++)
                if (s->segs[i].start > off && s->segs[i].start - off < st->len)
                        st->len = s->segs[i].start - off;
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

static const struct ia_driver fake = {
    .name = "fake",
    .flags = IA_DRV_BACKING,
    .open = fake_open,
    .block_status = fake_status,
    .close = fake_close,
};

/* Host files large enough that no scripted offset lies past their end. */
static struct ia_source big = {.size = UINT64_MAX};
static struct ia_file file_a = {.name = (char *)"a.img", .src = &big};
static struct ia_file file_b = {.name = (char *)"b.img", .src = &big};

#define MAXE 32
struct collected {
        struct ia_map_entry e[MAXE];
        size_t n;
        int fail_on; /* return -1 on this call (1-based), 0 never */
        bool last_seen;
};

static int collect(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct collected *c = opaque;

        assert_false(c->last_seen);
        if (c->fail_on && (int)c->n + 1 == c->fail_on)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "stop");
        assert_true(c->n < MAXE);
        c->e[c->n++] = *e;
        c->last_seen = last;
        return 0;
}

static void image(struct ia_image *img, const struct script *s, uint64_t size, bool cow)
{
        memset(img, 0, sizeof(*img));
        img->drv = &fake;
        img->priv = (void *)s;
        img->size = size;
        img->cow = cow;
}

static void run(struct ia_image *top, uint64_t start, uint64_t max, unsigned flags,
                struct collected *c, int want_rc)
{
        struct ia_map_opts o = {.start = start, .max_len = max, .flags = flags};
        struct ia_error err;

        memset(c->e, 0, sizeof(c->e));
        c->n = 0;
        c->last_seen = false;
        assert_int_equal(ia_map(top, &o, collect, c, &err), want_rc);
}

#define D (IA_BS_DATA | IA_BS_OFFSET)
#define Z (IA_BS_ZERO)

static void test_merge_host_contiguous(void **state)
{
        static const struct seg segs[] = {
            {0, 4096, D, 65536, &file_a},
            {4096, 4096, D, 69632, &file_a}, /* contiguous: merges */
            {8192, 4096, D, 4096, &file_a},  /* not contiguous */
            {12288, 4096, D, 8192, &file_b}, /* other file, offsets line up: no merge */
        };
        struct script s = {segs, 4, 0};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &s, 65536, false);
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, 0);
        assert_int_equal(c.n, 4);
        assert_int_equal(c.e[0].length, 8192);
        assert_int_equal(c.e[0].offset, 65536);
        assert_true(c.e[0].present && c.e[0].data && !c.e[0].zero);
        assert_int_equal(c.e[1].start, 8192);
        assert_int_equal(c.e[2].start, 12288);
        assert_ptr_equal(c.e[2].file, &file_b);
        /* Unallocated, not cow: neither zero nor present. */
        assert_int_equal(c.e[3].start, 16384);
        assert_false(c.e[3].present || c.e[3].zero || c.e[3].data || c.e[3].has_offset);
        assert_true(c.last_seen);
}

static void test_cow_without_backing_is_zero(void **state)
{
        static const struct seg segs[] = {{65536, 65536, D, 327680, &file_a}};
        struct script s = {segs, 1, 0};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &s, 1048576, true);
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, 0);
        assert_int_equal(c.n, 3);
        assert_true(c.e[0].zero && !c.e[0].present && !c.e[0].data && !c.e[0].has_offset);
        assert_true(c.e[1].present && c.e[1].data && c.e[1].offset == 327680);
        assert_int_equal(c.e[2].length, 1048576 - 131072);
}

static void test_chain_depth(void **state)
{
        static const struct seg top_segs[] = {{0, 65536, D, 1000 * 512, &file_a}};
        static const struct seg base_segs[] = {{65536, 65536, D, 2000 * 512, &file_b}};
        struct script ts = {top_segs, 1, 0}, bs = {base_segs, 1, 0};
        struct ia_image top, base;
        struct collected c = {0};

        (void)state;
        image(&top, &ts, 1048576, true);
        image(&base, &bs, 262144, true);
        top.backing_img = &base;
        run(&top, 0, IA_MAP_NO_MAX, 0, &c, 0);
        assert_int_equal(c.n, 4);
        assert_int_equal(c.e[0].depth, 0);
        assert_int_equal(c.e[1].depth, 1); /* base data */
        assert_true(c.e[1].data && c.e[1].offset == 2000 * 512);
        /* Unallocated everywhere inside the base: the bottom synthesises zero. */
        assert_int_equal(c.e[2].start, 131072);
        assert_int_equal(c.e[2].length, 262144 - 131072);
        assert_int_equal(c.e[2].depth, 1);
        assert_true(c.e[2].zero && !c.e[2].present);
        /* Beyond the backing file's end: zero at the top. */
        assert_int_equal(c.e[3].start, 262144);
        assert_int_equal(c.e[3].depth, 0);
        assert_true(c.e[3].zero && !c.e[3].present);
}

static void test_human_coalesce(void **state)
{
        static const struct seg segs[] = {
            {0, 4096, D, 0, &file_a},
            {4096, 4096, D | Z, 4096, &file_a},
            {8192, 4096, Z | IA_BS_OFFSET, 8192, &file_a},
        };
        struct script s = {segs, 3, 0};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &s, 12288, false);
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, 0);
        assert_int_equal(c.n, 3);
        run(&img, 0, IA_MAP_NO_MAX, IA_MAP_HUMAN_COALESCE, &c, 0);
        assert_int_equal(c.n, 2);
        assert_int_equal(c.e[1].start, 4096);
        assert_int_equal(c.e[1].length, 8192);
        assert_true(c.e[1].zero && !c.e[1].data);
}

static void test_compressed_merge_flag(void **state)
{
        static const struct seg segs[] = {
            {0, 4096, IA_BS_DATA | IA_BS_COMPRESSED, 0, NULL},
            {4096, 4096, IA_BS_DATA, 0, NULL},
        };
        struct script s = {segs, 2, 0};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &s, 8192, false);
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, 0);
        assert_int_equal(c.n, 1);
        assert_true(c.e[0].compressed);
        run(&img, 0, IA_MAP_NO_MAX, IA_MAP_MERGE_COMPRESSED, &c, 0);
        assert_int_equal(c.n, 2);
        assert_false(c.e[1].compressed);
}

static void test_windows_and_placeholder(void **state)
{
        static const struct seg segs[] = {{0, 65536, D, 0, &file_a}};
        struct script s = {segs, 1, 0};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &s, 65536, false);
        run(&img, 1000, 1, 0, &c, 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.e[0].start, 1000);
        assert_int_equal(c.e[0].length, 1);
        assert_int_equal(c.e[0].offset, 1000);
        /* Start at or past the end: the placeholder. */
        run(&img, 65536, IA_MAP_NO_MAX, 0, &c, 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.e[0].start, 65536);
        assert_int_equal(c.e[0].length, 0);
        assert_false(c.e[0].present || c.e[0].data || c.e[0].zero || c.e[0].has_offset);
        /* Zero length, and a start + length past INT64_MAX (qemu's signed overflow). */
        run(&img, 0, 0, 0, &c, 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.e[0].length, 0);
        run(&img, 1, INT64_MAX, 0, &c, 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.e[0].start, 1);
        assert_int_equal(c.e[0].length, 0);
        run(&img, 0, INT64_MAX, 0, &c, 0);
        assert_int_equal(c.e[0].length, 65536);
}

static void test_errors_mid_way(void **state)
{
        static const struct seg segs[] = {
            {0, 4096, D, 0, &file_a},
            {4096, 4096, D, 100000, &file_a},
            {8192, 4096, D, 200000, &file_a},
        };
        struct script s = {segs, 3, 8192};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &s, 65536, false);
        /* The entry before the failing query was complete: it was passed on. */
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, -1);
        assert_int_equal(c.n, 1);
        assert_false(c.last_seen);
        /* A callback that refuses stops the map. */
        s.fail_at = 0;
        c.fail_on = 2;
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, -1);
        assert_int_equal(c.n, 1);
}

static int findings;

static void count_finding(void *opaque, const struct ia_image *img, const char *code,
                          const char *msg)
{
        (void)opaque;
        (void)img;
        (void)msg;
        assert_string_equal(code, "data-past-eof");
        findings++;
}

static void test_past_eof_is_a_finding(void **state)
{
        static struct ia_source small = {.size = 8192};
        static struct ia_file f = {.name = (char *)"small.img", .src = &small};
        static const struct seg segs[] = {
            {0, 4096, D, 0, &f},
            {4096, 8192, D, 4096, &f}, /* ends 4096 bytes past the end */
            {12288, 4096, D, 65536, &f},
        };
        struct script sc = {segs, 3, 0};
        struct ia_open_ctx ctx = {.on_finding = count_finding};
        struct ia_image img;
        struct collected c = {0};

        (void)state;
        image(&img, &sc, 16384, false);
        img.ctx = &ctx;
        findings = 0;
        run(&img, 0, IA_MAP_NO_MAX, 0, &c, 0);
        /* The map is what it is; the image gets one finding, not one per entry. */
        assert_int_equal(c.n, 2);
        assert_int_equal(findings, 1);
}

static void test_deadline(void **state)
{
        static const struct seg segs[] = {{0, 4096, D, 0, &file_a}};
        struct script sc = {segs, 1, 0};
        struct ia_open_ctx ctx = {.deadline_ns = 1};
        struct ia_map_opts o = {.max_len = IA_MAP_NO_MAX};
        struct ia_image img;
        struct collected c = {0};
        struct ia_error err;

        (void)state;
        image(&img, &sc, 4096, false);
        img.ctx = &ctx;
        assert_int_equal(ia_map(&img, &o, collect, &c, &err), -1);
        assert_int_equal(err.cat, IA_ERR_LIMIT);
        assert_string_equal(err.reason, "budget");
        ctx.deadline_ns = ia_clock_ns() + 60ull * 1000000000u;
        assert_int_equal(ia_map(&img, &o, collect, &c, &err), 0);
}

static void test_mergeable_rule(void **state)
{
        struct ia_map_entry a = {.start = 0,
                                 .length = 10,
                                 .data = true,
                                 .has_offset = true,
                                 .offset = 100,
                                 .file = &file_a};
        struct ia_map_entry b = a;

        (void)state;
        b.start = 10;
        b.offset = 110;
        assert_true(ia_map_mergeable(&a, &b, 0));
        b.depth = 1;
        assert_false(ia_map_mergeable(&a, &b, 0));
        b.depth = 0;
        b.present = true;
        assert_false(ia_map_mergeable(&a, &b, 0));
        b.present = false;
        b.offset = 111;
        assert_false(ia_map_mergeable(&a, &b, 0));
        b.offset = 110;
        b.has_offset = false;
        assert_false(ia_map_mergeable(&a, &b, 0));
        a.length = 0;
        b.has_offset = true;
        assert_false(ia_map_mergeable(&a, &b, 0));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_merge_host_contiguous),
            cmocka_unit_test(test_cow_without_backing_is_zero),
            cmocka_unit_test(test_chain_depth),
            cmocka_unit_test(test_human_coalesce),
            cmocka_unit_test(test_compressed_merge_flag),
            cmocka_unit_test(test_windows_and_placeholder),
            cmocka_unit_test(test_errors_mid_way),
            cmocka_unit_test(test_mergeable_rule),
            cmocka_unit_test(test_past_eof_is_a_finding),
            cmocka_unit_test(test_deadline),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
