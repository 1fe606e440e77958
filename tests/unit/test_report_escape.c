/*
 * Unit tests of the report's one escaping function and the format quoting
 * on top of it: a name can never forge a line, a CSV record, an HTML tag or
 * a Prometheus label, and IEC units print as documented.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "escape.h"
#include "rbuf.h"

static void check_escape(const char *in, size_t n, const char *want)
{
        char *got = ia_escape_dup(in, n);

        assert_non_null(got);
        assert_string_equal(got, want);
        assert_true(ia_escape_is_clean(in, n) == (strlen(want) == n && memcmp(in, want, n) == 0));
        free(got);
}

static void test_escape_name(void **state)
{
        (void)state;
        check_escape("plain/name.qcow2", 16, "plain/name.qcow2");
        check_escape("a\nb", 3, "a\\nb");
        check_escape("a\\nb", 4, "a\\\\nb");
        check_escape("t\tr\r", 4, "t\\tr\\r");
        check_escape("\x1b[31m", 5, "\\x1b[31m");
        check_escape("\x7f", 1, "\\x7f");
        check_escape("\xff\xfe", 2, "\\xff\\xfe");
        check_escape("caf\xc3\xa9", 5, "caf\xc3\xa9"); /* valid UTF-8 kept */
        check_escape("\xc3", 1, "\\xc3");              /* truncated sequence */
        check_escape("\xe2\x80\xae"
                     "evil",
                     7, "\\u202eevil");             /* bidi override */
        check_escape("\xd8\x9c", 2, "\\u061c");     /* Arabic letter mark (bidi) */
        check_escape("\xe2\x81\xa6", 3, "\\u2066"); /* left-to-right isolate */
        check_escape("\xc2\x85", 2, "\\u0085");     /* C1 next line */
        check_escape("\xe2\x80\xa8", 3, "\\u2028"); /* line separator */
        check_escape("a\0b", 3, "a\\x00b");
        check_escape("", 0, "");
}

static void check_path(const char *in, size_t plain, const char *want)
{
        char *got = ia_escape_path_dup(in, strlen(in), plain);

        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
}

static void test_escape_path(void **state)
{
        (void)state;
        /* a file of the file system: '!' too is escaped */
        check_path("s/a.tar!m.qcow2", 15, "s/a.tar\\x21m.qcow2");
        check_path("s/caf\xc3\xa9!\n", 9, "s/caf\xc3\xa9\\x21\\n");
        /* a member: the archive part as a file, the separator and member as is */
        check_path("s/a.tar!m.qcow2", 7, "s/a.tar!m.qcow2");
        check_path("s/x!y.tar!in.tar!m!", 9, "s/x\\x21y.tar!in.tar!m!");
        check_path("!", 0, "!");
        check_path("", 0, "");
}

static void test_quoting(void **state)
{
        struct ia_rbuf b;

        (void)state;
        ia_rbuf_init(&b);
        ia_csv_field(&b, "plain");
        ia_rbuf_addc(&b, '|');
        ia_csv_field(&b, "a,b");
        ia_rbuf_addc(&b, '|');
        ia_csv_field(&b, "say \"hi\"");
        assert_string_equal(b.buf, "plain|\"a,b\"|\"say \"\"hi\"\"\"");
        ia_rbuf_reset(&b);
        ia_html_text(&b, "<a href='x'>&\"");
        assert_string_equal(b.buf, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
        ia_rbuf_reset(&b);
        ia_prom_label(&b, "a\\nb\"c");
        assert_string_equal(b.buf, "a\\\\nb\\\"c");
        ia_rbuf_release(&b);
}

static void test_iec(void **state)
{
        char buf[32];

        (void)state;
        ia_iec(buf, sizeof(buf), 0);
        assert_string_equal(buf, "0 B");
        ia_iec(buf, sizeof(buf), 1023);
        assert_string_equal(buf, "1023 B");
        ia_iec(buf, sizeof(buf), 1024);
        assert_string_equal(buf, "1.0 KiB");
        ia_iec(buf, sizeof(buf), 1536);
        assert_string_equal(buf, "1.5 KiB");
        ia_iec(buf, sizeof(buf), 1048575);
        assert_string_equal(buf, "1.0 MiB");
        ia_iec(buf, sizeof(buf), 20ull << 30);
        assert_string_equal(buf, "20.0 GiB");
        ia_iec(buf, sizeof(buf), UINT64_MAX);
        assert_string_equal(buf, "16.0 EiB");
}

static void test_utf8_ok(void **state)
{
        (void)state;
        assert_true(ia_utf8_ok("abc\xc3\xa9", 5));
        assert_false(ia_utf8_ok("a\0b", 3));
        assert_false(ia_utf8_ok("\xed\xa0\x80", 3)); /* surrogate */
        assert_false(ia_utf8_ok("\xc0\xaf", 2));     /* overlong */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_escape_name), cmocka_unit_test(test_escape_path),
            cmocka_unit_test(test_quoting),     cmocka_unit_test(test_iec),
            cmocka_unit_test(test_utf8_ok),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
