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

        for (size_t i = 0; i < s->nown; i++) {
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
        r = ia_hmap_get(&s->by_fid, &k, sizeof(k));
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
