/*
 * Loading the images of a scan for `imgaudit report` (see rpt.h): their
 * display names and space figures, the backing graph, broken links,
 * findings, and the earlier scan and history the trend needs.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbuf.h"
#include "rpt_int.h"
#include "banned.h"

/* ---- images ---- */

int ia_rpt_cmp_id_idx(const void *a, const void *b)
{
        const struct id_idx *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

static long find_id(const struct id_idx *v, size_t n, int64_t id)
{
        struct id_idx key = {id, 0};
        const struct id_idx *p = bsearch(&key, v, n, sizeof(*v), ia_rpt_cmp_id_idx);

        return p ? (long)p->idx : -1;
}

/*
 * How many leading bytes of a file's path name a file of the file system:
 * all of them, or for an archive member (ARCHIVE!MEMBER, nested archives
 * too) the path of its outermost archive.
 */
static size_t plain_len(struct ia_rpt *r, int64_t file_id, const char *path, size_t len,
                        bool member)
{
        struct ia_rdb_archive a;
        int64_t id = file_id;

        if (!member)
                return len;
        for (int depth = 0; depth < 64; depth++) {
                size_t n;

                if (ia_rdb_archive_of(r->db, id, &a) <= 0)
                        return 0;
                id = a.id;
                n = a.path.len;
                if (a.root) {
                        bool prefix =
                            n < len && path[n] == '!' && (n == 0 || memcmp(a.path.p, path, n) == 0);
                        return prefix ? n : 0;
                }
        }
        return 0;
}

/* The escaped display name of a file, or of its directory (dir true). */
static char *display_name(struct ia_rpt *r, int64_t file_id, const char *path, size_t len,
                          bool member, bool dir)
{
        size_t plain = plain_len(r, file_id, path, len, member);
        size_t n = len;

        if (!dir)
                return ia_escape_path_dup(path, len, plain);
        while (n > 0 && path[n - 1] != '/')
                n--;
        if (n == 0)
                return ia_escape_dup(".", 1);
        if (n > 1)
                n--; /* drop the slash, keep "/" itself */
        return ia_escape_path_dup(path, n, plain);
}

static int root_of(const struct ia_rpt_scan *s, const char *path, size_t len)
{
        int best = -1;
        size_t best_len = 0;

        for (size_t i = 0; i < s->nroots; i++) {
                const char *rt = s->raw_roots[i];
                size_t n = rt ? strlen(rt) : 0;

                while (n > 1 && rt[n - 1] == '/')
                        n--;
                if (n == 0 || n > len || memcmp(rt, path, n) != 0)
                        continue;
                if (n < len && path[n] != '/' && !(n == 1 && rt[0] == '/'))
                        continue;
                if (best < 0 || n > best_len) {
                        best = (int)i;
                        best_len = n;
                }
        }
        return best;
}

/* A list the loader grows: the report and the capacity of its array. */
struct list {
        struct ia_rpt *r;
        size_t cap;
        const struct id_idx *by_file; /* link_row: images by file id */
        int64_t last_from;            /* link_row: the holder of the last link kept */
};

/* Room for one more of *n elements of size at *v (capacity *cap, first first). */
static int room(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
        void **pv = v;
        size_t nc;
        void *a;

        if (n < *cap)
                return 0;
        nc = *cap ? *cap * 2 : first;
        a = realloc(*pv, nc * size);
        if (!a)
                return -1;
        *pv = a;
        *cap = nc;
        return 0;
}

static int image_row(void *ctx, const struct ia_rdb_image *row, struct ia_error *err)
{
        struct list *ls = ctx;
        struct ia_rpt *r = ls->r;
        struct ia_rpt_image *m;
        bool nomem = false;

        if (room(&r->img, r->nimg, &ls->cap, sizeof(*r->img), 64) < 0)
                return NOMEM(err);
        m = &r->img[r->nimg++];
        memset(m, 0, sizeof(*m));
        m->parent = -1;
        m->id = row->id;
        m->file_id = row->file_id;
        m->path = str_bytes(row->path, &m->path_len, &nomem);
        m->member = str_bytes(row->member, &m->member_len, &nomem);
        m->format = str_escaped(row->format, &nomem);
        m->has_vsize = row->has_vsize;
        m->virtual_size = row->virtual_size;
        m->file_size = row->file_size;
        m->has_alloc = row->has_alloc;
        m->allocated = row->allocated;
        m->status = str_escaped(row->status, &nomem);
        m->error = str_escaped(row->error, &nomem);
        m->backing = str_escaped(row->backing, &nomem);
        m->chain_depth = row->chain_depth;
        m->has_mtime = row->has_mtime;
        m->mtime_ns = row->mtime_ns;
        m->map_id = row->map_id;
        if (!m->path || !m->status)
                return NOMEM(err);
        m->name = display_name(r, m->file_id, m->path, m->path_len, m->member, false);
        m->dir = display_name(r, m->file_id, m->path, m->path_len, m->member, true);
        if (!m->name || !m->dir)
                return NOMEM(err);
        m->root = root_of(&r->scan, m->path, m->path_len);
        return 0;
}

int ia_rpt_load_images(struct ia_rpt *r, struct ia_error *err)
{
        struct list ls = {.r = r};

        return ia_rdb_images(r->db, r->scan.id, image_row, &ls, err);
}

/* The loader's lookups by images row id and by file id (ia_rpt_load). */
struct by {
        struct ia_rpt *r;
        const struct id_idx *by_id, *by_file;
        size_t flag; /* flag_row: the offset of the bool in struct ia_rpt_image */
};

static int space_row(void *ctx, const struct ia_rdb_space *row, struct ia_error *err)
{
        const struct by *b = ctx;
        long i = find_id(b->by_id, b->r->nimg, row->image_id);
        struct ia_rpt_space *sp;

        (void)err;
        if (i < 0)
                return 0;
        sp = &b->r->img[i].sp;
        sp->own_data = row->own_data;
        sp->backing_data = row->backing_data;
        sp->zero = row->zero;
        sp->unallocated = row->unallocated;
        sp->compressed = row->compressed;
        sp->mapped = row->mapped;
        sp->unknown = row->unknown;
        return 0;
}

int ia_rpt_load_space(struct ia_rpt *r, const struct id_idx *by_id, struct ia_error *err)
{
        struct by b = {.r = r, .by_id = by_id};

        return ia_rdb_space(r->db, r->scan.id, space_row, &b, err);
}

static size_t count_desc(struct ia_rpt *r, size_t i, unsigned depth)
{
        size_t n = 0;

        if (depth > 4096) /* the scanner refuses loops; never trust it twice */
                return 0;
        for (size_t k = 0; k < r->img[i].nchildren; k++)
                n += 1 + count_desc(r, r->img[i].children[k], depth + 1);
        return n;
}

static int flag_row(void *ctx, int64_t file_id, struct ia_error *err)
{
        const struct by *b = ctx;
        long i = find_id(b->by_file, b->r->nimg, file_id);

        (void)err;
        if (i >= 0)
                *(bool *)((char *)&b->r->img[i] + b->flag) = true;
        return 0;
}

/* Set the bool at offset flag of struct ia_rpt_image on every image of the file set. */
static int flag_by_file(struct ia_rpt *r, const struct id_idx *by_file, enum ia_rdb_files which,
                        size_t flag, struct ia_error *err)
{
        struct by b = {.r = r, .by_file = by_file, .flag = flag};

        return ia_rdb_files(r->db, r->scan.id, which, flag_row, &b, err);
}

/*
 * The orphans' evidence: the files a VM definition of this scan names and
 * whether it read any (schema 5), and the files images backed onto in an
 * earlier scan (a base whose last child went is a base still).
 */
static int load_users(struct ia_rpt *r, const struct id_idx *by_file, struct ia_error *err)
{
        if (flag_by_file(r, by_file, IA_RDB_WAS_BASE, offsetof(struct ia_rpt_image, was_base),
                         err) < 0 ||
            ia_rdb_has_vms(r->db, r->scan.id, &r->vm_defs, err) < 0)
                return -1;
        return flag_by_file(r, by_file, IA_RDB_VM_FILES, offsetof(struct ia_rpt_image, used_by_vm),
                            err);
}

static int backing_row(void *ctx, const struct ia_rdb_backing *row, struct ia_error *err)
{
        const struct by *b = ctx;
        struct ia_rpt *r = b->r;
        long i = find_id(b->by_id, r->nimg, row->image_id);
        long p;

        (void)err;
        if (i < 0)
                return 0;
        r->img[i].has_backing = true;
        if (!row->ok)
                return 0;
        r->img[i].backing_ok = true;
        p = find_id(b->by_file, r->nimg, row->target_file_id);
        if (p >= 0 && p != i)
                r->img[i].parent = p;
        return 0;
}

int ia_rpt_load_graph(struct ia_rpt *r, const struct id_idx *by_id, const struct id_idx *by_file,
                      struct ia_error *err)
{
        struct by b = {.r = r, .by_id = by_id, .by_file = by_file};

        if (ia_rdb_backings(r->db, r->scan.id, backing_row, &b, err) < 0)
                return -1;
        /* a parent cycle cannot come from a valid scan; cut it rather than loop */
        for (size_t i = 0; i < r->nimg; i++) {
                long p = r->img[i].parent;
                size_t steps = 0;

                while (p >= 0 && steps++ <= r->nimg)
                        p = r->img[p].parent;
                if (p >= 0)
                        r->img[i].parent = -1;
        }
        for (size_t i = 0; i < r->nimg; i++) {
                long p = r->img[i].parent;
                size_t *c;

                if (p < 0)
                        continue;
                c = realloc(r->img[p].children, (r->img[p].nchildren + 1) * sizeof(*c));
                if (!c)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                r->img[p].children = c;
                c[r->img[p].nchildren++] = i;
        }
        for (size_t i = 0; i < r->nimg; i++)
                r->img[i].ndesc = count_desc(r, i, 0);

        if (flag_by_file(r, by_file, IA_RDB_OVF_DISKS, offsetof(struct ia_rpt_image, used_by_ovf),
                         err) < 0)
                return -1;
        if (load_users(r, by_file, err) < 0)
                return -1;
        /* an image another image keeps its data in (a VMDK extent that is an
         * image by itself) is in use even though nothing backs onto it */
        return flag_by_file(r, by_file, IA_RDB_DATA_FILES,
                            offsetof(struct ia_rpt_image, used_as_data), err);
}

static int link_row(void *ctx, const struct ia_rdb_link *row, struct ia_error *err)
{
        struct list *ls = ctx;
        struct ia_rpt *r = ls->r;
        struct ia_rpt_link *l;
        bool nomem = false;

        if (r->nlinks > 0 && row->holder_id == ls->last_from) {
                const struct ia_rpt_link *p = &r->links[r->nlinks - 1];
                char *kind = str_escaped(row->kind, &nomem);
                char *name = str_escaped(row->name, &nomem);
                bool same =
                    kind && name && strcmp(kind, p->kind) == 0 && strcmp(name, p->name) == 0;
                free(kind);
                free(name);
                if (same)
                        return 0;
        }
        ls->last_from = row->holder_id;
        if (room(&r->links, r->nlinks, &ls->cap, sizeof(*r->links), 16) < 0)
                return NOMEM(err);
        l = &r->links[r->nlinks++];
        memset(l, 0, sizeof(*l));
        l->image = find_id(ls->by_file, r->nimg, row->holder_id);
        l->kind = str_escaped(row->kind, &nomem);
        l->name = str_escaped(row->name, &nomem);
        l->target = str_escaped(row->target, &nomem);
        l->status = str_escaped(row->status, &nomem);
        l->error = str_escaped(row->error, &nomem);
        l->depth = row->depth;
        l->holder = !row->holder_path.p
                        ? strdup("")
                        : display_name(r, row->holder_id, row->holder_path.p, row->holder_path.len,
                                       row->holder_member.p != NULL, false);
        if (!l->holder || !l->kind || !l->name || !l->status || nomem)
                return NOMEM(err);
        return 0;
}

/* Every link that is not ok, once per (holder file, kind, name). */
int ia_rpt_load_links(struct ia_rpt *r, const struct id_idx *by_file, struct ia_error *err)
{
        struct list ls = {.r = r, .last_from = -1, .by_file = by_file};

        return ia_rdb_broken_links(r->db, r->scan.id, link_row, &ls, err);
}

static int add_finding(struct ia_rpt *r, size_t *cap, const char *category, const char *source,
                       const char *name, const char *message)
{
        struct ia_rpt_finding *f;

        if (r->nfindings == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                struct ia_rpt_finding *a = realloc(r->findings, nc * sizeof(*a));
                if (!a)
                        return -1;
                r->findings = a;
                *cap = nc;
        }
        f = &r->findings[r->nfindings++];
        f->category = strdup(category);
        f->source = strdup(source);
        f->name = name ? strdup(name) : NULL;
        f->message = strdup(message ? message : "");
        if (!f->category || !f->source || (name && !f->name) || !f->message)
                return -1;
        return 0;
}

static int cmp_finding(const void *a, const void *b)
{
        const struct ia_rpt_finding *x = a, *y = b;
        int c = strcmp(x->category, y->category);

        if (c)
                return c;
        c = strcmp(x->name ? x->name : "", y->name ? y->name : "");
        if (c)
                return c;
        return strcmp(x->message, y->message);
}

/*
 * Entries the scan could not read (a file it could not open, a directory it
 * could not list), unless an image row of the scan already tells: category
 * "unreadable-REASON", the whole path and the whole message.
 */
static int unreadable_row(void *ctx, const struct ia_rdb_unreadable *row, struct ia_error *err)
{
        struct list *ls = ctx;
        bool nomem = false;
        char *reason = str_escaped(row->reason, &nomem);
        char *detail = str_escaped(row->detail, &nomem);
        char *name = display_name(ls->r, row->file_id, row->path.p, row->path.len, false, false);
        struct ia_rbuf cat;

        ia_rbuf_init(&cat);
        ia_rbuf_addf(&cat, "unreadable-%s", reason ? reason : "io");
        if (!name || cat.nomem ||
            add_finding(ls->r, &ls->cap, cat.buf, "entry", name,
                        detail ? detail : (reason ? reason : "unreadable")) < 0)
                nomem = true;
        ia_rbuf_release(&cat);
        free(reason);
        free(detail);
        free(name);
        return nomem ? NOMEM(err) : 0;
}

static int finding_row(void *ctx, const struct ia_rdb_finding *row, struct ia_error *err)
{
        struct list *ls = ctx;
        bool nomem = false;
        char *code = str_escaped(row->code, &nomem);
        char *msg = str_escaped(row->message, &nomem);
        char *name = NULL;

        if (row->path.p) {
                name = display_name(ls->r, row->file_id, row->path.p, row->path.len,
                                    row->member.p != NULL, false);
                if (!name)
                        nomem = true;
        }
        if (!nomem &&
            add_finding(ls->r, &ls->cap, code ? code : "unknown", "finding", name, msg) < 0)
                nomem = true;
        free(code);
        free(msg);
        free(name);
        return nomem ? NOMEM(err) : 0;
}

/*
 * Findings: the findings table, every image whose status is not ok and every
 * link that is not ok (deduplicated), every entry that could not be read,
 * each under a category.
 */
int ia_rpt_load_findings(struct ia_rpt *r, struct ia_error *err)
{
        struct list ls = {.r = r};
        size_t *cap = &ls.cap;

        if (ia_rdb_findings(r->db, r->scan.id, finding_row, &ls, err) < 0)
                return -1;
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                char cat[96];

                if (strcmp(m->status, "ok") == 0)
                        continue;
                snprintf(cat, sizeof(cat), "image-%s", m->status);
                if (add_finding(r, cap, cat, "image", m->name, m->error ? m->error : m->status) < 0)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < r->nlinks; i++) {
                const struct ia_rpt_link *l = &r->links[i];
                struct ia_rbuf mb;
                char cat[96];
                int bad;

                snprintf(cat, sizeof(cat), "link-%s", l->status);
                ia_rbuf_init(&mb);
                ia_rbuf_addf(&mb, "%s '%s'", l->kind, l->name);
                if (l->error)
                        ia_rbuf_addf(&mb, ": %s", l->error);
                bad = mb.nomem || add_finding(r, cap, cat, "link", l->holder, mb.buf) < 0;
                ia_rbuf_release(&mb);
                if (bad)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        if (ia_rdb_unreadable(r->db, r->scan.id, unreadable_row, &ls, err) < 0)
                return -1;
        if (r->nfindings > 1)
                qsort(r->findings, r->nfindings, sizeof(*r->findings), cmp_finding);
        return 0;
}

/* ---- trend ---- */

static int prev_row(void *ctx, const struct ia_rdb_prev *row, struct ia_error *err)
{
        struct list *ls = ctx;
        struct ia_rpt *r = ls->r;
        struct ia_rpt_prev *p;
        bool nomem = false;

        if (room(&r->prev, r->nprev, &ls->cap, sizeof(*r->prev), 64) < 0)
                return NOMEM(err);
        p = &r->prev[r->nprev++];
        memset(p, 0, sizeof(*p));
        p->path = str_bytes(row->path, &p->path_len, &nomem);
        p->member = str_bytes(row->member, &p->member_len, &nomem);
        p->allocated = row->allocated;
        p->virtual_size = row->virtual_size;
        if (nomem || !p->path)
                return NOMEM(err);
        p->name = display_name(r, row->file_id, p->path, p->path_len, p->member, false);
        p->dir = display_name(r, row->file_id, p->path, p->path_len, p->member, true);
        return !p->name || !p->dir ? NOMEM(err) : 0;
}

int ia_rpt_load_prev(struct ia_rpt *r, int64_t id, struct ia_error *err)
{
        struct list ls = {.r = r};

        if (ia_rpt_load_scan(r, id, &r->prev_scan, err) < 0)
                return -1;
        /* a running or aborted scan holds a part of the store: growth from it is meaningless */
        if (strcmp(r->prev_scan.status, "complete") != 0)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "--since: scan %" PRId64
                                    " is %s, not complete; growth is measured from a complete "
                                    "scan",
                                    id, r->prev_scan.status);
        r->has_prev = true;
        return ia_rdb_prev_images(r->db, id, prev_row, &ls, err);
}

#define NHIST 60 /* the scans the history shows (the store's query returns as many) */

static int hist_row(void *ctx, const struct ia_rdb_hist *row, struct ia_error *err)
{
        struct ia_rpt *r = ctx;
        struct ia_rpt_hist *h;
        bool nomem = false;

        if (r->nhist >= NHIST)
                return 0;
        h = &r->hist[r->nhist++];
        h->id = row->id;
        h->started_at = str_dup(row->started_at, &nomem);
        h->images = row->images;
        h->virtual_size = row->virtual_size;
        h->allocated = row->allocated;
        return nomem ? NOMEM(err) : 0;
}

int ia_rpt_load_history(struct ia_rpt *r, struct ia_error *err)
{
        r->hist = calloc(NHIST, sizeof(*r->hist));
        if (!r->hist)
                return NOMEM(err);
        return ia_rdb_history(r->db, r->scan.id, hist_row, r, err);
}
