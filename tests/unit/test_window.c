/*
 * formats/window.c: bounded windows over on-disk tables.  Reads start at
 * the entry looked up (or at a multiple of cap), stop at the table's end,
 * are counted through the fault injector, and never go past the file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "source.h"
#include "window.h"

#define TABLE_OFF 100u
#define ENTRIES   300u

static uint8_t file[TABLE_OFF + ENTRIES * 4];

static struct ia_source *make_source(uint64_t *reads)
{
        struct ia_error err = {0};
        struct ia_source *mem, *src;

        for (uint32_t i = 0; i < ENTRIES; i++) {
                uint8_t *p = file + TABLE_OFF + i * 4;

                p[0] = (uint8_t)i;
                p[1] = (uint8_t)(i >> 8);
                p[2] = 0xa5;
                p[3] = 0x5a;
        }
        mem = ia_source_memory(file, sizeof(file), false, &err);
        assert_non_null(mem);
        src = ia_source_faulty(mem, 0, reads, &err);
        assert_non_null(src);
        ia_source_unref(mem);
        return src;
}

static uint32_t entry_of(struct ia_window *w, uint64_t index)
{
        struct ia_error err = {0};
        const uint8_t *p = ia_window_entry(w, index, &err);

        assert_non_null(p);
        return ia_le32(p);
}

static void test_reads_runs_and_caches(void **state)
{
        uint64_t reads = 0;
        struct ia_source *src = make_source(&reads);
        struct ia_window *w = calloc(1, sizeof(*w));

        (void)state;
        assert_non_null(w);
        ia_window_init(w, src, TABLE_OFF, ENTRIES, 4, 64, 0, "test table");
        assert_true(ia_window_fits(w));
        assert_int_equal(ia_window_bytes(w), ENTRIES * 4);
        assert_int_equal(entry_of(w, 10), 0x5aa5000au);
        assert_int_equal(reads, 1);
        assert_int_equal(w->first, 10);
        assert_int_equal(w->n, 64);
        assert_int_equal(entry_of(w, 73), 0x5aa50049u); /* the run's last entry: cached */
        assert_int_equal(reads, 1);
        assert_int_equal(entry_of(w, 9), 0x5aa50009u); /* before the run: a new read */
        assert_int_equal(reads, 2);
        /* Near the end the run stops at the table's last entry. */
        assert_int_equal(entry_of(w, 290), 0x5aa50122u);
        assert_int_equal(w->n, 10);
        assert_int_equal(entry_of(w, ENTRIES - 1), 0x5aa5012bu);
        assert_int_equal(reads, 3);
        free(w);
        ia_source_unref(src);
}

static void test_aligned(void **state)
{
        uint64_t reads = 0;
        struct ia_source *src = make_source(&reads);
        struct ia_window *w = calloc(1, sizeof(*w));

        (void)state;
        assert_non_null(w);
        ia_window_init(w, src, TABLE_OFF, ENTRIES, 4, 64, IA_WINDOW_ALIGNED, "test table");
        assert_int_equal(entry_of(w, 70), 0x5aa50046u);
        assert_int_equal(w->first, 64);
        assert_int_equal(entry_of(w, 127), 0x5aa5007fu);
        assert_int_equal(entry_of(w, 64), 0x5aa50040u);
        assert_int_equal(reads, 1);
        assert_int_equal(entry_of(w, 299), 0x5aa5012bu);
        assert_int_equal(w->first, 256);
        assert_int_equal(w->n, 44);
        /* A cap larger than the buffer is cut to fit. */
        ia_window_init(w, src, TABLE_OFF, ENTRIES, 8, 100000, 0, "test table");
        assert_int_equal(w->cap, IA_WINDOW_BYTES / 8);
        free(w);
        ia_source_unref(src);
}

static void test_move(void **state)
{
        uint64_t reads = 0;
        struct ia_source *src = make_source(&reads);
        struct ia_window *w = calloc(1, sizeof(*w));

        (void)state;
        assert_non_null(w);
        ia_window_init(w, src, TABLE_OFF, 16, 4, 16, 0, "test table");
        assert_int_equal(entry_of(w, 1), 0x5aa50001u);
        ia_window_move(w, TABLE_OFF); /* the same table: the cache stays */
        assert_int_equal(entry_of(w, 2), 0x5aa50002u);
        assert_int_equal(reads, 1);
        ia_window_move(w, TABLE_OFF + 16 * 4); /* the next table: entry 2 is entry 18 */
        assert_int_equal(entry_of(w, 2), 0x5aa50012u);
        assert_int_equal(reads, 2);
        free(w);
        ia_source_unref(src);
}

static void test_bounds(void **state)
{
        uint64_t reads = 0;
        struct ia_source *src = make_source(&reads);
        struct ia_window *w = calloc(1, sizeof(*w));
        struct ia_error err = {0};

        (void)state;
        assert_non_null(w);
        /* An index past the table is refused without a read. */
        ia_window_init(w, src, TABLE_OFF, ENTRIES, 4, 64, 0, "test table");
        assert_null(ia_window_entry(w, ENTRIES, &err));
        assert_int_equal(err.cat, IA_ERR_INTERNAL);
        assert_non_null(strstr(err.msg, "test table"));
        assert_int_equal(reads, 0);
        /* A table one entry too long does not fit; its last entry is a truncated read. */
        ia_window_init(w, src, TABLE_OFF, ENTRIES + 1, 4, 64, 0, "test table");
        assert_false(ia_window_fits(w));
        memset(&err, 0, sizeof(err));
        assert_null(ia_window_entry(w, ENTRIES, &err));
        assert_int_equal(err.cat, IA_ERR_TRUNCATED);
        assert_int_equal(w->n, 0);
        /* Sizes and offsets that overflow. */
        ia_window_init(w, src, TABLE_OFF, UINT64_MAX / 2, 4, 64, 0, "test table");
        assert_false(ia_window_fits(w));
        assert_int_equal(ia_window_bytes(w), UINT64_MAX);
        memset(&err, 0, sizeof(err));
        assert_null(ia_window_entry(w, UINT64_MAX / 2 - 1, &err));
        assert_int_equal(err.cat, IA_ERR_TRUNCATED);
        ia_window_init(w, src, UINT64_MAX - 2, 1, 4, 64, 0, "test table");
        assert_false(ia_window_fits(w));
        ia_window_init(w, src, sizeof(file), 0, 4, 64, 0, "test table");
        assert_true(ia_window_fits(w)); /* an empty table at the end fits */
        free(w);
        ia_source_unref(src);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_reads_runs_and_caches),
            cmocka_unit_test(test_aligned),
            cmocka_unit_test(test_move),
            cmocka_unit_test(test_bounds),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
