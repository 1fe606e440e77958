/*
 * The VMDK text descriptor, read as qemu 7.2 reads it: its createType, its
 * extent lines (one sscanf() format, quirks and all: see vmdk.c), the extent
 * files they name (each opened once), and, for the image itself, the
 * parentFileNameHint and the CID and parentCID identities.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmdk_int.h"
#include "banned.h"

/*
 * Read a descriptor as qemu's vmdk_read_desc() does: as many bytes as the
 * file has (rounded up to 512), at most VMDK_DESC_MAX, from off; NUL-terminated.
 */
char *vmdk_read_desc(struct ia_file *f, uint64_t off, struct ia_error *err)
{
        size_t len;
        char *buf;

        if (f->len < 4) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vmdk: '%s' is too small (%llu bytes) to be a VMDK image", f->name,
                             (unsigned long long)f->src->size);
                return NULL;
        }
        len = (size_t)ia_min_u64(f->len, VMDK_DESC_MAX);
        if (vmdk_bdrv_range_bad(off, len)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vmdk: descriptor offset %llu in '%s' is beyond any file",
                             (unsigned long long)off, f->name);
                return NULL;
        }
        buf = malloc(len + 1);
        if (!buf) {
                ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for a %zu-byte descriptor",
                             len);
                return NULL;
        }
        if (vmdk_read_zfill(f, buf, len, off, "descriptor", err) < 0) {
                free(buf);
                return NULL;
        }
        buf[len] = '\0';
        return buf;
}

/*
 * A scanner for the one sscanf() format qemu reads extent lines with:
 * "%10s %lld %10s \"%511[^\n\r\"]\" %lld".  Whitespace skipping crosses line
 * ends, as sscanf's does; runs of whitespace are remembered so that a
 * descriptor of blank lines costs linear time.
 */
struct ws_memo {
        const char *from, *to; /* [from, to) is whitespace, *to is not */
};

static bool c_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static const char *skip_ws(const char *s, struct ws_memo *m)
{
        const char *t = s;

        if (m->from && s >= m->from && s <= m->to)
                return m->to;
        while (c_space(*t))
                t++;
        m->from = s;
        m->to = t;
        return t;
}

static const char *scan_str(const char *s, char *out, size_t width, struct ws_memo *m)
{
        size_t n = 0;

        s = skip_ws(s, m);
        while (*s && !c_space(*s) && n < width)
                out[n++] = *s++;
        out[n] = '\0';
        return n ? s : NULL;
}

static const char *scan_i64(const char *s, int64_t *out, struct ws_memo *m)
{
        bool neg = false;
        uint64_t v = 0;
        bool big = false;
        const char *d;

        s = skip_ws(s, m);
        if (*s == '+' || *s == '-')
                neg = *s++ == '-';
        for (d = s; *d >= '0' && *d <= '9'; d++) {
                if (v > (UINT64_MAX - 9) / 10)
                        big = true;
                else
                        v = v * 10 + (uint64_t)(*d - '0');
        }
        if (d == s)
                return NULL;
        /* glibc clamps like strtoll() */
        if (neg)
                *out = big || v > (uint64_t)INT64_MAX + 1 ? INT64_MIN : (int64_t)(0 - v);
        else
                *out = big || v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
        return d;
}

struct extent_line {
        char access[11], type[11], fname[VMDK_FNAME_MAX + 1];
        int64_t sectors, flat_off;
};

/*
 * memo[0] serves the skip at the start of a line (runs of blank lines),
 * memo[1] the skips between fields.
 */
static int scan_line(const char *p, struct extent_line *l, struct ws_memo memo[2])
{
        struct ws_memo *m = &memo[1];
        size_t n = 0;

        if (!(p = scan_str(p, l->access, 10, &memo[0])))
                return 0;
        if (!(p = scan_i64(p, &l->sectors, m)))
                return 1;
        if (!(p = scan_str(p, l->type, 10, m)))
                return 2;
        p = skip_ws(p, m);
        if (*p != '"')
                return 3;
        p++;
        while (*p && *p != '\n' && *p != '\r' && *p != '"' && n < VMDK_FNAME_MAX)
                l->fname[n++] = *p++;
        l->fname[n] = '\0';
        if (!n)
                return 3;
        if (*p != '"')
                return 4;
        if (!scan_i64(p + 1, &l->flat_off, m))
                return 4;
        return 5;
}

/* Open (or reuse: one file per distinct name) the extent file called name. */
static int open_extent_file(struct ia_image *img, const char *name, struct ia_file **out,
                            struct ia_error *err)
{
        struct vmdk_state *s = img->priv;
        struct vmdk_ref *r;

        for (size_t i = 0; i < s->n_refs; i++) {
                if (strcmp(s->refs[i].name, name) == 0) {
                        *out = s->refs[i].file;
                        return 0;
                }
        }
        if (s->n_refs == s->cap_refs) {
                size_t cap = s->cap_refs ? s->cap_refs * 2 : 8;

                r = realloc(s->refs, cap * sizeof(*r));
                if (!r)
                        return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for extents");
                s->refs = r;
                s->cap_refs = cap;
        }
        r = &s->refs[s->n_refs];
        r->name = strdup(name);
        if (!r->name)
                return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for an extent name");
        if (ia_image_open_ref(img, name, IA_REF_EXTENT, &r->file, err) < 0) {
                free(r->name);
                ia_error_prefix(err, "vmdk: extent '%s'", name);
                return -1;
        }
        s->n_refs++;
        *out = r->file;
        return 0;
}

static int invalid_line(const char *p, struct ia_error *err)
{
        size_t n = strcspn(p, "\n");

        return ia_error_set(err, IA_ERR_CORRUPT, "vmdk: invalid extent line: %.*s",
                            (int)(n > 200 ? 200 : n), p);
}

/* qemu's vmdk_parse_extents(). */
static int parse_extents(struct ia_image *img, const char *desc, unsigned depth,
                         struct ia_error *err)
{
        struct ws_memo memo[2] = {{0}};
        struct extent_line l;
        const char *p, *nl;

        for (p = desc; *p; p = nl ? nl + 1 : p + strlen(p)) {
                struct vmdk_extent e = {0};
                struct ia_file *f = NULL;
                int n;

                nl = strchr(p, '\n');
                l.flat_off = -1;
                n = scan_line(p, &l, memo);
                if (n < 4 || strcmp(l.access, "RW") != 0)
                        continue;
                if (strcmp(l.type, "FLAT") == 0) {
                        if (n != 5 || l.flat_off < 0)
                                return invalid_line(p, err);
                } else if (strcmp(l.type, "VMFS") == 0) {
                        if (n != 4)
                                return invalid_line(p, err);
                        l.flat_off = 0;
                } else if (n != 4) {
                        return invalid_line(p, err);
                }
                if (l.sectors <= 0)
                        continue;
                if (strcmp(l.type, "FLAT") != 0 && strcmp(l.type, "VMFS") != 0 &&
                    strcmp(l.type, "SPARSE") != 0 && strcmp(l.type, "VMFSSPARSE") != 0 &&
                    strcmp(l.type, "SESPARSE") != 0)
                        continue;
                if (((struct vmdk_state *)img->priv)->n_ext >= IA_VMDK_MAX_EXTENTS)
                        return ia_error_set(err, IA_ERR_LIMIT,
                                            "vmdk: more than %u extents in the descriptor: over "
                                            "the limit",
                                            IA_VMDK_MAX_EXTENTS);
                if (open_extent_file(img, l.fname, &f, err) < 0)
                        return -1;
                if (l.type[0] == 'F' || strcmp(l.type, "VMFS") == 0) {
                        if ((uint64_t)l.flat_off > (uint64_t)INT64_MAX / 512 ||
                            (uint64_t)l.sectors > (uint64_t)INT64_MAX / 512 ||
                            (uint64_t)l.flat_off * 512 >
                                (uint64_t)INT64_MAX - (uint64_t)l.sectors * 512)
                                return ia_error_set(err, IA_ERR_LIMIT,
                                                    "vmdk: flat extent '%s' at sector %lld of %lld "
                                                    "sectors lies beyond 2^63 bytes",
                                                    l.fname, (long long)l.flat_off,
                                                    (long long)l.sectors);
                        e.file = f;
                        e.flat = true;
                        e.sectors = (uint64_t)l.sectors;
                        e.flat_off = (uint64_t)l.flat_off * 512;
                        if (vmdk_add_extent(img->priv, &e, err) < 0)
                                return -1;
                } else if (strcmp(l.type, "SESPARSE") == 0) {
                        if (vmdk_open_sesparse(img, f, err) < 0)
                                return -1;
                } else if (vmdk_open_sparse(img, f, depth, err) < 0) {
                        return -1;
                }
        }
        return 0;
}

static const char *const vmdk_desc_types[] = {
    "monolithicFlat",     "vmfs", "vmfsSparse", "seSparse", "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat", NULL,
};

/* qemu's vmdk_open_desc_file(): check createType, then read the extents. */
int vmdk_open_desc(struct ia_image *img, const char *desc, unsigned depth, struct ia_error *err)
{
        const char *end = desc + strlen(desc), *p, *q;
        char ct[VMDK_CTYPE_MAX];
        size_t i;

        p = strstr(desc, "createType");
        if (!p || (size_t)(end - p) <= strlen("createType") + 2)
                return ia_error_set(err, IA_ERR_CORRUPT, "vmdk: invalid descriptor: no createType");
        p += strlen("createType") + 2;
        q = memchr(p, '"', (size_t)(end - p));
        if (!q || (size_t)(q - p) + 1 > sizeof(ct))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: invalid descriptor: createType unterminated or longer "
                                    "than %zu bytes",
                                    sizeof(ct) - 1);
        memcpy(ct, p, (size_t)(q - p));
        ct[q - p] = '\0';
        for (i = 0; vmdk_desc_types[i]; i++)
                if (strcmp(ct, vmdk_desc_types[i]) == 0)
                        break;
        if (!vmdk_desc_types[i])
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "vmdk: unsupported image type '%s'",
                                    ct);
        return parse_extents(img, desc, depth, err);
}

/* Does s hold a hex number after optional whitespace and sign, as sscanf("%x") wants? */
static bool scan_hex_ok(const char *s)
{
        while (c_space(*s))
                s++;
        if (*s == '+' || *s == '-')
                s++;
        return (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F');
}

/* qemu's vmdk_parent_open() and vmdk_read_cid(): the descriptor at desc_off. */
int vmdk_read_parent_and_cid(struct ia_image *img, uint64_t desc_off, struct ia_error *err)
{
        char *d, *p, *q;
        int r = -1;

        d = malloc(VMDK_DESC_SIZE + 1);
        if (!d)
                return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for the descriptor");
        if (vmdk_read_zfill(img->file, d, VMDK_DESC_SIZE, desc_off, "descriptor", err) < 0)
                goto out;
        d[VMDK_DESC_SIZE] = '\0';
        p = strstr(d, "parentFileNameHint");
        if (p) {
                p += strlen("parentFileNameHint") + 2;
                q = p <= d + VMDK_DESC_SIZE ? strchr(p, '"') : NULL;
                if (!q) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "vmdk: parentFileNameHint in '%s' has no closing quote",
                                     img->file->name);
                        goto out;
                }
                if ((size_t)(q - p) > VMDK_PARENT_MAX) {
                        ia_error_set(
                            err, IA_ERR_LIMIT,
                            "vmdk: parentFileNameHint in '%s' is %zu bytes long (at most %u)",
                            img->file->name, (size_t)(q - p), VMDK_PARENT_MAX);
                        goto out;
                }
                /* qemu opens the parent as VMDK, never probed. */
                if (q > p && ia_image_set_backing(img, p, (size_t)(q - p), "vmdk", err) < 0)
                        goto out;
        }
        d[VMDK_DESC_SIZE - 1] = '\0';
        p = strstr(d, "CID");
        q = strstr(d, "parentCID");
        if (!p || !scan_hex_ok(p + 4) || !q || !scan_hex_ok(q + 10)) {
                ia_error_set(err, IA_ERR_CORRUPT, "vmdk: the descriptor of '%s' lacks a %s",
                             img->file->name, !p || !scan_hex_ok(p + 4) ? "CID" : "parentCID");
                goto out;
        }
        /* Read as qemu reads them (the first "CID" may be parentCID's); a
         * parentCID of ffffffff names no parent. */
        snprintf(img->ident, IA_IDENT_LEN, "cid %08lx", strtoul(p + 4, NULL, 16) & 0xffffffffu);
        if (img->backing && (strtoul(q + 10, NULL, 16) & 0xffffffffu) != 0xffffffffu)
                snprintf(img->parent_ident[0], IA_IDENT_LEN, "cid %08lx",
                         strtoul(q + 10, NULL, 16) & 0xffffffffu);
        r = 0;
out:
        free(d);
        return r;
}
