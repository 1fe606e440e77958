/*
 * Size parsing must accept and refuse exactly what qemu-img map accepts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "size.h"

static void expect_ok(const char *s, uint64_t want, bool want_hex_suffix)
{
        uint64_t v = 0;
        bool hs = false;

        assert_int_equal(ia_parse_size(s, &v, &hs), 0);
        assert_true(v == want);
        assert_int_equal(hs, want_hex_suffix);
}

static void expect_err(const char *s, int want)
{
        uint64_t v = 12345;
        bool hs;

        assert_int_equal(ia_parse_size(s, &v, &hs), want);
        assert_true(v == 12345);
}

static void test_plain(void **state)
{
        (void)state;
        expect_ok("0", 0, false);
        expect_ok("4096", 4096, false);
        expect_ok("12b", 12, false);
        expect_ok("12B", 12, false);
        expect_ok("1k", 1024, false);
        expect_ok("1K", 1024, false);
        expect_ok("2M", 2ull << 20, false);
        expect_ok("3g", 3ull << 30, false);
        expect_ok("1T", 1ull << 40, false);
        expect_ok("1P", 1ull << 50, false);
        expect_ok("7E", 7ull << 60, false);
        expect_ok(" 12", 12, false);
        expect_ok("18446744073709551615", UINT64_MAX, false);
}

static void test_fractions(void **state)
{
        (void)state;
        expect_ok("1.5k", 1536, false);
        expect_ok("1.k", 1024, false);
        expect_ok("0.5M", 512 * 1024, false);
        expect_ok("1.0", 1, false);
        expect_err("1.5", -EINVAL);
        expect_err("1.5e3k", -EINVAL);
        expect_err("1e3", -EINVAL);
}

static void test_hex(void **state)
{
        (void)state;
        expect_ok("0x1000", 4096, false);
        expect_ok("0X10", 16, false);
        expect_ok("0x1k", 1024, true);
        expect_err("0x1.5k", -EINVAL);
        expect_err("0x", -EINVAL);
}

static void test_invalid(void **state)
{
        (void)state;
        expect_err("", -EINVAL);
        expect_err("-1", -EINVAL);
        expect_err("1-", -EINVAL);
        expect_err("12x", -EINVAL);
        expect_err("12kb", -EINVAL);
        expect_err("k", -EINVAL);
        expect_err("18446744073709551616", -ERANGE);
        expect_err("16E", -ERANGE);
        expect_err("17179869184G", -ERANGE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_plain),
            cmocka_unit_test(test_fractions),
            cmocka_unit_test(test_hex),
            cmocka_unit_test(test_invalid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
