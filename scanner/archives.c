/*
 * Archives as containers of images: one libarchive pass over an untrusted
 * archive that records every member and gives each regular member a byte
 * source.  See archives.h for the contract, archive_int.h for how the reader
 * is cut up (I/O and caps, names, the member walk, member sources, OVF).
 *
 * Not supported: multi-volume tars, encrypted zip members (recorded with an
 * error), zip64 quirks beyond what libarchive handles, cpio/7z/iso9660/rar.
 */
#define _GNU_SOURCE
#include "archive_int.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

/*
 * One walk over src (lim resolved): every member, or (target) the members up
 * to number target - 1, which alone is read (a second pass, arc_fetch_member).
 */
static int open_walk(struct ia_source *src, const char *name, const struct ia_archive_limits *lim,
                     size_t target, struct ia_archive **out, struct ia_error *err)
{
        struct walk w;
        struct ia_archive *a;
        int r;

        memset(&w, 0, sizeof(w));
        w.lim = *lim;
        w.target = target;
        a = calloc(1, sizeof(*a));
        if (!a)
                goto nomem;
        w.a = a;
        a->name = strdup(name);
        if (!a->name)
                goto free_a;
        a->src = ia_source_ref(src);
        a->depth = arc_source_depth(src);
        w.buf = malloc(READ_BLOCK);
        w.verify = malloc(VERIFY_MAX);
        if (!w.buf || !w.verify)
                goto free_bufs;
        w.spool = ia_spool_new(w.lim.tmpdir, w.lim.spool_memory, w.lim.spool_budget, err);
        if (!w.spool)
                goto free_bufs_err;
        w.ar = arc_la_new(&w, false);
        if (!w.ar)
                goto free_spool;
        /* Opening chooses the filters and the format. */
        if (archive_read_open1(w.ar) != ARCHIVE_OK) {
                if (w.io_failed)
                        ia_error_set(err, IA_ERR_IO, "archive '%s': %s", name,
                                     ia_error_msg(&w.io_err));
                else
                        ia_error_set(err, IA_ERR_UNSUPPORTED,
                                     "'%s' is not a tar or zip archive (or a compressed tar): %s",
                                     name, arc_la_msg(&w));
                goto free_ar_err;
        }
        w.plain =
            archive_filter_count(w.ar) <= 1 && archive_filter_code(w.ar, 0) == ARCHIVE_FILTER_NONE;
        if (!w.plain && (r = arc_la_reopen_in_stages(&w)) < 0) {
                const char *m = w.ar ? archive_error_string(w.ar) : archive_error_string(w.dec);

                if (r == -2)
                        ia_error_set(err, IA_ERR_NOMEM, "archive '%s': out of memory", name);
                else if (w.io_failed)
                        ia_error_set(err, IA_ERR_IO, "archive '%s': %s", name,
                                     ia_error_msg(&w.io_err));
                else
                        ia_error_set(err, arc_la_cat(&w), "archive '%s': %s", name,
                                     m ? m : "unknown libarchive error");
                goto free_ar_err;
        }
        arc_walk_members(&w);
        arc_ovf_names_free(&w);
        if (w.rf) { /* the deferred members' second passes have what is left of the budget */
                arc_refetch_set_used(w.rf, ia_spool_used(w.spool));
                arc_refetch_unref(w.rf);
        }
        if (a->count == 0 && a->error.cat != IA_ERR_NONE) {
                *err = a->error;
                goto free_ar_err;
        }
        arc_la_free(&w);
        ia_spool_free(w.spool);
        free(w.verify);
        free(w.buf);
        *out = a;
        return 0;

free_ar_err:
        arc_la_free(&w);
        ia_spool_free(w.spool);
        free(w.verify);
        free(w.buf);
        ia_archive_free(a);
        return -1;
free_spool:
        ia_spool_free(w.spool);
free_bufs:
        free(w.verify);
        free(w.buf);
        ia_archive_free(a);
        goto nomem;
free_bufs_err:
        free(w.verify);
        free(w.buf);
        ia_archive_free(a);
        return -1;
free_a:
        free(a);
nomem:
        return ia_error_set(err, IA_ERR_NOMEM, "archive '%s': out of memory", name);
}

int ia_archive_open(struct ia_source *src, const char *name, const struct ia_archive_limits *lim,
                    struct ia_archive **out, struct ia_error *err)
{
        struct ia_archive_limits l;

        arc_limits_resolve(lim, &l);
        if (arc_source_depth(src) > l.max_nesting)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "archive '%s' is nested %u archives deep (cap %u)", name,
                                    arc_source_depth(src), l.max_nesting);
        if (open_walk(src, name, &l, 0, out, err) < 0)
                return -1;
        arc_ovf_read(*out);
        return 0;
}

struct ia_source *arc_fetch_member(struct ia_source *src, const char *name,
                                   const struct ia_archive_limits *lim, size_t ordinal,
                                   const char *member, uint64_t size, struct ia_error *err)
{
        struct ia_archive *t;
        const struct ia_archive_member *m;
        struct ia_source *s = NULL;
        struct ia_error e;

        ia_error_clear(&e);
        if (open_walk(src, name, lim, ordinal + 1, &t, &e) < 0) {
                ia_error_set(err, e.cat, "member '%s': reading it again: %s", member,
                             ia_error_msg(&e));
                return NULL;
        }
        m = ia_archive_member(t, ordinal);
        if (!m || strcmp(m->name, member) != 0 || m->size != size)
                ia_error_set(err, IA_ERR_CORRUPT,
                             "member '%s': the archive changed since it was read", member);
        else if (m->src)
                s = ia_source_ref(m->src);
        else if (m->error.cat != IA_ERR_NONE)
                *err = m->error;
        else if (t->error.cat != IA_ERR_NONE)
                *err = t->error;
        else
                ia_error_set(err, IA_ERR_INTERNAL, "member '%s': not read again", member);
        ia_archive_free(t);
        return s;
}

size_t ia_archive_count(const struct ia_archive *a)
{
        return a->count;
}

const struct ia_archive_member *ia_archive_member(const struct ia_archive *a, size_t i)
{
        return i < a->count ? &a->members[i] : NULL;
}

size_t ia_archive_ovf_count(const struct ia_archive *a)
{
        return a->ovf_count;
}

const struct ia_ovf_disk *ia_archive_ovf_disk(const struct ia_archive *a, size_t i)
{
        return i < a->ovf_count ? &a->ovf[i] : NULL;
}

const struct ia_error *ia_archive_error(const struct ia_archive *a)
{
        return a->error.cat == IA_ERR_NONE ? NULL : &a->error;
}

void ia_archive_free(struct ia_archive *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->count; i++) {
                free(a->members[i].name);
                free(a->members[i].link_target);
                ia_source_unref(a->members[i].src);
                free(a->norms[i]);
        }
        for (size_t i = 0; i < a->ovf_count; i++) {
                free(a->ovf[i].href);
                free(a->ovf[i].disk_id);
                free(a->ovf[i].format);
                free(a->ovf[i].file_id);
        }
        free(a->ovf);
        free(a->members);
        free(a->norms);
        free(a->index);
        ia_source_unref(a->src);
        free(a->name);
        free(a);
}
