/*
 * fault_map: map an image again and again, failing the 1st, 2nd, ... Nth read
 * of any file of its chain, until a run completes without meeting the fault.
 * Each N is run twice: once with every read from the Nth on failing (a dead
 * disk), once with the Nth read alone failing (a transient error, so that a
 * driver which ignores a failed read and goes on with a stale or unread
 * buffer cannot hide behind the next read failing too).  Every failing run
 * must end in a clean error (-1, a category, a message); a run that succeeds
 * despite the fault must print exactly the map of the run without faults
 * (every entry compared, not just counted).  A crash, a hang, a leak (under
 * ASan) or a different map is a bug.  Used by tests/scripts/test_faults.sh
 * over one fixture per format.
 *
 *   fault_map [--true-map] [-f FMT] IMAGE   prints "N reads, N clean errors", exit 0/1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "map.h"
#include "banned.h"

struct faulty_resolver {
        struct ia_resolver r;
        struct ia_resolver fs;
        uint64_t fail_at;
        uint64_t count;
        bool once; /* only the fail_at-th read fails */
};

/* A source whose fail_at-th read (counted over the whole chain) alone fails. */
struct once_source {
        struct ia_source base;
        struct ia_source *under;
        struct faulty_resolver *fr;
};

static int64_t once_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                          struct ia_error *err)
{
        struct once_source *o = (struct once_source *)src;

        if (++o->fr->count == o->fr->fail_at)
                return ia_error_set(err, IA_ERR_IO, "injected transient read failure at %llu",
                                    (unsigned long long)off);
        return o->under->ops->pread(o->under, buf, len, off, err);
}

static int once_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                     int *errnum)
{
        return ia_source_seek(((struct once_source *)src)->under, off, what, res, errnum);
}

static void once_destroy(struct ia_source *src)
{
        ia_source_unref(((struct once_source *)src)->under);
        free(src);
}

static const struct ia_source_ops once_ops = {
    .pread = once_pread, .seek = once_seek, .destroy = once_destroy};

static struct ia_source *once_source(struct ia_source *under, struct faulty_resolver *fr,
                                     struct ia_error *err)
{
        struct once_source *o = calloc(1, sizeof(*o));

        if (!o) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        ia_source_init(&o->base, &once_ops, under->size);
        o->base.allocated = under->allocated;
        o->base.dev = under->dev;
        o->base.ino = under->ino;
        o->under = ia_source_ref(under);
        o->fr = fr;
        return &o->base;
}

static int faulty_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                       enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        struct faulty_resolver *fr = r->opaque;
        struct ia_source *wrapped;

        if (fr->fs.open(&fr->fs, from, name, kind, out, err) < 0)
                return -1;
        wrapped = fr->once ? once_source((*out)->src, fr, err)
                           : ia_source_faulty((*out)->src, fr->fail_at, &fr->count, err);
        if (!wrapped) {
                ia_file_free(*out);
                *out = NULL;
                return -1;
        }
        ia_source_unref((*out)->src);
        (*out)->src = wrapped;
        return 0;
}

struct digest {
        uint64_t entries;
        uint64_t hash; /* FNV-1a over every field of every entry */
};

static void mix(struct digest *d, uint64_t v)
{
        for (int i = 0; i < 8; i++) {
                d->hash ^= (v >> (8 * i)) & 0xff;
                d->hash *= 0x100000001b3ull;
        }
}

static int sink(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct digest *d = opaque;

        (void)last;
        (void)err;
        ++d->entries;
        mix(d, e->start);
        mix(d, e->length);
        mix(d, e->depth);
        mix(d, (uint64_t)e->present | (uint64_t)e->zero << 1 | (uint64_t)e->data << 2 |
                   (uint64_t)e->compressed << 3 | (uint64_t)e->has_offset << 4);
        mix(d, e->has_offset ? e->offset : 0);
        if (e->has_offset && e->file)
                for (const char *p = e->file->name; *p; p++)
                        mix(d, (unsigned char)*p);
        return 0;
}

/* One mode: fail from the Nth read on (once false) or the Nth read alone. */
static int run_mode(struct faulty_resolver *fr, struct ia_open_ctx *ctx, const char *path,
                    const char *fmt, bool once, uint64_t *reads, uint64_t *clean)
{
        struct digest reference = {0, 0xcbf29ce484222325ull};
        uint64_t n;

        fr->once = once;
        for (n = 0;; n++) {
                struct ia_map_opts o = {
                    .start = 0, .max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
                struct digest got = {0, 0xcbf29ce484222325ull};
                struct ia_image *top = NULL;
                struct ia_error err;
                int rc;

                ia_error_clear(&err);
                fr->fail_at = n;
                fr->count = 0;
                rc = ia_chain_open(ctx, path, fmt, &top, &err);
                if (rc == 0)
                        rc = ia_map(top, &o, sink, &got, &err);
                ia_image_free(top);
                if (n == 0) {
                        /* A run without faults first: it must succeed; its map is the reference. */
                        if (rc < 0) {
                                fprintf(stderr, "fault_map: '%s' does not map without faults: %s\n",
                                        path, err.msg);
                                return -1;
                        }
                        reference = got;
                        continue;
                }
                if (fr->count < n) {
                        /* The fault was never reached: this run must equal the reference. */
                        if (rc < 0 || got.entries != reference.entries ||
                            got.hash != reference.hash) {
                                fprintf(stderr, "fault_map: run %llu differs without a fault\n",
                                        (unsigned long long)n);
                                return -1;
                        }
                        break;
                }
                if (rc == 0) {
                        /* Reads may legitimately be optional (hole probing); a success must
                         * still give the very same map. */
                        if (got.entries != reference.entries || got.hash != reference.hash) {
                                fprintf(stderr,
                                        "fault_map: read %llu failed%s, yet the map succeeded "
                                        "with a different map (%llu entries, %llu without the "
                                        "fault)\n",
                                        (unsigned long long)n, once ? " (alone)" : "",
                                        (unsigned long long)got.entries,
                                        (unsigned long long)reference.entries);
                                return -1;
                        }
                        continue;
                }
                if (err.cat == IA_ERR_NONE || !err.msg[0]) {
                        fprintf(stderr, "fault_map: read %llu%s: failure without a message\n",
                                (unsigned long long)n, once ? " (alone)" : "");
                        return -1;
                }
                ++*clean;
        }
        *reads = n - 1;
        return 0;
}

int main(int argc, char **argv)
{
        struct ia_fs_policy policy = {.roots = NULL, .data_file_cwd = false};
        struct faulty_resolver fr = {0};
        struct ia_open_ctx ctx = {.compat = IA_DEFAULT_COMPAT};
        const char *fmt = NULL, *path;
        uint64_t n = 0, clean = 0, clean_once = 0;

        if (argc > 1 && strcmp(argv[1], "--true-map") == 0) {
                ctx.true_map = true;
                argc--;
                argv++;
        }
        if (argc == 4 && strcmp(argv[1], "-f") == 0) {
                fmt = argv[2];
                path = argv[3];
        } else if (argc == 2) {
                path = argv[1];
        } else {
                fprintf(stderr, "usage: fault_map [--true-map] [-f FMT] IMAGE\n");
                return 2;
        }
        ia_fs_resolver_init(&fr.fs, &policy);
        fr.r.open = faulty_open;
        fr.r.opaque = &fr;
        ctx.resolver = &fr.r;
        if (run_mode(&fr, &ctx, path, fmt, false, &n, &clean) < 0 ||
            run_mode(&fr, &ctx, path, fmt, true, &n, &clean_once) < 0)
                return 1;
        printf("%s: %llu reads, %llu clean errors (from the Nth read on), %llu (the Nth alone)\n",
               path, (unsigned long long)n, (unsigned long long)clean,
               (unsigned long long)clean_once);
        return 0;
}
