/*
 * fault_map: map an image again and again, failing the 1st, 2nd, ... Nth read
 * of any file of its chain, until a run completes without meeting the fault.
 * Every failing run must end in a clean error (-1, a category, a message);
 * a crash, a hang, a leak (under ASan) or a success that skipped the
 * injected failure is a bug.  Used by tests/scripts/test_faults.sh over one
 * fixture per format.
 *
 *   fault_map [-f FMT] IMAGE      prints "N runs, N clean errors", exit 0/1
 */
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "map.h"

struct faulty_resolver {
        struct ia_resolver r;
        struct ia_resolver fs;
        uint64_t fail_at;
        uint64_t count;
};

static int faulty_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                       enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        struct faulty_resolver *fr = r->opaque;
        struct ia_source *wrapped;

        if (fr->fs.open(&fr->fs, from, name, kind, out, err) < 0)
                return -1;
        wrapped = ia_source_faulty((*out)->src, fr->fail_at, &fr->count, err);
        if (!wrapped) {
                ia_file_free(*out);
                *out = NULL;
                return -1;
        }
        ia_source_unref((*out)->src);
        (*out)->src = wrapped;
        return 0;
}

static int sink(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        uint64_t *entries = opaque;

        (void)e;
        (void)last;
        (void)err;
        ++*entries;
        return 0;
}

int main(int argc, char **argv)
{
        struct ia_fs_policy policy = {.roots = NULL, .data_file_cwd = false};
        struct faulty_resolver fr;
        struct ia_open_ctx ctx = {.compat = IA_DEFAULT_COMPAT};
        const char *fmt = NULL, *path;
        uint64_t n, clean = 0, reference_entries = 0;

        if (argc == 4 && strcmp(argv[1], "-f") == 0) {
                fmt = argv[2];
                path = argv[3];
        } else if (argc == 2) {
                path = argv[1];
        } else {
                fprintf(stderr, "usage: fault_map [-f FMT] IMAGE\n");
                return 2;
        }
        ia_fs_resolver_init(&fr.fs, &policy);
        fr.r.open = faulty_open;
        fr.r.opaque = &fr;
        ctx.resolver = &fr.r;

        /* A run without faults first: it must succeed, and says how many entries. */
        for (n = 0;; n++) {
                struct ia_map_opts o = {
                    .start = 0, .max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
                struct ia_image *top = NULL;
                struct ia_error err;
                uint64_t entries = 0;
                int rc;

                ia_error_clear(&err);
                fr.fail_at = n;
                fr.count = 0;
                rc = ia_chain_open(&ctx, path, fmt, &top, &err);
                if (rc == 0)
                        rc = ia_map(top, &o, sink, &entries, &err);
                ia_image_free(top);
                if (n == 0) {
                        if (rc < 0) {
                                fprintf(stderr, "fault_map: '%s' does not map without faults: %s\n",
                                        path, err.msg);
                                return 1;
                        }
                        reference_entries = entries;
                        continue;
                }
                if (fr.count < n) {
                        /* The fault was never reached: this run must equal the reference. */
                        if (rc < 0 || entries != reference_entries) {
                                fprintf(stderr, "fault_map: run %llu differs without a fault\n",
                                        (unsigned long long)n);
                                return 1;
                        }
                        break;
                }
                if (rc == 0) {
                        /* Reads may legitimately be optional (hole probing); a success must
                         * still give the full map. */
                        if (entries != reference_entries) {
                                fprintf(stderr,
                                        "fault_map: read %llu failed, yet the map succeeded with "
                                        "%llu entries instead of %llu\n",
                                        (unsigned long long)n, (unsigned long long)entries,
                                        (unsigned long long)reference_entries);
                                return 1;
                        }
                        continue;
                }
                if (err.cat == IA_ERR_NONE || !err.msg[0]) {
                        fprintf(stderr, "fault_map: read %llu: failure without a message\n",
                                (unsigned long long)n);
                        return 1;
                }
                clean++;
        }
        printf("%s: %llu reads, %llu clean errors\n", path, (unsigned long long)(n - 1),
               (unsigned long long)clean);
        return 0;
}
