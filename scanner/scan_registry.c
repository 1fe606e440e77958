/* The walk's callbacks and the registry of the files this scan knows (walked or referenced). */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "path.h"
#include "banned.h"

bool scan_same_identity(const struct ia_identity *a, const struct ia_identity *b)
{
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

bool scan_settled(const struct scan *s, const struct ia_identity *was)
{
        return was->mtime_ns < s->trusted_before_ns;
}

/*
 * A VMDK sparse extent without a descriptor of its own ("KDMV", with no
 * descriptor offset or an empty descriptor there, as qemu-img writes the
 * extents of twoGbMaxExtentSparse): the extent file of another image's
 * descriptor, which cannot be opened alone.  Whether it is an image is decided
 * once every image has been scanned: an extent some image uses is a data file;
 * one that nothing uses is scanned as an image (and fails with its reason).
 */
bool scan_bare_vmdk_extent(const struct ia_driver *drv, const uint8_t *head, size_t hl)
{
        uint64_t desc_off = 0;

        if (drv != &ia_drv_vmdk || hl < 36 || memcmp(head, "KDMV", 4) != 0)
                return false;
        for (int i = 7; i >= 0; i--)
                desc_off = desc_off << 8 | head[28 + i];
        return desc_off == 0 || (desc_off < hl / 512 && head[desc_off * 512] == '\0');
}

/* ---- the walk's callbacks ---- */

/* Remember the identities of the database's own files, so the walk passes them by. */
void scan_note_own_files(struct scan *s)
{
        static const char *const suffixes[] = {"", "-wal", "-shm", ".lock"};
        size_t n = strlen(s->db_path);

        s->nown = 0;
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                char *p = malloc(n + 8);
                struct stat st;

                if (!p)
                        continue;
                snprintf(p, n + 8, "%s%s", s->db_path, suffixes[i]);
                if (stat(p, &st) == 0) {
                        s->own[s->nown].dev = (uint64_t)st.st_dev;
                        s->own[s->nown].ino = (uint64_t)st.st_ino;
                        s->nown++;
                }
                free(p);
        }
}

void scan_on_walk_file(void *opaque, struct ia_walk_file *f)
{
        struct scan *s = opaque;

        for (size_t i = 0; i < s->nown && !f->lazy; i++) {
                if (s->own[i].dev == f->id.dev && s->own[i].ino == f->id.ino) {
                        free(f->rel);
                        free(f->path);
                        return;
                }
        }

        if (s->njobs == s->cap_jobs) {
                size_t nc = s->cap_jobs ? s->cap_jobs * 2 : 256;
                struct job *nj = realloc(s->jobs, nc * sizeof(*nj));

                if (!nj) {
                        atomic_store(&s->nomem, true);
                        free(f->rel);
                        free(f->path);
                        return;
                }
                s->jobs = nj;
                s->cap_jobs = nc;
        }
        memset(&s->jobs[s->njobs], 0, sizeof(s->jobs[0]));
        s->jobs[s->njobs].wf = *f;
        s->njobs++;
}

/*
 * Whether the walk must stat a regular file now rather than leave its
 * identity to the worker's open (one stat a file, not two): a file the
 * previous scan had (compared with its identity by the plan), one that may be
 * the database's own (by d_ino), and what is read before the workers (VM
 * definitions; Nova's image cache, raw by its size).
 */
bool scan_want_stat(void *opaque, const char *path, uint64_t d_ino)
{
        const struct scan *s = opaque;

        for (size_t i = 0; i < s->nown; i++)
                if (s->own[i].ino == d_ino)
                        return true;
        if (s->reuse && ia_hmap_get(&s->prev, path, strlen(path)))
                return true;
        return ia_vmdef_classify(path) != IA_VMDEF_NONE || scan_in_nova_base(path);
}

/* ---- lazy identities: taken by the open, or on demand ---- */

void scan_publish_identity(struct scan *s, struct job *jb, const struct ia_identity *id)
{
        struct ia_fid_key k = {id->dev, id->ino};

        jb->wf.id = *id;
        jb->wf.lazy = false;
        if (s->nlazy)
                s->nlazy--;
        if (jb->reg && ia_hmap_put(&s->by_fid, &k, sizeof(k), jb->reg) < 0)
                atomic_store(&s->nomem, true);
}

int scan_take_identity(struct scan *s, struct job *jb)
{
        struct ia_identity id;

        if (!jb->wf.lazy)
                return 0;
        if (ia_walk_stat_file(&s->roots[jb->wf.root], &s->dirs, &jb->wf, &id, NULL) < 0)
                return -1;
        scan_publish_identity(s, jb, &id);
        return 0;
}

/*
 * The walk's order of two paths below one root: names compared bytewise
 * within a directory, a directory's files right after it ('/' before any
 * byte of a name), as walk_dir() visits them.
 */
static int walk_order_cmp(const char *a, const char *b)
{
        for (;; a++, b++) {
                int ca = *a == '/' ? 1 : *a ? (unsigned char)*a + 1 : 0;
                int cb = *b == '/' ? 1 : *b ? (unsigned char)*b + 1 : 0;

                if (ca != cb)
                        return ca - cb;
                if (!ca)
                        return 0;
        }
}

/* The walked job at a canonical path: the jobs are in walk order, root by root. */
static struct job *job_at(struct scan *s, const char *canon)
{
        for (size_t i = 0; i < s->nroots; i++) {
                const struct ia_walk_root *r = &s->roots[i];
                const char *rel;
                size_t n, lo = 0, hi = s->njobs;

                if (r->dirfd < 0 || r->is_file || !r->dirpath)
                        continue;
                n = strlen(r->dirpath);
                if (strncmp(canon, r->dirpath, n) != 0)
                        continue;
                rel = canon + n;
                if (n == 0 || r->dirpath[n - 1] != '/') {
                        if (*rel != '/')
                                continue;
                        rel++;
                }
                while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;
                        struct job *jb = &s->jobs[mid];
                        int c = jb->device         ? 1
                                : jb->wf.root != i ? (jb->wf.root < i ? -1 : 1)
                                                   : walk_order_cmp(jb->wf.rel, rel);

                        if (c == 0)
                                return jb;
                        if (c < 0)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
        }
        return NULL;
}

struct reg_file *scan_walked_locked(struct scan *s, const struct ia_fid_key *k, const char *name)
{
        struct reg_file *r = ia_hmap_get(&s->by_fid, k, sizeof(*k));
        struct job *jb;
        char *canon;

        if (r || !s->nlazy)
                return r;
        /* a walked file whose identity is not taken yet: by its name */
        canon = ia_path_canonical(name);
        jb = canon ? job_at(s, canon) : NULL;
        free(canon);
        if (jb && jb->wf.lazy)
                (void)scan_take_identity(s, jb);
        r = ia_hmap_get(&s->by_fid, k, sizeof(*k));
        if (r)
                return r;
        /* reached by another name (a hard link from outside, a bind mount): take them all */
        for (size_t i = 0; i < s->njobs; i++)
                (void)scan_take_identity(s, &s->jobs[i]);
        s->nlazy = 0;
        return ia_hmap_get(&s->by_fid, k, sizeof(*k));
}

/* ---- hard links among lazy files ---- */

struct link_key {
        uint64_t ino;
        size_t idx;
};

static int cmp_link_key(const void *a, const void *b)
{
        const struct link_key *x = a, *y = b;

        if (x->ino != y->ino)
                return x->ino < y->ino ? -1 : 1;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * One group of files with the same inode number (d_ino for the lazy ones), in
 * walk order: their identities taken, each (dev, ino) met before is recorded
 * as a hard link of its first path, as the walk does for the files it stats.
 */
static int link_group(struct scan *s, struct ia_hmap *visited, const struct link_key *g, size_t n,
                      bool *drop)
{
        uint64_t *nl = calloc(n, sizeof(*nl));

        if (!nl)
                return -1;
        for (size_t m = 0; m < n; m++) {
                struct job *jb = &s->jobs[g[m].idx];
                struct ia_identity id;

                nl[m] = UINT64_MAX; /* stat'ed by the walk: remembered there if linked */
                if (!jb->wf.lazy)
                        continue;
                nl[m] = 0; /* could not be stat'ed: left to its worker */
                if (ia_walk_stat_file(&s->roots[jb->wf.root], &s->dirs, &jb->wf, &id, &nl[m]) ==
                    0) {
                        jb->wf.id = id;
                        jb->wf.lazy = false;
                }
        }
        for (size_t m = 0; m < n; m++) {
                struct job *jb = &s->jobs[g[m].idx];
                struct ia_fid_key k = {jb->wf.id.dev, jb->wf.id.ino};
                char *seen, *copy;
                size_t later = n;

                if (jb->wf.lazy || nl[m] <= 1)
                        continue;
                seen = ia_hmap_get(visited, &k, sizeof(k));
                if (seen && strcmp(seen, jb->wf.path) == 0)
                        continue; /* the walk's first path of it */
                for (size_t o = m + 1; seen && o < n; o++) {
                        const struct job *ob = &s->jobs[g[o].idx];

                        if (ob->wf.id.dev == k.dev && ob->wf.id.ino == k.ino &&
                            strcmp(ob->wf.path, seen) == 0)
                                later = o;
                }
                if (seen && later == n) {
                        drop[g[m].idx] = true;
                        scan_on_walk_entry(s, jb->wf.path, "hardlink", "already visited", seen);
                        continue;
                }
                /* the first of its names in walk order (before one the walk stat'ed) */
                copy = strdup(jb->wf.path);
                if (!copy || ia_hmap_put(visited, &k, sizeof(k), copy) < 0) {
                        free(copy);
                        free(nl);
                        return -1;
                }
                free(seen);
        }
        free(nl);
        return 0;
}

/*
 * The jobs whose inode number another job has too (the candidates for hard
 * links), into keys (*n of them, in walk order): one pass over a table of
 * inode numbers and how often each was met, not a sort of every file.
 */
static int inos_met_twice(const struct scan *s, struct link_key *keys, size_t *n)
{
        struct slot {
                uint64_t ino;
                size_t count;
        } * t;
        size_t cap = 16, mask;

        while (cap < 2 * s->njobs)
                cap *= 2;
        t = calloc(cap, sizeof(*t));
        if (!t)
                return -1;
        mask = cap - 1;
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; i < s->njobs; i++) {
                        uint64_t ino = s->jobs[i].wf.id.ino;
                        size_t h = (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 17) & mask;

                        if (s->jobs[i].device)
                                continue;
                        while (t[h].count && t[h].ino != ino)
                                h = (h + 1) & mask;
                        if (pass == 0) {
                                t[h].ino = ino;
                                t[h].count++;
                        } else if (t[h].count > 1) {
                                keys[(*n)++] = (struct link_key){ino, i};
                        }
                }
        }
        free(t);
        return 0;
}

int scan_resolve_links(struct scan *s, struct ia_hmap *visited)
{
        struct link_key *keys;
        bool *drop;
        size_t n = 0, nlazy = 0, out = 0;
        int rc = 0;

        for (size_t i = 0; i < s->njobs; i++)
                nlazy += s->jobs[i].wf.lazy;
        if (!nlazy)
                return 0;
        keys = malloc(s->njobs * sizeof(*keys));
        drop = calloc(s->njobs, sizeof(*drop));
        if (!keys || !drop) {
                free(keys);
                free(drop);
                return -1;
        }
        if (inos_met_twice(s, keys, &n) < 0) {
                free(keys);
                free(drop);
                return -1;
        }
        qsort(keys, n, sizeof(*keys), cmp_link_key);
        for (size_t a = 0, b; a < n && rc == 0; a = b) {
                bool any = false;

                for (b = a; b < n && keys[b].ino == keys[a].ino; b++)
                        any |= s->jobs[keys[b].idx].wf.lazy;
                if (b - a > 1 && any)
                        rc = link_group(s, visited, keys + a, b - a, drop);
        }
        for (size_t i = 0; i < s->njobs; i++) {
                if (drop[i]) {
                        free(s->jobs[i].wf.rel);
                        free(s->jobs[i].wf.path);
                        continue;
                }
                s->jobs[out++] = s->jobs[i];
        }
        s->njobs = out;
        free(keys);
        free(drop);
        return rc;
}

void scan_on_walk_entry(void *opaque, const char *path, const char *kind, const char *reason,
                        const char *detail)
{
        struct scan *s = opaque;

        if (strcmp(kind, "unreadable") == 0)
                s->problems++;
        scan_pend(s, scan_entry_rec(path, kind, reason, detail, 0));
}

void scan_on_walk_dir(void *opaque, const char *path, uint64_t allocated)
{
        struct scan *s = opaque;
        struct ia_rec *r = scan_entry_rec(path, "directory", NULL, NULL, 0);

        if (r)
                r->u.entry.allocated = allocated;
        scan_pend(s, r);
}

/* ---- the registry of files ---- */

void scan_reg_init(struct reg_file *r, int64_t id, char *path)
{
        memset(r, 0, sizeof(*r));
        r->id = id;
        r->path = path;
        atomic_init(&r->raw_backing, false);
        atomic_init(&r->backing_drv, "raw");
        atomic_init(&r->data_file, false);
}

struct reg_file *scan_reg_new(int64_t id, const char *path)
{
        struct reg_file *r = calloc(1, sizeof(*r));
        char *copy = strdup(path);

        if (!r || !copy) {
                free(r);
                free(copy);
                return NULL;
        }
        scan_reg_init(r, id, copy);
        return r;
}

static void external_times(const char *path, const struct ia_source *src, int64_t *mtime_ns,
                           int64_t *ctime_ns)
{
        struct stat st;

        *mtime_ns = *ctime_ns = 0;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_dev != src->dev ||
            (uint64_t)st.st_ino != src->ino || (uint64_t)st.st_size != src->size)
                return;
        *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        *ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
}

/* The registered file with f's identity, registering an external one if needed. */
struct reg_file *scan_reg_lookup(struct scan *s, const struct ia_file *f)
{
        struct ia_fid_key k = {f->src->dev, f->src->ino};
        struct reg_file *r;
        struct ia_rec *fr = NULL, *sf = NULL;

        pthread_mutex_lock(&s->reg_lock);
        r = scan_walked_locked(s, &k, f->name);
        if (!r) {
                /* outside the walk: by its canonical name, however it was reached */
                char *canon = ia_path_canonical(f->name);

                r = canon ? scan_reg_new(atomic_fetch_add(&s->next_file_id, 1), canon) : NULL;
                free(canon);
                if (r && s->nexternals == s->cap_externals) {
                        size_t nc = s->cap_externals ? s->cap_externals * 2 : 16;
                        struct reg_file **ne = realloc(s->externals, nc * sizeof(*ne));

                        if (ne) {
                                s->externals = ne;
                                s->cap_externals = nc;
                        }
                }
                if (!r || s->nexternals == s->cap_externals ||
                    ia_hmap_put(&s->by_fid, &k, sizeof(k), r) < 0) {
                        if (r)
                                free(r->path);
                        free(r);
                        atomic_store(&s->nomem, true);
                        pthread_mutex_unlock(&s->reg_lock);
                        return NULL;
                }
                s->externals[s->nexternals++] = r;
                r->kind = FK_EXTERNAL;
                fr = ia_rec_new(IA_REC_FILE);
                if (fr) {
                        fr->u.file.id = r->id;
                        fr->u.file.path = scan_xstrdup(r->path);
                        fr->u.file.has_identity = true;
                        fr->u.file.dev = f->src->dev;
                        fr->u.file.ino = f->src->ino;
                        fr->u.file.size = f->src->size;
                        fr->u.file.allocated = f->src->allocated;
                        /*
                         * Not walked: its times come from lstat() of the name it was
                         * reached by, when that is still the file we read (0, stored
                         * as NULL, otherwise), so that an image whose chain reaches
                         * here can be carried over by the next scan.
                         */
                        external_times(r->path, f->src, &fr->u.file.mtime_ns, &fr->u.file.ctime_ns);
                }
                sf = scan_file_rec(r->id, FK_EXTERNAL, false);
        }
        pthread_mutex_unlock(&s->reg_lock);
        if (fr || sf) {
                scan_put(s, fr);
                scan_put(s, sf);
        }
        return r;
}
