/*
 * Helpers shared by the driver unit tests: open an image held in memory,
 * expect an open to fail with a category, check one block-status answer of
 * a driver alone.  Include after <cmocka.h>.
 */
#ifndef IA_IMGTEST_H
#define IA_IMGTEST_H

#include <string.h>

#include "chain.h"
#include "image.h"

/* Open buf[0..len) (copied) as an image named "mem" with fmt (NULL: probe). */
static inline int imgtest_open(const struct ia_open_ctx *ctx, const uint8_t *buf, size_t len,
                               const char *fmt, struct ia_image **img, struct ia_error *err)
{
        struct ia_source *src;
        struct ia_file *file;

        ia_error_clear(err);
        src = ia_source_memory(buf, len, true, err);
        assert_non_null(src);
        file = ia_file_new(src, "mem", err);
        assert_non_null(file);
        return ia_image_open(ctx, file, fmt, img, err);
}

/* The open must fail, with category cat and a message, and leave nothing behind. */
static inline void imgtest_expect_open_fail(const struct ia_open_ctx *ctx, const uint8_t *buf,
                                            size_t len, const char *fmt, enum ia_errcat cat)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        assert_int_equal(imgtest_open(ctx, buf, len, fmt, &img, &err), -1);
        assert_null(img);
        if (err.cat != cat)
                fail_msg("%s: expected category %s, got %s (%s)", fmt ? fmt : "probed",
                         ia_errcat_name(cat), ia_errcat_name(err.cat), err.msg);
        assert_true(err.msg[0] != '\0');
}

/* The driver alone answers [off, end) with a run of len bytes, flags, and host offset. */
static inline void imgtest_expect_status(struct ia_image *img, uint64_t off, uint64_t len,
                                         unsigned flags, uint64_t host)
{
        struct ia_bstatus st;
        struct ia_error err;

        memset(&st, 0, sizeof(st));
        ia_error_clear(&err);
        if (img->drv->block_status(img, off, img->size - off, &st, &err) < 0)
                fail_msg("block status at %llu failed: %s", (unsigned long long)off, err.msg);
        if (st.len != len || st.flags != flags)
                fail_msg("at %llu: got len %llu flags 0x%x, expected len %llu flags 0x%x",
                         (unsigned long long)off, (unsigned long long)st.len, st.flags,
                         (unsigned long long)len, flags);
        if (flags & IA_BS_OFFSET) {
                assert_int_equal(st.host_off, host);
                assert_ptr_equal(st.file, img->file);
        }
}

#endif
