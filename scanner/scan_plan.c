/* Planning from the previous complete scan: what is unchanged and carried over, not read. */
#define _GNU_SOURCE /* before any system header */
#include "rawdisk.h"
#include "scan.h"
#include "store_plan.h"
#include "banned.h"

/*
 * Whether what the previous scan read of a file with identity was, the same
 * identity now, can be trusted.  Not for a file modified shortly before that
 * scan began: a write landing within the file system's timestamp granularity
 * after our stat leaves mtime as it was (a "racily clean" file).  Such a file
 * is read again, and trusted from the first scan that begins IA_RACY_NS after
 * its mtime.
 */
#define IA_RACY_NS (2 * 1000000000LL) /* covers FAT's 2 s and 1 s file systems */

/* ---- planning: the previous scan ---- */

/* A stored scan_files.kind as a file kind (FK_NONE: unknown). */
static enum file_kind kind_of(const char *k)
{
        for (int i = FK_NONE + 1; k && i < FK_COUNT; i++)
                if (strcmp(k, scan_kind_names[i]) == 0)
                        return (enum file_kind)i;
        return FK_NONE;
}

/*
 * The job of a walked file the previous scan had too (reuse consults no
 * other): the previous scan's file by path, which scan_plan() points at it.
 */
static const struct job *walked_job(const struct scan *s, const void *path, size_t n)
{
        const struct prev_file *p = ia_hmap_get(&s->prev, path, n);

        return p ? p->job : NULL;
}

/* The current identity of path: from this walk, or lstat for files outside it. */
static bool current_identity(const struct scan *s, const char *path, struct ia_identity *id)
{
        const struct job *jb = walked_job(s, path, strlen(path));
        struct stat st;

        if (jb) {
                *id = jb->wf.id;
                return true;
        }
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return false;
        id->dev = (uint64_t)st.st_dev;
        id->ino = (uint64_t)st.st_ino;
        id->size = (uint64_t)st.st_size;
        id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        id->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
        return true;
}

struct reusable {
        struct scan *s;
        const char *path; /* the file's */
        int64_t image_id;
        bool found, ok, raw;
};

static int on_prev_image(const struct ia_plan_image *im, void *opaque)
{
        struct reusable *r = opaque;
        const char *by = im->recognised_by;

        r->found = true;
        r->image_id = im->id;
        r->ok = im->status && strcmp(im->status, "ok") == 0;
        /* a raw backing file is an image only while an image uses it; a raw disk
         * by content or by name stays one by itself */
        r->raw = im->format && strcmp(im->format, "raw") == 0 &&
                 (!by || strcmp(by, "reference") == 0 || strcmp(by, "vm-config") == 0 ||
                  strcmp(by, "layout") == 0);
        /* a raw disk by its name whose name no longer matches --raw-glob: judged again */
        if (by && strcmp(by, "name") == 0 &&
            !ia_rawdisk_name_matches(r->path, (const char *const *)r->s->raw_globs))
                r->ok = false;
        return 0;
}

/* The identity a previous scan stored (allocated is not stored: 0). */
static void identity_of(const struct ia_plan_ident *in, struct ia_identity *out)
{
        out->dev = in->dev;
        out->ino = in->ino;
        out->size = in->size;
        out->mtime_ns = in->mtime_ns;
        out->ctime_ns = in->ctime_ns;
        out->allocated = 0;
}

/* Every file of the chain must be unchanged, and every link must have been fine. */
static int on_chain_link(const struct ia_plan_link *l, void *opaque)
{
        struct reusable *r = opaque;
        struct ia_identity was = {0}, now;
        char *path;

        if (!l->status || strcmp(l->status, "ok") != 0 || !l->has_target || l->target_in_archive) {
                r->ok = false;
                return 1;
        }
        path = strndup(l->ident.path, l->ident.path_len);
        identity_of(&l->ident, &was);
        r->ok = path && current_identity(r->s, path, &now) && scan_same_identity(&was, &now) &&
                scan_settled(r->s, &was);
        free(path);
        return !r->ok;
}

/*
 * Can the previous scan's image of file_id be carried over?  Its id in
 * *image_id; *raw tells that it was a raw file (an image only while some
 * image uses it as a raw backing file, so settle_plain_files() decides).
 * A previous scan that cannot be read carries nothing over.
 */
static bool image_reusable(struct scan *s, struct ia_plan *plan, int64_t file_id, const char *path,
                           int64_t *image_id, bool *raw)
{
        struct reusable r = {.s = s, .path = path};

        *raw = false;
        if (ia_plan_image_of(plan, file_id, on_prev_image, &r) < 0 || !r.found)
                return false;
        *image_id = r.image_id;
        *raw = r.raw;
        if (!r.ok)
                return false;
        if (ia_plan_each_link(plan, IA_LINKS_ALL, r.image_id, on_chain_link, &r) < 0)
                return false;
        return r.ok;
}

/*
 * Its findings are copied with it: an image read again that meets the same
 * (file, code, message), in a shared base, adds no second.
 */
static int on_reused_finding(int64_t file_id, const char *code, const char *msg, void *opaque)
{
        struct scan *s = opaque;
        size_t n = 24 + (code ? strlen(code) : 0) + (msg ? strlen(msg) : 0) + 3;
        char *key = malloc(n);

        if (!key)
                return 0;
        snprintf(key, n, "%lld %s %s", (long long)file_id, code ? code : "", msg ? msg : "");
        if (!ia_hmap_get(&s->findings, key, strlen(key)))
                ia_hmap_put(&s->findings, key, strlen(key), (void *)1);
        free(key);
        return 0;
}

static int on_reused_link(const struct ia_plan_link *l, void *opaque)
{
        const struct scan *s = opaque;
        const struct job *t = walked_job(s, l->ident.path, l->ident.path_len);

        if (!t || !l->kind)
                return 0;
        if (strcmp(l->kind, "backing") != 0)
                atomic_store(&t->reg->data_file, true);
        else if (l->target_format &&
                 (strcmp(l->target_format, "raw") == 0 || strcmp(l->target_format, "vpc") == 0)) {
                atomic_store(&t->reg->backing_drv, ia_driver_find(l->target_format)->name);
                atomic_store(&t->reg->raw_backing, true);
        }
        return 0;
}

/*
 * What the carried-over images say about the files they use: a raw backing
 * file stays an image, a data file or extent stays a data file (a scanned
 * image says the same through on_link() and scan_image()); and the findings
 * they carry are known, so none is recorded twice.
 */
static int mark_reused_refs(struct scan *s, struct ia_plan *plan)
{
        for (size_t i = 0; i < s->njobs; i++) {
                if (s->jobs[i].action != JOB_REUSE_IMAGE)
                        continue;
                if (ia_plan_each_finding(plan, s->jobs[i].prev_image_id, on_reused_finding, s) <
                        0 ||
                    ia_plan_each_link(plan, IA_LINKS_OK, s->jobs[i].prev_image_id, on_reused_link,
                                      s) < 0)
                        return -1;
        }
        return 0;
}

void scan_free_prev(void *value, void *opaque)
{
        (void)opaque;
        free(value);
}

/*
 * ---- planning: unchanged archives ----
 *
 * An archive whose path and identity are those of the previous complete scan
 * (with the same roots) is not read again when its recorded results are
 * "fine": results that only the archive's bytes decide.  Inside an archive
 * names resolve to members of the same archive only, so an unchanged archive
 * gives the same rows again, except for what depends on the moment (I/O
 * errors, memory, spool space, the time budget) and for refusals, which are
 * re-examined.  Precisely, for the archive and everything the previous scan
 * recorded inside it (nested archives included):
 *   - no member is an 'unreadable' entry; no 'archive-error' or
 *     'archive-limit' finding (a cap hit, a damaged or nested-too-deep archive);
 *   - every image was opened (virtual_size known) and its status is 'ok' or
 *     one the archive alone decides: 'missing' (no such member), 'loop',
 *     'too-deep', 'empty-name';
 *   - every link of its chain is 'ok' to a member of the same outermost
 *     archive, or has one of those four statuses.
 * Anything else ('outside-archive', 'protocol', 'not-regular', 'unreadable',
 * an error category, 'limit') has the archive read again at every scan.  A
 * fine archive is carried over whole: its images with IA_REC_REUSE, its own
 * and its members' scan_files, entries, findings and ovf_disks rows with one
 * IA_REC_REUSE_MEMBERS record; its members keep their files rows.
 */

struct arch_plan {
        struct job *jb;
        bool bad;
        int64_t *images; /* its images (and nested archives') in the previous scan */
        size_t nimages, cap_images;
};

struct prev_member {
        int64_t id, parent; /* files.id, files.archive_id */
};

struct arch_planning {
        struct scan *s;
        struct ia_hmap tops;    /* walked archive's file id -> struct arch_plan * */
        struct ia_hmap members; /* member file id -> struct prev_member * */
        int64_t *ids;           /* files to carry over */
        size_t nids, cap_ids;
        bool failed;
};

static bool push_id(int64_t **v, size_t *n, size_t *cap, int64_t id)
{
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                int64_t *nv = realloc(*v, nc * sizeof(*nv));

                if (!nv)
                        return false;
                *v = nv;
                *cap = nc;
        }
        (*v)[(*n)++] = id;
        return true;
}

/* A status an unchanged archive gives again (see above). */
static bool archive_decides(const char *status)
{
        static const char *const fine[] = {"ok", "missing", "loop", "too-deep", "empty-name"};

        for (size_t i = 0; status && i < sizeof(fine) / sizeof(fine[0]); i++)
                if (strcmp(status, fine[i]) == 0)
                        return true;
        return false;
}

/* The candidate archive a file of the previous scan is (or lies in, at any depth), or NULL. */
static struct arch_plan *top_of(const struct arch_planning *ap, int64_t id)
{
        for (int depth = 0; depth < 64; depth++) {
                struct arch_plan *p = ia_hmap_get(&ap->tops, &id, sizeof(id));
                struct prev_member *m;

                if (p)
                        return p;
                m = ia_hmap_get(&ap->members, &id, sizeof(id));
                if (!m)
                        return NULL;
                id = m->parent;
        }
        return NULL;
}

static void collect_member(void *value, void *opaque)
{
        struct prev_member *m = value;
        struct arch_planning *ap = opaque;
        struct arch_plan *p = top_of(ap, m->id);

        if (p && !p->bad && !push_id(&ap->ids, &ap->nids, &ap->cap_ids, m->id))
                ap->failed = true;
}

/* The members the previous scan recorded rows for, with their archive. */
static int on_prev_member(int64_t id, int64_t archive_id, void *opaque)
{
        struct arch_planning *ap = opaque;
        struct prev_member *m = malloc(sizeof(*m));

        if (!m) {
                ap->failed = true;
                return 1;
        }
        m->id = id;
        m->parent = archive_id;
        if (ia_hmap_put(&ap->members, &m->id, sizeof(m->id), m) < 0) {
                free(m);
                ap->failed = true;
                return 1;
        }
        return 0;
}

/* An unreadable member, an archive error or cap. */
static int on_archive_problem(int64_t file_id, void *opaque)
{
        struct arch_plan *p = top_of(opaque, file_id);

        if (p)
                p->bad = true;
        return 0;
}

/* An image of the previous scan: one inside a candidate archive must be fine. */
static int on_prev_arch_image(int64_t id, int64_t file_id, const char *status, bool opened,
                              void *opaque)
{
        struct arch_planning *ap = opaque;
        struct arch_plan *p = top_of(ap, file_id);

        if (!p || p->bad)
                return 0;
        if (!opened || !archive_decides(status))
                p->bad = true;
        else if (!push_id(&p->images, &p->nimages, &p->cap_images, id)) {
                ap->failed = true;
                return 1;
        }
        return 0;
}

struct arch_link_check {
        struct arch_planning *ap;
        struct arch_plan *plan;
};

/* A link of such an image: inside the same outermost archive, or a status it decides. */
static int on_arch_link(const struct ia_plan_link *l, void *opaque)
{
        struct arch_link_check *c = opaque;
        int64_t target = l->target_file_id;

        if (!archive_decides(l->status))
                c->plan->bad = true;
        else if (strcmp(l->status, "ok") == 0 &&
                 (!ia_hmap_get(&c->ap->members, &target, sizeof(target)) ||
                  top_of(c->ap, target) != c->plan))
                c->plan->bad = true;
        return c->plan->bad;
}

/* Decide which of the walked archives unchanged since the previous scan are carried over. */
static void plan_archives(struct scan *s, struct ia_plan *plan)
{
        struct arch_planning ap;
        struct arch_plan *plans = NULL;
        struct ia_rec *rec = NULL;
        size_t ncand = 0, n = 0;

        memset(&ap, 0, sizeof(ap));
        ap.s = s;
        ia_hmap_init(&ap.tops);
        ia_hmap_init(&ap.members);
        for (size_t i = 0; i < s->njobs; i++)
                if (s->jobs[i].reg->prev_kind == FK_ARCHIVE)
                        ncand++;
        if (!ncand)
                return;
        plans = calloc(ncand, sizeof(*plans));
        if (!plans)
                goto out;
        for (size_t i = 0; i < s->njobs; i++) {
                struct job *jb = &s->jobs[i];

                if (jb->reg->prev_kind != FK_ARCHIVE)
                        continue;
                plans[n].jb = jb;
                if (ia_hmap_put(&ap.tops, &jb->reg->id, sizeof(jb->reg->id), &plans[n]) < 0)
                        goto out;
                n++;
        }
        if (ia_plan_each_member(plan, on_prev_member, &ap) < 0 || ap.failed)
                goto out;
        /* unreadable members, archive errors and caps */
        if (ia_plan_each_archive_problem(plan, on_archive_problem, &ap) < 0)
                goto out;
        /* the images inside, in the order they were numbered */
        if (ia_plan_each_image(plan, on_prev_arch_image, &ap) < 0 || ap.failed)
                goto out;
        /* their links: inside the same outermost archive, or statuses it decides */
        for (size_t i = 0; i < n; i++) {
                struct arch_link_check c = {&ap, &plans[i]};

                for (size_t k = 0; k < plans[i].nimages && !plans[i].bad; k++)
                        if (ia_plan_each_link(plan, IA_LINKS_TARGETS, plans[i].images[k],
                                              on_arch_link, &c) < 0 &&
                            !plans[i].bad)
                                goto out;
        }
        /* the files whose rows are carried over: the archives and their members */
        ia_hmap_each(&ap.members, collect_member, &ap);
        for (size_t i = 0; i < n && !ap.failed; i++)
                if (!plans[i].bad && !push_id(&ap.ids, &ap.nids, &ap.cap_ids, plans[i].jb->reg->id))
                        ap.failed = true;
        if (ap.failed || !ap.nids || !(rec = ia_rec_new(IA_REC_REUSE_MEMBERS)))
                goto out;
        rec->u.reuse_members.prev_scan_id = s->prev_scan;
        rec->u.reuse_members.file_ids = ap.ids;
        rec->u.reuse_members.n = ap.nids;
        ap.ids = NULL;
        scan_pend(s, rec);
        for (size_t i = 0; i < n; i++) {
                if (plans[i].bad)
                        continue;
                plans[i].jb->action = JOB_REUSE_ARCHIVE;
                plans[i].jb->prev_images = plans[i].images;
                plans[i].jb->nprev_images = plans[i].nimages;
                plans[i].images = NULL;
        }
out:
        /* on any failure nothing is carried over: the archives are read */
        for (size_t i = 0; plans && i < n; i++)
                free(plans[i].images);
        free(plans);
        free(ap.ids);
        ia_hmap_each(&ap.members, scan_free_prev, NULL);
        ia_hmap_release(&ap.members);
        ia_hmap_release(&ap.tops);
}

/*
 * The layers the previous scan's files have, stored already: a layer read
 * again with the same file, format and data files is not written again.
 * Only files this scan keeps (unchanged, same files row) can match.
 */
struct layer_load {
        struct scan *s;
        bool failed;
};

static int on_prev_layer(int64_t id, int64_t file_id, const char *format, const char *deps,
                         void *opaque)
{
        struct layer_load *ll = opaque;
        char key[512];
        int n = snprintf(key, sizeof(key), "%lld %s %s", (long long)file_id, format, deps);

        if (n > 0 && (size_t)n < sizeof(key) &&
            ia_hmap_put(&ll->s->layer_ids, key, (size_t)n, (void *)(intptr_t)id) < 0) {
                ll->failed = true;
                return 1;
        }
        return 0;
}

static int load_layers(struct scan *s, struct ia_plan *plan)
{
        struct layer_load ll = {s, false};

        if (ia_plan_each_layer(plan, IMGAUDIT_VERSION, on_prev_layer, &ll) < 0 || ll.failed)
                return -1;
        return 0;
}

/*
 * Before the walk: the previous complete scan, whether its results may be
 * reused, and its walked files (so that the walk reads only what changed).
 */
/* A walked file of the previous scan, by path. */
static int on_prev_file(const struct ia_plan_file *f, void *opaque)
{
        struct scan *s = opaque;
        struct prev_file *p = calloc(1, sizeof(*p));

        if (!p)
                return 1;
        p->id = f->id;
        identity_of(&f->ident, &p->ident);
        p->kind = kind_of(f->kind);
        if (ia_hmap_put(&s->prev, f->ident.path, f->ident.path_len, p) < 0)
                free(p);
        return 0;
}

int scan_load_prev(struct scan *s, struct ia_error *err)
{
        struct ia_plan_scan last;
        struct ia_plan *plan = NULL;
        bool reuse = false;
        int rc = -1;

        /*
         * That scan's walk began after its start, known to the nanosecond
         * (started_ns, schema 3; before it, started_at: whole seconds, so a
         * second later at most).
         */
        ia_plan_last_complete(s->store, &last);
        s->prev_scan = last.id;
        if (last.id) {
                int64_t sec = last.started_sec; /* 0 if not a date */

                /* a start we cannot read trusts no file */
                if (last.has_started_ns && last.started_ns > IA_RACY_NS)
                        s->trusted_before_ns = last.started_ns - IA_RACY_NS;
                else if (sec > 0 && sec < INT64_MAX / 1000000000 - 1)
                        s->trusted_before_ns = sec * 1000000000LL - IA_RACY_NS;
                else
                        s->trusted_before_ns = INT64_MIN;
        }
        if (s->full || getenv("IMGAUDIT_NO_INCREMENTAL"))
                s->prev_scan = 0;
        /* another version's results may differ: read everything again */
        if (s->prev_scan &&
            ia_plan_same_roots(s->store, s->prev_scan, s->root_args, s->nroots, s->allow,
                               s->nallow) &&
            ia_plan_same_version(s->store, s->prev_scan, IMGAUDIT_VERSION))
                reuse = true;
        if (reuse) {
                plan = ia_plan_new(s->store, s->prev_scan);
                if (!plan) {
                        ia_error_set(err, IA_ERR_NOMEM, "out of memory planning the scan");
                        goto out;
                }
                if (ia_plan_each_file(plan, on_prev_file, s) < 0) {
                        ia_error_set(err, IA_ERR_IO, "reading the previous scan: %s",
                                     ia_store_errmsg(s->store));
                        goto out;
                }
        }
        s->reuse = reuse;
        rc = 0;
out:
        ia_plan_free(plan);
        return rc;
}

/* Give every walked file its id and decide what to do with it. */
int scan_plan(struct scan *s, struct ia_error *err)
{
        struct ia_plan *plan = NULL;
        struct prev_file **prevs = NULL;
        int64_t max_file, max_image, max_layer;
        bool reuse = s->reuse;
        int rc = -1;

        if (ia_store_max_ids(s->store, &max_file, &max_image, &max_layer, err) < 0)
                return -1;
        atomic_store(&s->next_file_id, max_file + 1);
        atomic_store(&s->next_image_id, max_image + 1);
        atomic_store(&s->next_layer_id, max_layer + 1);
        if (reuse && !(plan = ia_plan_new(s->store, s->prev_scan)))
                goto nomem;
        /* each walked file's previous scan's file, which points back at its job */
        prevs = s->njobs ? calloc(s->njobs, sizeof(*prevs)) : NULL;
        if (s->njobs && !prevs)
                goto nomem;
        for (size_t i = 0; reuse && i < s->njobs; i++) {
                prevs[i] = ia_hmap_get(&s->prev, s->jobs[i].wf.path, strlen(s->jobs[i].wf.path));
                if (prevs[i])
                        prevs[i]->job = &s->jobs[i];
        }
        if (ia_hmap_reserve(&s->by_fid, s->by_fid.count + s->njobs) < 0)
                goto nomem;
        s->regs = s->njobs ? calloc(s->njobs, sizeof(*s->regs)) : NULL;
        if (s->njobs && !s->regs)
                goto nomem;
        for (size_t i = 0; i < s->njobs; i++) {
                struct job *jb = &s->jobs[i];
                struct prev_file *p = prevs[i];
                struct ia_fid_key k = {jb->wf.id.dev, jb->wf.id.ino};
                bool same = p && scan_same_identity(&p->ident, &jb->wf.id);
                bool raw = false;

                jb->reg = &s->regs[i];
                scan_reg_init(jb->reg, same ? p->id : atomic_fetch_add(&s->next_file_id, 1),
                              jb->wf.path);
                /* a lazy file is known by (dev, ino) once its worker opens it */
                jb->lazy_open = jb->wf.lazy;
                if (jb->wf.lazy)
                        s->nlazy++;
                else if (ia_hmap_put(&s->by_fid, &k, sizeof(k), jb->reg) < 0)
                        goto nomem;
                jb->reg->walked = true;
                jb->new_file = !same;
                jb->action = JOB_READ;
                /* a device's bytes change with no time of its node changing: always read */
                if (!same || !p->kind || !scan_settled(s, &p->ident) || jb->device)
                        continue;
                /* what the previous scan's --raw-glob did not call a raw disk, this one may */
                if (p->kind == FK_NOT_AN_IMAGE && p->ident.size > 0 &&
                    ia_rawdisk_name_matches(jb->wf.path, (const char *const *)s->raw_globs))
                        continue;
                if (p->kind == FK_NOT_AN_IMAGE || p->kind == FK_DATA_FILE) {
                        jb->action = JOB_REUSE_PLAIN;
                        jb->reg->prev_kind = p->kind;
                } else if (p->kind == FK_ARCHIVE_SKIPPED && s->no_archives) {
                        jb->action = JOB_REUSE_PLAIN;
                        jb->reg->prev_kind = p->kind;
                } else if (p->kind == FK_IMAGE &&
                           image_reusable(s, plan, p->id, jb->wf.path, &jb->prev_image_id, &raw)) {
                        jb->action = raw ? JOB_REUSE_PLAIN : JOB_REUSE_IMAGE;
                        if (raw)
                                jb->reg->prev_kind = p->kind;
                } else if (p->kind == FK_ARCHIVE && !s->no_archives) {
                        jb->reg->prev_kind = p->kind; /* decided by plan_archives() */
                }
        }
        if (reuse && mark_reused_refs(s, plan) < 0) {
                ia_error_set(err, IA_ERR_IO, "reading the previous scan: %s",
                             ia_store_errmsg(s->store));
                goto out;
        }
        if (reuse)
                plan_archives(s, plan);
        if (reuse && load_layers(s, plan) < 0) {
                ia_error_set(err, IA_ERR_IO, "reading the previous scan: %s",
                             ia_store_errmsg(s->store));
                goto out;
        }
        rc = 0;
        goto out;
nomem:
        ia_error_set(err, IA_ERR_NOMEM, "out of memory planning the scan");
out:
        ia_hmap_each(&s->prev, scan_free_prev, NULL);
        ia_hmap_release(&s->prev);
        ia_hmap_init(&s->prev);
        free(prevs);
        ia_plan_free(plan);
        return rc;
}
