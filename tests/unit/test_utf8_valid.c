/*
 * schema/store_write.c: ia_utf8_valid() skips ASCII eight bytes at a time; a
 * multi-byte sequence, valid or not, is judged the same at every offset and
 * length around those words.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "store.h"

static void test_every_offset(void **state)
{
        static const struct {
                const char *seq;
                bool ok;
        } seqs[] = {
            {"\xc3\xa9", true},
            {"\xe2\x82\xac", true},
            {"\xf0\x9f\x92\xbe", true},
            {"\xff", false},
            {"\xc3", false},
            {"\xe2\x82", false},
            {"\xc0\xaf", false},
            {"\xed\xa0\x80", false}, /* a surrogate */
            {"\xf4\x90\x80\x80", false},
            {"\x80", false},
        };
        char buf[64];

        (void)state;
        for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
                size_t len = strlen(seqs[k].seq);

                for (size_t off = 0; off < 20; off++) {
                        for (size_t tail = 0; tail < 12; tail++) {
                                memset(buf, 'a', sizeof(buf));
                                memcpy(buf + off, seqs[k].seq, len);
                                assert_int_equal(ia_utf8_valid(buf, off + len + tail), seqs[k].ok);
                                /* cut inside the sequence: never valid */
                                if (len > 1 && seqs[k].ok)
                                        assert_false(ia_utf8_valid(buf, off + len - 1));
                        }
                }
        }
        memset(buf, 'a', sizeof(buf));
        for (size_t n = 0; n <= sizeof(buf); n++)
                assert_true(ia_utf8_valid(buf, n));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_offset),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
