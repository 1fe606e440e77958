/* Records for the writer thread: made by any worker, queued before the writer starts. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "banned.h"

/* ---- small helpers ---- */

char *scan_xstrdup(const char *s)
{
        return s ? strdup(s) : NULL;
}

/*
 * Records go to the writer in small batches per thread (one lock round-trip
 * per batch, not per record); flush() hands over what a thread holds.
 */
#define LOCAL_BATCH 64

static _Thread_local struct ia_rec *local_head, *local_tail;
static _Thread_local size_t local_n;

void scan_flush(struct scan *s)
{
        if (local_head)
                ia_store_put_list(s->store, local_head);
        local_head = local_tail = NULL;
        local_n = 0;
}

void scan_put(struct scan *s, struct ia_rec *r)
{
        if (!r) {
                atomic_store(&s->nomem, true);
                return;
        }
        r->next = NULL;
        if (local_tail)
                local_tail->next = r;
        else
                local_head = r;
        local_tail = r;
        if (++local_n >= LOCAL_BATCH)
                scan_flush(s);
}

void scan_pend(struct scan *s, struct ia_rec *r)
{
        if (!r) {
                atomic_store(&s->nomem, true);
                return;
        }
        r->next = NULL;
        if (s->pending_tail)
                s->pending_tail->next = r;
        else
                s->pending = r;
        s->pending_tail = r;
}

struct ia_rec *scan_entry_rec(const char *path, const char *kind, const char *reason,
                              const char *detail, int64_t file_id)
{
        struct ia_rec *r = ia_rec_new(IA_REC_ENTRY);

        if (!r)
                return NULL;
        r->u.entry.path = scan_xstrdup(path);
        r->u.entry.kind = kind;
        r->u.entry.reason = scan_xstrdup(reason);
        r->u.entry.detail = scan_xstrdup(detail);
        r->u.entry.file_id = file_id;
        return r;
}

const char *const scan_kind_names[FK_COUNT] = {
    [FK_NONE] = NULL,
    [FK_IMAGE] = "image",
    [FK_ARCHIVE] = "archive",
    [FK_NOT_AN_IMAGE] = "not-an-image",
    [FK_DATA_FILE] = "data-file",
    [FK_ARCHIVE_SKIPPED] = "archive-skipped",
    [FK_EXTERNAL] = "external",
    [FK_UNREADABLE] = "unreadable",
};

struct ia_rec *scan_file_rec(int64_t file_id, enum file_kind kind, bool reused)
{
        struct ia_rec *r = ia_rec_new(IA_REC_SCAN_FILE);

        if (r) {
                r->u.scan_file.file_id = file_id;
                r->u.scan_file.kind = scan_kind_names[kind];
                r->u.scan_file.reused = reused;
        }
        return r;
}

char *scan_join3(const char *a, char sep, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        char *p = malloc(la + lb + 2);

        if (!p)
                return NULL;
        memcpy(p, a, la);
        p[la] = sep;
        memcpy(p + la + 1, b, lb + 1);
        return p;
}

/* A record of type t with its next chunk: the one being filled, else a new one. */
struct ia_rec *scan_chunk_rec(struct ia_rec **slot, enum ia_rec_type t, struct ia_error *err)
{
        if (!*slot && !(*slot = ia_rec_new(t)))
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return *slot;
}

void scan_put_chunk(struct scan *s, struct ia_rec **slot)
{
        if (*slot)
                scan_put(s, *slot);
        *slot = NULL;
}
