/*
 * scanner/rawdisk.c: ia_rawdisk_name_matches() decides "*SUFFIX" globs by a
 * byte comparison; it must agree with fnmatch() on every name, for those
 * globs and for globs that still go to fnmatch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fnmatch.h>
#include <string.h>

#include "rawdisk.h"

static void test_agrees_with_fnmatch(void **state)
{
        static const char *const globs[] = {
            "*.img", "*.raw",    "*.iso", "*",    "*img",     "*.IMG",
            "*.i?g", "*.[ir]aw", "disk*", "*\\*", "*.tar.gz", "",
        };
        static const char *const names[] = {
            "a.img",         ".img",      "img",   "a.img.bak", "A.IMG",  "x.raw",
            "dir/sub/b.iso", "dir/c.txt", "disk0", "a.i_g",     "b.raw",  "weird*",
            "a.tar.gz",      "tar.gz",    "",      "dir/",      "a.iimg",
        };

        (void)state;
        for (size_t g = 0; g < sizeof(globs) / sizeof(globs[0]); g++) {
                for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                        const char *const one[] = {globs[g], NULL};
                        const char *base = strrchr(names[i], '/');

                        base = base ? base + 1 : names[i];
                        assert_int_equal(ia_rawdisk_name_matches(names[i], one),
                                         fnmatch(globs[g], base, 0) == 0);
                }
        }
        assert_int_equal(ia_rawdisk_name_matches("a.img", NULL), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_agrees_with_fnmatch),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
