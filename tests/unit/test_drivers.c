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

static void test_unmapped_formats(void **state)
{
        static uint8_t bochs[512], cloop[512];
        static const char cloop_magic[] = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop\n";
        const struct ia_open_ctx ctx = {.compat = IA_DEFAULT_COMPAT};
        struct ia_probe p = {.head = bochs, .head_len = sizeof(bochs), .size = 1 << 20};
        struct ia_source *src;
        struct ia_file *file;
        struct ia_image *img = NULL;
        struct ia_error err;

        (void)state;
        memcpy(bochs, "Bochs Virtual HD Image", 23);
        memcpy(bochs + 32, "Redolog", 8);
        memcpy(bochs + 48, "Growing", 8);
        bochs[66] = 2; /* version 0x20000, little-endian */
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_bochs);
        bochs[66] = 3;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        bochs[66] = 2;
        memcpy(cloop, cloop_magic, sizeof(cloop_magic) - 1);
        p.head = cloop;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_cloop);

        /* Recognised, then refused by name: never mapped as raw. */
        src = ia_source_memory(bochs, sizeof(bochs), false, &err);
        file = ia_file_new(src, "disk.img", &err);
        assert_int_equal(ia_image_open(&ctx, file, NULL, &img, &err), -1);
        assert_null(img);
        assert_int_equal(err.cat, IA_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "bochs"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table_is_sound),          cmocka_unit_test(test_find),
            cmocka_unit_test(test_probe_falls_back_to_raw), cmocka_unit_test(test_probe_qcow2),
            cmocka_unit_test(test_probes_are_total),        cmocka_unit_test(test_unmapped_formats),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
