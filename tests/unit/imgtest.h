/*
 * Helpers shared by the driver unit tests: open an image held in memory
 * (optionally behind a fault injector), expect an open to succeed or to fail
 * with a category, check one block-status answer of a driver alone, and run
 * an image under a failing read at every position.  Include after
 * <cmocka.h>; tests/unit/bytes_build.h builds the images.
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

/* How imgtest_open_mem() opens a buffer; zero fields take the defaults. */
struct imgtest_mem {
        const char *name;   /* the file's name; NULL: "mem" */
        const char *fmt;    /* NULL: probe */
        uint64_t allocated; /* bytes the source says are allocated; 0: its length */
        uint64_t fail_at;   /* 0: no fault; N: every read from the Nth on fails */
};

/* Open buf[0..len) (not copied) as how says; 0, or -1 with *err. */
static inline int imgtest_open_mem(const struct ia_open_ctx *ctx, const void *buf, size_t len,
                                   const struct imgtest_mem *how, struct ia_image **img,
                                   struct ia_error *err)
{
        struct ia_source *src = ia_source_memory(buf, len, false, err);
        struct ia_file *f;

        if (!src)
                return -1;
        if (how->allocated)
                src->allocated = how->allocated;
        if (how->fail_at) {
                struct ia_source *faulty = ia_source_faulty(src, how->fail_at, NULL, err);

                ia_source_unref(src);
                if (!faulty)
                        return -1;
                src = faulty;
        }
        f = ia_file_new(src, how->name ? how->name : "mem", err);
        if (!f)
                return -1;
        return ia_image_open(ctx, f, how->fmt, img, err);
}

/* The open must succeed. */
static inline struct ia_image *imgtest_must_open(const struct ia_open_ctx *ctx, const void *buf,
                                                 size_t len, const struct imgtest_mem *how)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        if (imgtest_open_mem(ctx, buf, len, how, &img, &err) < 0)
                fail_msg("open failed: %s", err.msg);
        return img;
}

/* The open must fail with a message and leave nothing behind; its category. */
static inline enum ia_errcat imgtest_open_fails(const struct ia_open_ctx *ctx, const void *buf,
                                                size_t len, const struct imgtest_mem *how)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        ia_error_clear(&err);
        if (imgtest_open_mem(ctx, buf, len, how, &img, &err) == 0) {
                ia_image_free(img);
                fail_msg("open succeeded");
        }
        assert_null(img);
        assert_true(err.msg[0] != '\0');
        return err.cat;
}

/* The driver alone answers at off, into *st (first filled with fill bytes). */
static inline void imgtest_status(struct ia_image *img, uint64_t off, struct ia_bstatus *st,
                                  int fill)
{
        struct ia_error err;

        memset(st, fill, sizeof(*st));
        if (img->drv->block_status(img, off, img->size - off, st, &err) < 0)
                fail_msg("block_status(%llu) failed: %s", (unsigned long long)off, err.msg);
}

/* The driver alone must fail at off with category cat (and, if msg, a message). */
static inline void imgtest_expect_status_fail(struct ia_image *img, uint64_t off,
                                              enum ia_errcat cat, bool msg)
{
        struct ia_bstatus st;
        struct ia_error err;

        memset(&st, 0, sizeof(st));
        ia_error_clear(&err);
        assert_int_equal(img->drv->block_status(img, off, img->size - off, &st, &err), -1);
        assert_int_equal(err.cat, cat);
        if (msg)
                assert_true(err.msg[0] != '\0');
}

/*
 * Every read failing in turn (from the Nth on, N = 1..15): opening buf as
 * fmt, or a status query at probe_off, must fail with an I/O error, never
 * crash or leak.
 */
static inline void imgtest_fault_sweep(const struct ia_open_ctx *ctx, const uint8_t *buf,
                                       size_t len, const char *fmt, uint64_t probe_off)
{
        for (uint64_t n = 1; n < 16; n++) {
                const struct imgtest_mem how = {.name = "faulty", .fmt = fmt, .fail_at = n};
                struct ia_image *img = NULL;
                struct ia_error err;

                ia_error_clear(&err);
                if (imgtest_open_mem(ctx, buf, len, &how, &img, &err) < 0) {
                        assert_int_equal(err.cat, IA_ERR_IO);
                        continue;
                }
                if (img->drv->block_status) {
                        struct ia_bstatus st;

                        memset(&st, 0, sizeof(st));
                        if (img->drv->block_status(img, probe_off, img->size - probe_off, &st,
                                                   &err) < 0)
                                assert_int_equal(err.cat, IA_ERR_IO);
                }
                ia_image_free(img);
        }
}

/*
 * Every read failing in turn (from the Nth on, N = 1..n_max-1): opening buf
 * as fmt must fail with an I/O error, or the image must answer status
 * queries every step bytes until one fails with an I/O error.
 */
static inline void imgtest_fault_walk(const struct ia_open_ctx *ctx, const uint8_t *buf, size_t len,
                                      const char *fmt, uint64_t n_max, uint64_t step)
{
        for (uint64_t n = 1; n < n_max; n++) {
                const struct imgtest_mem how = {.name = "faulty", .fmt = fmt, .fail_at = n};
                struct ia_image *img = NULL;
                struct ia_error err;

                ia_error_clear(&err);
                if (imgtest_open_mem(ctx, buf, len, &how, &img, &err) < 0) {
                        assert_int_equal(err.cat, IA_ERR_IO);
                        continue;
                }
                for (uint64_t off = 0; off < img->size; off += step) {
                        struct ia_bstatus st;

                        memset(&st, 0, sizeof(st));
                        if (img->drv->block_status(img, off, img->size - off, &st, &err) < 0) {
                                assert_int_equal(err.cat, IA_ERR_IO);
                                break;
                        }
                }
                ia_image_free(img);
        }
}

/* A file a test's resolver opens by name: bytes in memory, behind a fault
 * injector when fail_at is set (its reads counted into *count if given). */
struct imgtest_memfile {
        const char *name;
        const void *buf;
        size_t len;
        uint64_t fail_at;
        uint64_t *count;
};

/* Open name from files[0..n) (entries without a name do not count). */
static inline int imgtest_memfile_open(const struct imgtest_memfile *files, size_t n,
                                       const char *name, struct ia_file **out, struct ia_error *err)
{
        for (size_t i = 0; i < n; i++) {
                struct ia_source *src;

                if (!files[i].name || strcmp(files[i].name, name) != 0)
                        continue;
                src = ia_source_memory(files[i].buf, files[i].len, false, err);
                if (!src)
                        return -1;
                if (files[i].fail_at) {
                        struct ia_source *bad =
                            ia_source_faulty(src, files[i].fail_at, files[i].count, err);

                        ia_source_unref(src);
                        if (!bad)
                                return -1;
                        src = bad;
                }
                *out = ia_file_new(src, name, err);
                return *out ? 0 : -1;
        }
        return ia_error_set(err, IA_ERR_MISSING, "no file '%s'", name);
}

#endif
