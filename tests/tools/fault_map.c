/*
 * fault_map: map an image again and again, failing the 1st, 2nd, ... Nth read
 * of any file of its chain, until a run completes without meeting the fault.
 * Each N is run twice: once with every read from the Nth on failing (a dead
 * disk, "persistent"), once with the Nth read alone failing (a transient
 * error, so that a driver which ignores a failed read and goes on with a
 * stale or unread buffer cannot hide behind the next read failing too).
 * Every failing run must end in a clean error (-1, a category, a message); a
 * run that succeeds despite the fault must print exactly the map of the run
 * without faults (every entry compared, not just counted).  A crash, a hang,
 * a leak (under ASan), a different map, or a run that read at least N times
 * yet fired no fault (an injector that is not in the read path tests
 * nothing) is a bug.  The faults fired are counted and printed, so that the
 * caller can assert that each N fired.  Used by tests/scripts/test_faults.sh
 * over one fixture per format.
 *
 *   fault_map [--true-map] [-f FMT] IMAGE
 *       every N in both modes; prints
 *       "IMAGE: R reads; persistent: F fired, C clean errors; transient: F fired, C clean errors"
 *   fault_map --transient N [--true-map] [-f FMT] IMAGE
 *       one run in which the Nth read alone fails; prints
 *       "IMAGE: read N failed alone, F fired: error: MESSAGE" or "...: same map"
 *   exit status 0 if every run behaved, 1 if not, 2 on a usage error
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
        uint64_t fail_at; /* 0: no fault */
        bool once;        /* only the fail_at-th read fails */
        uint64_t count;   /* reads in this run, over the whole chain */
        uint64_t fired;   /* reads failed by the injector in this run */
};

/* A source that fails the fail_at-th read counted over the whole chain, and
 * with !once every later read too. */
struct fault_source {
        struct ia_source base;
        struct ia_source *under;
        struct faulty_resolver *fr;
};

static int64_t fault_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                           struct ia_error *err)
{
        struct fault_source *f = (struct fault_source *)src;
        struct faulty_resolver *fr = f->fr;
        uint64_t n = ++fr->count;

        if (fr->fail_at && (fr->once ? n == fr->fail_at : n >= fr->fail_at)) {
                ++fr->fired;
                return ia_error_set(err, IA_ERR_IO, "injected %s read failure #%llu at %llu",
                                    fr->once ? "transient" : "persistent", (unsigned long long)n,
                                    (unsigned long long)off);
        }
        return f->under->ops->pread(f->under, buf, len, off, err);
}

static int fault_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                      int *errnum)
{
        return ia_source_seek(((struct fault_source *)src)->under, off, what, res, errnum);
}

static void fault_destroy(struct ia_source *src)
{
        ia_source_unref(((struct fault_source *)src)->under);
        free(src);
}

static const struct ia_source_ops fault_ops = {
    .pread = fault_pread, .seek = fault_seek, .destroy = fault_destroy};

static struct ia_source *fault_source(struct ia_source *under, struct faulty_resolver *fr,
                                      struct ia_error *err)
{
        struct fault_source *f = calloc(1, sizeof(*f));

        if (!f) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        ia_source_init(&f->base, &fault_ops, under->size);
        f->base.allocated = under->allocated;
        f->base.dev = under->dev;
        f->base.ino = under->ino;
        f->under = ia_source_ref(under);
        f->fr = fr;
        return &f->base;
}

static int faulty_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                       enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        struct faulty_resolver *fr = r->opaque;
        struct ia_source *wrapped;

        if (fr->fs.open(&fr->fs, from, name, kind, out, err) < 0)
                return -1;
        wrapped = fault_source((*out)->src, fr, err);
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

/* One run: open the chain and map it with the fault at fail_at (0: none). */
static int run_one(struct faulty_resolver *fr, struct ia_open_ctx *ctx, const char *path,
                   const char *fmt, uint64_t fail_at, struct digest *got, struct ia_error *err)
{
        struct ia_map_opts o = {
            .start = 0, .max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
        struct ia_image *top = NULL;
        int rc;

        *got = (struct digest){0, 0xcbf29ce484222325ull};
        ia_error_clear(err);
        fr->fail_at = fail_at;
        fr->count = 0;
        fr->fired = 0;
        rc = ia_chain_open(ctx, path, fmt, &top, err);
        if (rc == 0)
                rc = ia_map(top, &o, sink, got, err);
        ia_image_free(top);
        return rc;
}

/* The run without faults: it must succeed; its map is the reference. */
static int reference_run(struct faulty_resolver *fr, struct ia_open_ctx *ctx, const char *path,
                         const char *fmt, struct digest *reference)
{
        struct ia_error err;

        if (run_one(fr, ctx, path, fmt, 0, reference, &err) < 0) {
                fprintf(stderr, "fault_map: '%s' does not map without faults: %s\n", path, err.msg);
                return -1;
        }
        if (fr->fired) {
                fprintf(stderr, "fault_map: a fault fired in the run without faults\n");
                return -1;
        }
        return 0;
}

static bool same_map(const struct digest *a, const struct digest *b)
{
        return a->entries == b->entries && a->hash == b->hash;
}

struct mode_stats {
        uint64_t reads; /* reads of the run without faults */
        uint64_t fired; /* runs in which the injected fault fired */
        uint64_t clean; /* runs that ended in a clean error */
};

/* One mode: fail from the Nth read on (once false) or the Nth read alone. */
static int run_mode(struct faulty_resolver *fr, struct ia_open_ctx *ctx, const char *path,
                    const char *fmt, bool once, struct mode_stats *st)
{
        const char *how = once ? " (alone)" : "";
        struct digest reference, got;
        uint64_t n;

        fr->once = once;
        if (reference_run(fr, ctx, path, fmt, &reference) < 0)
                return -1;
        st->reads = fr->count;
        for (n = 1;; n++) {
                struct ia_error err;
                int rc = run_one(fr, ctx, path, fmt, n, &got, &err);

                if (fr->count < n) {
                        /* The fault was never reached: this run must equal the reference. */
                        if (rc < 0 || !same_map(&got, &reference) || fr->fired) {
                                fprintf(stderr, "fault_map: run %llu differs without a fault\n",
                                        (unsigned long long)n);
                                return -1;
                        }
                        break;
                }
                if (!fr->fired) {
                        fprintf(stderr,
                                "fault_map: %llu reads made, yet fault %llu%s never fired\n",
                                (unsigned long long)fr->count, (unsigned long long)n, how);
                        return -1;
                }
                ++st->fired;
                if (rc == 0) {
                        /* Reads may legitimately be optional (hole probing); a success must
                         * still give the very same map. */
                        if (!same_map(&got, &reference)) {
                                fprintf(stderr,
                                        "fault_map: read %llu failed%s, yet the map succeeded "
                                        "with a different map (%llu entries, %llu without the "
                                        "fault)\n",
                                        (unsigned long long)n, how, (unsigned long long)got.entries,
                                        (unsigned long long)reference.entries);
                                return -1;
                        }
                        continue;
                }
                if (err.cat == IA_ERR_NONE || !err.msg[0]) {
                        fprintf(stderr, "fault_map: read %llu%s: failure without a message\n",
                                (unsigned long long)n, how);
                        return -1;
                }
                ++st->clean;
        }
        if (n - 1 != st->reads) {
                fprintf(stderr, "fault_map: %llu reads without faults, but faults reached %llu\n",
                        (unsigned long long)st->reads, (unsigned long long)(n - 1));
                return -1;
        }
        return 0;
}

/* --transient N: the Nth read alone fails, once; a clean error or the same map. */
static int run_transient(struct faulty_resolver *fr, struct ia_open_ctx *ctx, const char *path,
                         const char *fmt, uint64_t n)
{
        struct digest reference, got;
        struct ia_error err;
        int rc;

        fr->once = true;
        if (reference_run(fr, ctx, path, fmt, &reference) < 0)
                return -1;
        rc = run_one(fr, ctx, path, fmt, n, &got, &err);
        printf("%s: read %llu failed alone, %llu fired: ", path, (unsigned long long)n,
               (unsigned long long)fr->fired);
        if (fr->fired != 1) {
                printf("the fault did not fire once (%llu reads)\n", (unsigned long long)fr->count);
                return -1;
        }
        if (rc < 0) {
                printf("error: %s\n", err.msg);
                return err.cat == IA_ERR_NONE || !err.msg[0] ? -1 : 0;
        }
        printf("%s\n", same_map(&got, &reference) ? "same map" : "a different map");
        return same_map(&got, &reference) ? 0 : -1;
}

static int usage(void)
{
        fprintf(stderr, "usage: fault_map [--transient N] [--true-map] [-f FMT] IMAGE\n");
        return 2;
}

int main(int argc, char **argv)
{
        struct ia_fs_policy policy = {.roots = NULL, .data_file_cwd = false};
        struct faulty_resolver fr = {0};
        struct ia_open_ctx ctx = {.compat = IA_DEFAULT_COMPAT};
        struct mode_stats persistent = {0}, transient = {0};
        const char *fmt = NULL, *path;
        uint64_t transient_at = 0;
        char *end;

        if (argc > 2 && strcmp(argv[1], "--transient") == 0) {
                transient_at = strtoull(argv[2], &end, 10);
                if (!transient_at || *end)
                        return usage();
                argc -= 2;
                argv += 2;
        }
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
                return usage();
        }
        ia_fs_resolver_init(&fr.fs, &policy);
        fr.r.open = faulty_open;
        fr.r.opaque = &fr;
        ctx.resolver = &fr.r;
        if (transient_at)
                return run_transient(&fr, &ctx, path, fmt, transient_at) < 0 ? 1 : 0;
        if (run_mode(&fr, &ctx, path, fmt, false, &persistent) < 0 ||
            run_mode(&fr, &ctx, path, fmt, true, &transient) < 0)
                return 1;
        printf("%s: %llu reads; persistent: %llu fired, %llu clean errors; transient: %llu fired, "
               "%llu clean errors\n",
               path, (unsigned long long)persistent.reads, (unsigned long long)persistent.fired,
               (unsigned long long)persistent.clean, (unsigned long long)transient.fired,
               (unsigned long long)transient.clean);
        return 0;
}
