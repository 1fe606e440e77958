/*
 * scanner/hmap.c: keys of any length (empty, long, sharing prefixes),
 * replacement, growth through many keys (beyond a reserved size), iteration over every value once,
 * and keys bigger than a block.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

static void count_value(void *value, void *opaque)
{
        size_t *seen = opaque;

        seen[(uintptr_t)value]++;
}

static void test_many_keys(void **state)
{
        enum { N = 100000 };
        struct ia_hmap m;
        char key[64];
        size_t *seen = calloc(N + 1, sizeof(*seen));

        (void)state;
        assert_non_null(seen);
        ia_hmap_init(&m);
        assert_null(ia_hmap_get(&m, "x", 1));
        assert_int_equal(ia_hmap_reserve(&m, N / 2), 0); /* half: it still grows past it */
        for (uintptr_t i = 1; i <= N; i++) {
                int n = snprintf(key, sizeof(key), "store/d%04u/f%06u.txt", (unsigned)(i % 2052),
                                 (unsigned)i);

                assert_int_equal(ia_hmap_put(&m, key, (size_t)n, (void *)i), 0);
        }
        assert_int_equal(m.count, N);
        for (uintptr_t i = 1; i <= N; i++) {
                int n = snprintf(key, sizeof(key), "store/d%04u/f%06u.txt", (unsigned)(i % 2052),
                                 (unsigned)i);

                assert_ptr_equal(ia_hmap_get(&m, key, (size_t)n), (void *)i);
                /* a prefix or an extension of a key is another key */
                assert_null(ia_hmap_get(&m, key, (size_t)n - 1));
        }
        ia_hmap_each(&m, count_value, seen);
        for (size_t i = 1; i <= N; i++)
                assert_int_equal(seen[i], 1);
        free(seen);
        ia_hmap_release(&m);
        assert_int_equal(m.count, 0);
        assert_null(ia_hmap_get(&m, "store", 5));
}

static void test_replace_and_odd_keys(void **state)
{
        struct ia_hmap m;
        struct ia_fid_key a = {1, 2}, b = {2, 1};
        size_t big = (size_t)1 << 20;
        char *k = malloc(big);

        (void)state;
        assert_non_null(k);
        memset(k, 'k', big);
        ia_hmap_init(&m);
        assert_int_equal(ia_hmap_put(&m, "", 0, (void *)1), 0);
        assert_int_equal(ia_hmap_put(&m, &a, sizeof(a), (void *)2), 0);
        assert_int_equal(ia_hmap_put(&m, &b, sizeof(b), (void *)3), 0);
        assert_int_equal(ia_hmap_put(&m, k, big, (void *)4), 0);
        assert_int_equal(ia_hmap_put(&m, k, 7, (void *)5), 0);
        assert_int_equal(ia_hmap_put(&m, &a, sizeof(a), (void *)6), 0); /* replaced */
        assert_int_equal(m.count, 5);
        assert_ptr_equal(ia_hmap_get(&m, "", 0), (void *)1);
        assert_ptr_equal(ia_hmap_get(&m, &a, sizeof(a)), (void *)6);
        assert_ptr_equal(ia_hmap_get(&m, &b, sizeof(b)), (void *)3);
        assert_ptr_equal(ia_hmap_get(&m, k, big), (void *)4);
        assert_ptr_equal(ia_hmap_get(&m, k, 7), (void *)5);
        assert_null(ia_hmap_get(&m, k, 8));
        k[big - 1] = 'x';
        assert_null(ia_hmap_get(&m, k, big));
        free(k);
        ia_hmap_release(&m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_many_keys),
            cmocka_unit_test(test_replace_and_odd_keys),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
