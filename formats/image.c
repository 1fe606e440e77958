/*
 * Host files and the helpers drivers call: the file-level block status
 * (qemu's file-posix rules), references to other files, findings.
 */
#define _GNU_SOURCE
#include "image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "banned.h"

struct ia_file *ia_file_new(struct ia_source *src, const char *name, struct ia_error *err)
{
        struct ia_file *f = calloc(1, sizeof(*f));

        if (!f)
                goto nomem;
        f->name = strdup(name);
        if (!f->name)
                goto free_f;
        f->src = src;
        f->len = src->size > UINT64_MAX - 511 ? src->size : ia_round_up(src->size, 512);
        return f;

free_f:
        free(f);
nomem:
        ia_source_unref(src);
        ia_error_set(err, IA_ERR_NOMEM, "out of memory opening '%s'", name);
        return NULL;
}

void ia_file_free(struct ia_file *f)
{
        if (!f)
                return;
        ia_source_unref(f->src);
        free(f->name);
        free(f);
}

/*
 * qemu's find_allocation(): where is the data at or after off?  Returns 0
 * with [*data, *hole) known, or -errno (-ENXIO: only a hole up to EOF).
 */
static int find_allocation(struct ia_file *f, uint64_t off, uint64_t *data, uint64_t *hole)
{
        uint64_t d, h;
        int e;

        if (f->next_data_valid && f->next_data == off) {
                /* The previous SEEK_DATA already said data begins exactly here. */
                d = off;
        } else if (ia_source_seek(f->src, off, IA_SEEK_DATA, &d, &e) < 0) {
                return -e;
        }
        f->next_data_valid = false;
        if (d < off)
                return -EIO;
        if (d > off) {
                *hole = off;
                *data = d;
                f->next_data = d;
                f->next_data_valid = true;
                return 0;
        }
        if (ia_source_seek(f->src, off, IA_SEEK_HOLE, &h, &e) < 0)
                return -e;
        if (h < off)
                return -EIO;
        if (h > off) {
                *data = off;
                *hole = h;
                return 0;
        }
        return -EBUSY; /* a hole appeared between the two calls */
}

int ia_file_status(struct ia_file *f, uint64_t off, uint64_t len, struct ia_bstatus *st,
                   struct ia_error *err)
{
        uint64_t data = 0, hole = 0, n;
        int r;

        (void)err;
        memset(st, 0, sizeof(*st));
        if (off >= f->len) {
                st->eof = true;
                return 0;
        }
        if (len > f->len - off)
                len = f->len - off;

        if (off >= f->data_start && off < f->data_end) {
                /* Inside the data extent learnt last: no system call needed. */
                st->flags = IA_BS_DATA;
                n = f->data_end - off;
        } else {
                r = find_allocation(f, off, &data, &hole);
                if (r == -ENXIO) {
                        st->flags = IA_BS_ZERO; /* trailing hole */
                        n = len;
                } else if (r < 0) {
                        st->flags = IA_BS_DATA; /* no information: pretend there are no holes */
                        n = len;
                } else if (data == off) {
                        st->flags = IA_BS_DATA;
                        n = hole - off;
                        f->data_start = off;
                        f->data_end = hole;
                } else {
                        st->flags = IA_BS_ZERO;
                        n = data - off;
                }
        }
        st->len = n < len ? n : len;
        st->flags |= IA_BS_OFFSET | IA_BS_ALLOCATED;
        st->host_off = off;
        st->file = f;
        st->eof = off + st->len == f->len;
        return 0;
}

void ia_bs_coarse(const struct ia_image *img, uint64_t off, struct ia_bstatus *st)
{
        st->len = img->size - off;
        st->flags = IA_BS_DATA;
}

void ia_close_priv(struct ia_image *img)
{
        free(img->priv);
        img->priv = NULL;
}

uint64_t ia_clock_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *ia_ref_kind_name(enum ia_ref_kind kind)
{
        switch (kind) {
        case IA_REF_TOP:
                return "top";
        case IA_REF_BACKING:
                return "backing";
        case IA_REF_DATA_FILE:
                return "data-file";
        case IA_REF_EXTENT:
                return "extent";
        }
        return "unknown";
}

int ia_image_open_ref(struct ia_image *img, const char *name, enum ia_ref_kind kind,
                      struct ia_file **out, struct ia_error *err)
{
        const struct ia_open_ctx *ctx = img->ctx;
        struct ia_error local;
        int r;

        ia_error_clear(&local);
        *out = NULL;
        if (!ctx || !ctx->resolver)
                r = ia_error_set(&local, IA_ERR_REFUSED, "no resolver to open '%s'", name);
        else
                r = ctx->resolver->open(ctx->resolver, img->file, name, kind, out, &local);
        if (ctx && ctx->on_link)
                ctx->on_link(ctx->opaque, img, name, kind, r == 0 ? *out : NULL, &local);
        if (r < 0 && err)
                *err = local;
        return r;
}

void ia_image_finding(const struct ia_image *img, const char *code, const char *fmt, ...)
{
        char small[IA_ERROR_MSG_MAX], *msg = small;
        va_list ap;
        int n;

        if (!img->ctx || !img->ctx->on_finding)
                return;
        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n >= (int)sizeof(small)) {
                /* never cut: a finding names files, and names can be long */
                char *big = malloc((size_t)n + 1);

                if (big) {
                        va_start(ap, fmt);
                        vsnprintf(big, (size_t)n + 1, fmt, ap);
                        va_end(ap);
                        msg = big;
                }
        }
        img->ctx->on_finding(img->ctx->opaque, img, code, msg);
        if (msg != small)
                free(msg);
}

int ia_image_set_backing(struct ia_image *img, const char *name, size_t len, const char *fmt,
                         struct ia_error *err)
{
        const char *nul = memchr(name, '\0', len);
        char *copy;

        if (nul)
                len = (size_t)(nul - name);
        copy = malloc(len + 1);
        if (!copy)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory for a backing file name");
        memcpy(copy, name, len);
        copy[len] = '\0';
        free(img->backing);
        img->backing = copy;
        img->backing_fmt[0] = '\0';
        if (fmt)
                snprintf(img->backing_fmt, sizeof(img->backing_fmt), "%s", fmt);
        return 0;
}
