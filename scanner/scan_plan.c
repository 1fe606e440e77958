/* Planning from the previous complete scan: what is unchanged and carried over, not read. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
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
static enum file_kind kind_of(const unsigned char *k)
{
        for (int i = FK_NONE + 1; k && i < FK_COUNT; i++)
                if (strcmp((const char *)k, scan_kind_names[i]) == 0)
                        return (enum file_kind)i;
        return FK_NONE;
}

static bool roots_unchanged(struct scan *s, sqlite3 *db)
{
        sqlite3_stmt *st;
        int64_t count = -1;
        bool ok = true;

        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM scan_roots WHERE scan_id = ?1", -1, &st,
                               NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_int64(st, 1, s->prev_scan);
        if (sqlite3_step(st) == SQLITE_ROW)
                count = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (count != (int64_t)(s->nroots + s->nallow))
                return false;
        if (sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM scan_roots WHERE scan_id = ?1 AND role = ?2 "
                               "AND path = ?3",
                               -1, &st, NULL) != SQLITE_OK)
                return false;
        for (size_t i = 0; ok && i < s->nroots + s->nallow; i++) {
                const char *arg = i < s->nroots ? s->root_args[i] : s->allow[i - s->nroots];
                int64_t times = 0; /* a root may be given more than once */

                for (size_t k = i < s->nroots ? 0 : s->nroots;
                     k < (i < s->nroots ? s->nroots : s->nroots + s->nallow); k++)
                        if (strcmp(k < s->nroots ? s->root_args[k] : s->allow[k - s->nroots],
                                   arg) == 0)
                                times++;
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, s->prev_scan);
                sqlite3_bind_text(st, 2, i < s->nroots ? "scan" : "allow", -1, SQLITE_STATIC);
                ia_store_bind_path(st, 3, arg);
                ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == times;
        }
        sqlite3_finalize(st);
        return ok;
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

/*
 * Can the previous scan's image of file_id be carried over?  Its id in
 * *image_id; *raw tells that it was a raw file (an image only while some
 * image uses it as a raw backing file, so settle_plain_files() decides).
 */
static bool image_reusable(struct scan *s, sqlite3 *db, int64_t file_id, int64_t *image_id,
                           bool *raw)
{
        sqlite3_stmt *st;
        bool ok = false;

        *raw = false;
        if (sqlite3_prepare_v2(db,
                               "SELECT id, status, format, recognised_by FROM images "
                               "WHERE scan_id = ?1 AND file_id = ?2",
                               -1, &st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_int64(st, 1, s->prev_scan);
        sqlite3_bind_int64(st, 2, file_id);
        if (sqlite3_step(st) == SQLITE_ROW) {
                const unsigned char *status = sqlite3_column_text(st, 1);
                const unsigned char *format = sqlite3_column_text(st, 2);

                *image_id = sqlite3_column_int64(st, 0);
                ok = status && strcmp((const char *)status, "ok") == 0;
                const unsigned char *by = sqlite3_column_text(st, 3);

                /* a raw backing file is an image only while an image uses it; a raw disk
                 * by content or by name stays one by itself */
                *raw = format && strcmp((const char *)format, "raw") == 0 &&
                       (!by || strcmp((const char *)by, "reference") == 0 ||
                        strcmp((const char *)by, "vm-config") == 0 ||
                        strcmp((const char *)by, "layout") == 0);
        }
        sqlite3_finalize(st);
        if (!ok)
                return false;
        /* Every file of the chain must be unchanged, and every link must have been fine. */
        if (sqlite3_prepare_v2(db,
                               "SELECT l.status, f.path, f.dev, f.ino, f.size, f.mtime_ns, "
                               "f.ctime_ns, f.archive_id FROM links l LEFT JOIN files f "
                               "ON f.id = l.target_file_id WHERE l.image_id = ?1",
                               -1, &st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_int64(st, 1, *image_id);
        while (ok && sqlite3_step(st) == SQLITE_ROW) {
                const unsigned char *status = sqlite3_column_text(st, 0);
                struct ia_identity was, now;
                char *path;

                if (!status || strcmp((const char *)status, "ok") != 0 ||
                    sqlite3_column_type(st, 1) == SQLITE_NULL ||
                    sqlite3_column_type(st, 7) != SQLITE_NULL) {
                        ok = false;
                        break;
                }
                path = strndup(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
                was.dev = (uint64_t)sqlite3_column_int64(st, 2);
                was.ino = (uint64_t)sqlite3_column_int64(st, 3);
                was.size = (uint64_t)sqlite3_column_int64(st, 4);
                was.mtime_ns = sqlite3_column_int64(st, 5);
                was.ctime_ns = sqlite3_column_int64(st, 6);
                ok = path && current_identity(s, path, &now) && scan_same_identity(&was, &now) &&
                     scan_settled(s, &was);
                free(path);
        }
        sqlite3_finalize(st);
        return ok;
}

/*
 * What the carried-over images say about the files they use: a raw backing
 * file stays an image, a data file or extent stays a data file (a scanned
 * image says the same through on_link() and scan_image()); and the findings
 * they carry are known, so none is recorded twice.
 */
static int mark_reused_refs(struct scan *s, sqlite3 *db)
{
        sqlite3_stmt *st, *fst;

        if (sqlite3_prepare_v2(db,
                               "SELECT l.kind, f.path, ti.format FROM links l "
                               "JOIN files f ON f.id = l.target_file_id "
                               "LEFT JOIN images ti ON ti.scan_id = l.scan_id "
                               "AND ti.file_id = l.target_file_id "
                               "WHERE l.image_id = ?1 AND l.status = 'ok'",
                               -1, &st, NULL) != SQLITE_OK)
                return -1;
        if (sqlite3_prepare_v2(db,
                               "SELECT file_id, code, message FROM findings WHERE image_id = ?1",
                               -1, &fst, NULL) != SQLITE_OK) {
                sqlite3_finalize(st);
                return -1;
        }
        for (size_t i = 0; i < s->njobs; i++) {
                if (s->jobs[i].action != JOB_REUSE_IMAGE)
                        continue;
                /*
                 * Its findings are copied with it: an image read again that meets
                 * the same (file, code, message), in a shared base, adds no second.
                 */
                sqlite3_reset(fst);
                sqlite3_bind_int64(fst, 1, s->jobs[i].prev_image_id);
                while (sqlite3_step(fst) == SQLITE_ROW) {
                        const char *code = (const char *)sqlite3_column_text(fst, 1);
                        const char *msg = (const char *)sqlite3_column_text(fst, 2);
                        size_t n = 24 + (code ? strlen(code) : 0) + (msg ? strlen(msg) : 0) + 3;
                        char *key = malloc(n);

                        if (!key)
                                continue;
                        snprintf(key, n, "%lld %s %s", (long long)sqlite3_column_int64(fst, 0),
                                 code ? code : "", msg ? msg : "");
                        if (!ia_hmap_get(&s->findings, key, strlen(key)))
                                ia_hmap_put(&s->findings, key, strlen(key), (void *)1);
                        free(key);
                }
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, s->jobs[i].prev_image_id);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        const unsigned char *kind = sqlite3_column_text(st, 0);
                        const unsigned char *format = sqlite3_column_text(st, 2);
                        const struct job *t = walked_job(s, sqlite3_column_blob(st, 1),
                                                         (size_t)sqlite3_column_bytes(st, 1));

                        if (!t || !kind)
                                continue;
                        if (strcmp((const char *)kind, "backing") != 0)
                                atomic_store(&t->reg->data_file, true);
                        else if (format && (strcmp((const char *)format, "raw") == 0 ||
                                            strcmp((const char *)format, "vpc") == 0)) {
                                atomic_store(&t->reg->backing_drv,
                                             ia_driver_find((const char *)format)->name);
                                atomic_store(&t->reg->raw_backing, true);
                        }
                }
        }
        sqlite3_finalize(st);
        sqlite3_finalize(fst);
        return 0;
}

/* Was the previous complete scan made by this very version of imgaudit? */
static bool same_tool_version(struct scan *s, sqlite3 *db)
{
        sqlite3_stmt *st;
        bool same = false;

        if (sqlite3_prepare_v2(db, "SELECT tool_version FROM scans WHERE id = ?1", -1, &st, NULL) !=
            SQLITE_OK)
                return false;
        sqlite3_bind_int64(st, 1, s->prev_scan);
        if (sqlite3_step(st) == SQLITE_ROW) {
                const unsigned char *v = sqlite3_column_text(st, 0);

                same = v && strcmp((const char *)v, IMGAUDIT_VERSION) == 0;
        }
        sqlite3_finalize(st);
        return same;
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
static bool archive_decides(const unsigned char *status)
{
        static const char *const fine[] = {"ok", "missing", "loop", "too-deep", "empty-name"};

        for (size_t i = 0; status && i < sizeof(fine) / sizeof(fine[0]); i++)
                if (strcmp((const char *)status, fine[i]) == 0)
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

static bool prev_query(struct scan *s, sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
        if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_int64(*st, 1, s->prev_scan);
        return true;
}

/* Decide which of the walked archives unchanged since the previous scan are carried over. */
static void plan_archives(struct scan *s, sqlite3 *db)
{
        struct arch_planning ap;
        struct arch_plan *plans = NULL;
        struct ia_rec *rec = NULL;
        sqlite3_stmt *st = NULL;
        size_t ncand = 0, n = 0;
        int rc;

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
        /* the members the previous scan recorded rows for, with their archive */
        if (!prev_query(s, db,
                        "SELECT f.id, f.archive_id FROM (SELECT file_id FROM scan_files "
                        "WHERE scan_id = ?1 UNION SELECT file_id FROM entries WHERE scan_id = ?1 "
                        "AND file_id IS NOT NULL UNION SELECT file_id FROM findings "
                        "WHERE scan_id = ?1 AND file_id IS NOT NULL) x "
                        "JOIN files f ON f.id = x.file_id WHERE f.archive_id IS NOT NULL",
                        &st))
                goto out;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct prev_member *m = malloc(sizeof(*m));

                if (!m)
                        goto out;
                m->id = sqlite3_column_int64(st, 0);
                m->parent = sqlite3_column_int64(st, 1);
                if (ia_hmap_put(&ap.members, &m->id, sizeof(m->id), m) < 0) {
                        free(m);
                        goto out;
                }
        }
        if (rc != SQLITE_DONE)
                goto out;
        sqlite3_finalize(st);
        /* unreadable members, archive errors and caps */
        if (!prev_query(s, db,
                        "SELECT file_id FROM entries WHERE scan_id = ?1 AND kind = 'unreadable' "
                        "AND file_id IS NOT NULL UNION ALL SELECT file_id FROM findings "
                        "WHERE scan_id = ?1 AND code IN ('archive-error', 'archive-limit')",
                        &st))
                goto out;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct arch_plan *p = top_of(&ap, sqlite3_column_int64(st, 0));

                if (p)
                        p->bad = true;
        }
        if (rc != SQLITE_DONE)
                goto out;
        sqlite3_finalize(st);
        /* the images inside, in the order they were numbered */
        if (!prev_query(s, db,
                        "SELECT id, file_id, status, virtual_size IS NOT NULL FROM images "
                        "WHERE scan_id = ?1 ORDER BY id",
                        &st))
                goto out;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct arch_plan *p = top_of(&ap, sqlite3_column_int64(st, 1));

                if (!p || p->bad)
                        continue;
                if (!sqlite3_column_int(st, 3) || !archive_decides(sqlite3_column_text(st, 2)))
                        p->bad = true;
                else if (!push_id(&p->images, &p->nimages, &p->cap_images,
                                  sqlite3_column_int64(st, 0)))
                        goto out;
        }
        if (rc != SQLITE_DONE)
                goto out;
        sqlite3_finalize(st);
        /* their links: inside the same outermost archive, or statuses it decides */
        st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT status, target_file_id FROM links WHERE image_id = ?1",
                               -1, &st, NULL) != SQLITE_OK)
                goto out;
        for (size_t i = 0; i < n; i++) {
                for (size_t k = 0; k < plans[i].nimages && !plans[i].bad; k++) {
                        sqlite3_reset(st);
                        sqlite3_bind_int64(st, 1, plans[i].images[k]);
                        while (!plans[i].bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                                const unsigned char *status = sqlite3_column_text(st, 0);
                                int64_t target = sqlite3_column_int64(st, 1);

                                if (!archive_decides(status))
                                        plans[i].bad = true;
                                else if (strcmp((const char *)status, "ok") == 0 &&
                                         (!ia_hmap_get(&ap.members, &target, sizeof(target)) ||
                                          top_of(&ap, target) != &plans[i]))
                                        plans[i].bad = true;
                        }
                        if (!plans[i].bad && rc != SQLITE_DONE)
                                goto out;
                }
        }
        sqlite3_finalize(st);
        st = NULL;
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
        sqlite3_finalize(st);
        for (size_t i = 0; plans && i < n; i++)
                free(plans[i].images);
        free(plans);
        free(ap.ids);
        ia_hmap_each(&ap.members, scan_free_prev, NULL);
        ia_hmap_release(&ap.members);
        ia_hmap_release(&ap.tops);
}

/* Give every walked file its id and decide what to do with it. */
/*
 * The layers the previous scan's files have, stored already: a layer read
 * again with the same file, format and data files is not written again.
 * Only files this scan keeps (unchanged, same files row) can match.  Driven
 * by the layers (one key lookup in scan_files each), not by the previous
 * scan's files, which are many more in a store of small files.
 */
static int load_layers(struct scan *s, sqlite3 *db)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(db,
                               "SELECT id, file_id, format, deps FROM layers l "
                               "WHERE kind = 'layer' AND tool_version = ?2 AND EXISTS "
                               "(SELECT 1 FROM scan_files sf WHERE sf.scan_id = ?1 "
                               "AND sf.file_id = l.file_id)",
                               -1, &st, NULL) != SQLITE_OK)
                return -1;
        sqlite3_bind_int64(st, 1, s->prev_scan);
        sqlite3_bind_text(st, 2, IMGAUDIT_VERSION, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char key[512];
                int n =
                    snprintf(key, sizeof(key), "%lld %s %s", (long long)sqlite3_column_int64(st, 1),
                             (const char *)sqlite3_column_text(st, 2),
                             (const char *)sqlite3_column_text(st, 3));

                if (n > 0 && (size_t)n < sizeof(key) &&
                    ia_hmap_put(&s->layer_ids, key, (size_t)n,
                                (void *)(intptr_t)sqlite3_column_int64(st, 0)) < 0)
                        break;
        }
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Before the walk: the previous complete scan, whether its results may be
 * reused, and its walked files (so that the walk reads only what changed).
 */
int scan_load_prev(struct scan *s, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s->store);
        sqlite3_stmt *st;
        bool reuse = false;
        int rc = -1;

        s->prev_scan = 0;
        /*
         * That scan's walk began after its start, known to the nanosecond
         * (started_ns, schema 3; before it, started_at: whole seconds, so a
         * second later at most).
         */
        if (sqlite3_prepare_v2(db,
                               "SELECT id, started_ns, CAST(strftime('%s', started_at) AS INTEGER) "
                               "FROM scans WHERE status = 'complete' ORDER BY id DESC LIMIT 1",
                               -1, &st, NULL) == SQLITE_OK) {
                if (sqlite3_step(st) == SQLITE_ROW) {
                        int64_t sec = sqlite3_column_int64(st, 2); /* 0 if not a date */

                        s->prev_scan = sqlite3_column_int64(st, 0);
                        /* a start we cannot read trusts no file */
                        if (sqlite3_column_type(st, 1) == SQLITE_INTEGER &&
                            sqlite3_column_int64(st, 1) > IA_RACY_NS)
                                s->trusted_before_ns = sqlite3_column_int64(st, 1) - IA_RACY_NS;
                        else if (sec > 0 && sec < INT64_MAX / 1000000000 - 1)
                                s->trusted_before_ns = sec * 1000000000LL - IA_RACY_NS;
                        else
                                s->trusted_before_ns = INT64_MIN;
                }
                sqlite3_finalize(st);
        }
        if (s->full || getenv("IMGAUDIT_NO_INCREMENTAL"))
                s->prev_scan = 0;
        /* another version's results may differ: read everything again */
        if (s->prev_scan && roots_unchanged(s, db) && same_tool_version(s, db))
                reuse = true;
        if (reuse) {
                if (sqlite3_prepare_v2(db,
                                       "SELECT f.id, f.path, f.dev, f.ino, f.size, f.mtime_ns, "
                                       "f.ctime_ns, sf.kind FROM scan_files sf JOIN files f "
                                       "ON f.id = sf.file_id WHERE sf.scan_id = ?1 "
                                       "AND f.archive_id IS NULL AND f.mtime_ns IS NOT NULL",
                                       -1, &st, NULL) != SQLITE_OK) {
                        ia_error_set(err, IA_ERR_IO, "reading the previous scan: %s",
                                     sqlite3_errmsg(db));
                        goto out;
                }
                sqlite3_bind_int64(st, 1, s->prev_scan);
                while (sqlite3_step(st) == SQLITE_ROW) {
                        struct prev_file *p = calloc(1, sizeof(*p));

                        if (!p)
                                break;
                        p->id = sqlite3_column_int64(st, 0);
                        p->ident.dev = (uint64_t)sqlite3_column_int64(st, 2);
                        p->ident.ino = (uint64_t)sqlite3_column_int64(st, 3);
                        p->ident.size = (uint64_t)sqlite3_column_int64(st, 4);
                        p->ident.mtime_ns = sqlite3_column_int64(st, 5);
                        p->ident.ctime_ns = sqlite3_column_int64(st, 6);
                        p->kind = kind_of(sqlite3_column_text(st, 7));
                        if (ia_hmap_put(&s->prev, sqlite3_column_blob(st, 1),
                                        (size_t)sqlite3_column_bytes(st, 1), p) < 0)
                                free(p);
                }
                sqlite3_finalize(st);
        }
        s->reuse = reuse;
        rc = 0;
out:
        return rc;
}

int scan_plan(struct scan *s, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s->store);
        struct prev_file **prevs = NULL;
        int64_t max_file, max_image, max_layer;
        bool reuse = s->reuse;
        int rc = -1;

        if (ia_store_max_ids(s->store, &max_file, &max_image, &max_layer, err) < 0)
                return -1;
        atomic_store(&s->next_file_id, max_file + 1);
        atomic_store(&s->next_image_id, max_image + 1);
        atomic_store(&s->next_layer_id, max_layer + 1);
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
                if (ia_hmap_put(&s->by_fid, &k, sizeof(k), jb->reg) < 0)
                        goto nomem;
                jb->reg->walked = true;
                jb->new_file = !same;
                jb->action = JOB_READ;
                /* a device's bytes change with no time of its node changing: always read */
                if (!same || !p->kind || !scan_settled(s, &p->ident) || jb->device)
                        continue;
                if (p->kind == FK_NOT_AN_IMAGE || p->kind == FK_DATA_FILE) {
                        jb->action = JOB_REUSE_PLAIN;
                        jb->reg->prev_kind = p->kind;
                } else if (p->kind == FK_ARCHIVE_SKIPPED && s->no_archives) {
                        jb->action = JOB_REUSE_PLAIN;
                        jb->reg->prev_kind = p->kind;
                } else if (p->kind == FK_IMAGE &&
                           image_reusable(s, db, p->id, &jb->prev_image_id, &raw)) {
                        jb->action = raw ? JOB_REUSE_PLAIN : JOB_REUSE_IMAGE;
                        if (raw)
                                jb->reg->prev_kind = p->kind;
                } else if (p->kind == FK_ARCHIVE && !s->no_archives) {
                        jb->reg->prev_kind = p->kind; /* decided by plan_archives() */
                }
        }
        if (reuse && mark_reused_refs(s, db) < 0) {
                ia_error_set(err, IA_ERR_IO, "reading the previous scan: %s", sqlite3_errmsg(db));
                goto out;
        }
        if (reuse)
                plan_archives(s, db);
        if (reuse && load_layers(s, db) < 0) {
                ia_error_set(err, IA_ERR_IO, "reading the previous scan: %s", sqlite3_errmsg(db));
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
        return rc;
}
