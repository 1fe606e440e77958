/*
 * The driver table: its self-check, lookup, and probing (raw only as the
 * fallback, never a probe winner).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "drivers.h"

static void test_table_is_sound(void **state)
{
        struct ia_error err;
        size_t n = 0;

        (void)state;
        assert_int_equal(ia_drivers_check(&err), 0);
        while (ia_drivers[n])
                n++;
        assert_true(n >= 2);
        assert_ptr_equal(ia_drivers[n - 1], &ia_drv_raw);
}

static void test_find(void **state)
{
        (void)state;
        assert_ptr_equal(ia_driver_find("raw"), &ia_drv_raw);
        assert_ptr_equal(ia_driver_find("qcow2"), &ia_drv_qcow2);
        assert_null(ia_driver_find("nosuch"));
        assert_null(ia_driver_find(""));
}

static void test_probe_falls_back_to_raw(void **state)
{
        uint8_t zeros[4096] = {0};
        struct ia_probe p = {.head = zeros, .head_len = sizeof(zeros), .size = 1 << 20};

        (void)state;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        p.head_len = 0;
        p.size = 0;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
}

static void test_probe_qcow2(void **state)
{
        uint8_t h[512] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
        struct ia_probe p = {.head = h, .head_len = sizeof(h), .size = 1 << 20};

        (void)state;
        h[20] = 0;
        h[23] = 16; /* cluster_bits */
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_qcow2);
}

static void test_probes_are_total(void **state)
{
        /* Every probe copes with tiny and empty inputs. */
        uint8_t b[8] = {'Q', 'F', 'I', 0xfb, 'K', 'D', 'M', 'V'};
        struct ia_probe p = {.head = b, .size = 8};

        (void)state;
        for (size_t len = 0; len <= sizeof(b); len++) {
                p.head_len = len;
                for (size_t i = 0; ia_drivers[i]; i++)
                        if (ia_drivers[i]->probe)
                                assert_true(ia_drivers[i]->probe(&p) >= 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table_is_sound),          cmocka_unit_test(test_find),
            cmocka_unit_test(test_probe_falls_back_to_raw), cmocka_unit_test(test_probe_qcow2),
            cmocka_unit_test(test_probes_are_total),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
