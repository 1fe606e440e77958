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

#include "chain.h"
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
        /* qemu's "file" protocol maps a plain file as raw does */
        assert_ptr_equal(ia_driver_find("file"), &ia_drv_raw);
        assert_null(ia_driver_find("nosuch"));
        assert_null(ia_driver_find("File"));
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

static void test_probe_bochs_cloop(void **state)
{
        static uint8_t bochs[512], cloop[512];
        static const char cloop_magic[] = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && "
                                          "mount -r -t iso9660 /dev/cloop $1\n";
        struct ia_probe p = {.head = bochs, .head_len = sizeof(bochs), .size = 1 << 20};

        (void)state;
        memcpy(bochs, "Bochs Virtual HD Image", 23);
        memcpy(bochs + 32, "Redolog", 8);
        memcpy(bochs + 48, "Growing", 8);
        bochs[66] = 2; /* version 0x20000, little-endian */
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_bochs);
        bochs[66] = 1; /* version 1.0 */
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_bochs);
        bochs[66] = 3;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        bochs[66] = 2;
        /* qemu probes only the growing subtype: the others are raw to it. */
        memcpy(bochs + 48, "Undoable", 9);
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        memcpy(bochs + 48, "Growing\0", 9);
        /* A header cut short is padded with zeroes, as qemu's probe buffer is. */
        p.head_len = 68;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_bochs);

        memcpy(cloop, cloop_magic, sizeof(cloop_magic) - 1);
        p.head = cloop;
        p.head_len = sizeof(cloop);
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_cloop);
        /* The whole magic, the modprobe line included. */
        p.head_len = sizeof(cloop_magic) - 2;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        p.head_len = sizeof(cloop);
        cloop[40] = 'X';
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table_is_sound),
            cmocka_unit_test(test_find),
            cmocka_unit_test(test_probe_falls_back_to_raw),
            cmocka_unit_test(test_probe_qcow2),
            cmocka_unit_test(test_probes_are_total),
            cmocka_unit_test(test_probe_bochs_cloop),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
