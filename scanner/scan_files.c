/* One walked file (or device): read, probed and dispatched; after the join, the files no driver
 * recognised. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "banned.h"

/* ---- one walked file ---- */

/* Its files row: with the identity id, or none (a lazy file that could not be stat'ed). */
static void new_file_rec(struct scan *s, const struct job *jb, const struct ia_identity *id)
{
        struct ia_rec *r = ia_rec_new(IA_REC_FILE);

        if (r) {
                r->u.file.id = jb->reg->id;
                /* the job's path lives until the scan's end, after the writer's */
                r->u.file.path = jb->wf.path;
                r->u.file.path_borrowed = true;
                r->u.file.has_identity = id != NULL;
                if (id) {
                        r->u.file.dev = id->dev;
                        r->u.file.ino = id->ino;
                        r->u.file.size = id->size;
                        r->u.file.allocated = id->allocated;
                        r->u.file.mtime_ns = id->mtime_ns;
                        r->u.file.ctime_ns = id->ctime_ns;
                }
        }
        scan_put(s, r);
}

/*
 * A file the walk took no stat of: opened, its identity the descriptor's
 * (unless an image's reference took it first: then it must be the same
 * file), its files row, and on failure an unreadable entry.
 */
static struct ia_source *open_lazy(struct scan *s, struct job *jb)
{
        struct ia_identity id, known;
        struct ia_error err;
        struct ia_source *src;
        bool has;

        ia_error_clear(&err);
        src = ia_walk_open_lazy(&s->roots[jb->wf.root], &s->dirs, &jb->wf, &id, NULL, &err);
        pthread_mutex_lock(&s->reg_lock);
        if (src && jb->wf.lazy) {
                scan_publish_identity(s, jb, &id);
        } else if (src && (id.dev != jb->wf.id.dev || id.ino != jb->wf.id.ino)) {
                ia_source_unref(src);
                src = NULL;
                ia_error_set(&err, IA_ERR_IO, "'%s' changed while it was being scanned",
                             jb->wf.rel);
                err.reason = "changed";
        } else if (!src) {
                (void)scan_take_identity(s, jb); /* for its files row, when it can be had */
        }
        has = !jb->wf.lazy;
        known = jb->wf.id;
        pthread_mutex_unlock(&s->reg_lock);
        if (jb->new_file)
                new_file_rec(s, jb, has ? &known : NULL);
        if (!src) {
                scan_put(s,
                         scan_entry_rec(jb->wf.path, "unreadable", err.reason ? err.reason : "io",
                                        ia_error_msg(&err), jb->reg->id));
                s->problems++;
        }
        return src;
}

struct ia_source *scan_open_job(struct scan *s, struct job *jb)
{
        struct ia_error err;
        struct ia_source *src;

        ia_error_clear(&err);
        src = jb->device ? ia_device_open(jb->wf.path, &jb->wf.id, &err)
                         : ia_walk_open_file(&s->roots[jb->wf.root], &s->dirs, &jb->wf, &err);
        if (!src) {
                scan_put(s,
                         scan_entry_rec(jb->wf.path, "unreadable", err.reason ? err.reason : "io",
                                        ia_error_msg(&err), jb->reg->id));
                s->problems++;
        }
        return src;
}

/* An image of the previous scan carried over: its rows copied by the writer, not read. */
void scan_carry_image(struct scan *s, int64_t old_image_id)
{
        struct ia_rec *r = ia_rec_new(IA_REC_REUSE);

        if (r) {
                r->u.reuse.old_image_id = old_image_id;
                r->u.reuse.new_image_id = atomic_fetch_add(&s->next_image_id, 1);
        }
        scan_put(s, r);
        s->images++;
}

/* A file planned as unchanged plain data that must be read after all (it is an image now). */
struct ia_source *scan_open_unplanned(struct scan *s, struct job *jb)
{
        if (jb->action == JOB_REUSE_PLAIN) {
                s->files_reused--;
                s->files_read++;
        }
        return scan_open_job(s, jb);
}

/*
 * The first half of a job: a file carried over from the previous scan is
 * done with here (NULL); else it is opened, and NULL when it cannot be (its
 * unreadable entry made).
 */
struct ia_source *scan_begin(struct scan *s, struct job *jb)
{
        struct ia_source *src;

        if (jb->new_file && !jb->lazy_open)
                new_file_rec(s, jb, &jb->wf.id);
        if (jb->action == JOB_REUSE_PLAIN) {
                s->files_reused++;
                return NULL; /* decided after the workers: not-an-image, data-file or raw backing */
        }
        if (jb->action == JOB_REUSE_IMAGE) {
                scan_carry_image(s, jb->prev_image_id);
                scan_put(s, scan_file_rec(jb->reg->id, FK_IMAGE, true));
                jb->reg->kind = FK_IMAGE;
                s->files_reused++;
                return NULL;
        }
        if (jb->action == JOB_REUSE_ARCHIVE) {
                /* its members' other rows come with the IA_REC_REUSE_MEMBERS record */
                for (size_t i = 0; i < jb->nprev_images; i++)
                        scan_carry_image(s, jb->prev_images[i]);
                scan_put(s, scan_file_rec(jb->reg->id, FK_ARCHIVE, true));
                jb->reg->kind = FK_ARCHIVE;
                s->files_reused++;
                return NULL;
        }
        s->files_read++;
        src = jb->lazy_open ? open_lazy(s, jb) : scan_open_job(s, jb);
        if (!src)
                jb->reg->kind = FK_UNREADABLE;
        return src;
}

/*
 * The second half: the opened file probed by its first bytes (head holds hl
 * of them already, or head is NULL and they are read here) and handed to
 * what reads it (an image, an archive, a raw disk), or left to
 * scan_settle_plain_files().  src is released.
 */
void scan_finish(struct scan *s, struct job *jb, struct ia_source *src, uint8_t *head, size_t hl)
{
        const struct ia_driver *drv = NULL;
        const char *rule = NULL; /* ia_rawdisk_recognised_by */
        struct ia_error err;
        uint8_t buf[IA_PROBE_HEAD];

        ia_error_clear(&err);
        if (head) {
                drv = scan_probe_head(src, jb->wf.path, head, hl);
        } else if (!scan_probe_source(src, jb->wf.path, buf, &hl, &drv, &err)) {
                scan_put(s, scan_entry_rec(jb->wf.path, "unreadable", "io", ia_error_msg(&err),
                                           jb->reg->id));
                s->problems++;
                jb->reg->kind = FK_UNREADABLE;
                ia_source_unref(src);
                return;
        } else {
                head = buf;
        }
        if (scan_bare_vmdk_extent(drv, head, hl)) {
                jb->reg->bare_extent = true; /* decided by settle_plain_files() */
        } else if (drv != &ia_drv_raw) {
                jb->reg->kind = FK_IMAGE;
                scan_image(s, src, jb->wf.path, jb->reg->id, NULL, drv->name, NULL, "content");
        } else if (s->no_archives && ia_archive_probe(head, hl)) {
                jb->reg->skipped_archive = true; /* read by settle_plain_files() after the join */
        } else if (ia_archive_probe(head, hl)) {
                bool is_archive = false;

                scan_archive(s, src, jb->wf.path, jb->reg->id, &is_archive);
                if (is_archive)
                        jb->reg->kind = FK_ARCHIVE;
        } else if (src->size > 0 &&
                   ((rule = ia_rawdisk_recognised_by(src, head, hl, jb->wf.path, s->raw_globs)) ||
                    jb->device || jb->reg->raw_by)) {
                /* a raw disk: by content (a partition table, a file system, ...), a block
                 * device asked for (--devices: a volume is a disk), because a VM definition
                 * or the store's layout names it, or by name (the rule archive members
                 * follow too, ia_rawdisk_recognised_by) */
                const char *by = rule && strcmp(rule, "content") == 0 ? rule
                                 : jb->device                         ? "option"
                                 : jb->reg->raw_by                    ? jb->reg->raw_by
                                                                      : rule;

                jb->reg->kind = FK_IMAGE;
                scan_image(s, src, jb->wf.path, jb->reg->id, "raw", "raw", NULL, by);
        }
        ia_source_unref(src);
}

/* A file that no image keeps its data in (any more): an image if a driver says so. */
static void settle_unused_data(struct scan *s, struct job *jb)
{
        struct reg_file *r = jb->reg;
        struct ia_source *src;
        const struct ia_driver *drv;
        uint8_t head[IA_PROBE_HEAD];
        size_t hl;
        struct ia_error err;

        src = scan_open_unplanned(s, jb);
        if (!src) {
                r->kind = FK_UNREADABLE;
                return;
        }
        ia_error_clear(&err);
        if (!scan_probe_source(src, jb->wf.path, head, &hl, &drv, &err)) {
                scan_put(
                    s, scan_entry_rec(jb->wf.path, "unreadable", "io", ia_error_msg(&err), r->id));
                s->problems++;
                r->kind = FK_UNREADABLE;
        } else if (drv != &ia_drv_raw) {
                r->kind = FK_IMAGE;
                scan_image(s, src, jb->wf.path, r->id, NULL, drv->name, NULL, "content");
        } else {
                scan_put(s, scan_file_rec(r->id, FK_NOT_AN_IMAGE, false));
        }
        ia_source_unref(src);
}

/* Files no driver recognised: raw backing files become images, the rest are recorded. */
void scan_settle_plain_files(struct scan *s)
{
        for (size_t i = 0; i < s->njobs; i++) {
                struct job *jb = &s->jobs[i];
                struct reg_file *r = jb->reg;

                if (r->kind)
                        continue;
                if (atomic_load(&r->raw_backing) && jb->action == JOB_REUSE_PLAIN &&
                    r->prev_kind == FK_IMAGE) {
                        /* an unchanged raw backing file still used as one: carried over */
                        scan_carry_image(s, jb->prev_image_id);
                        scan_put(s, scan_file_rec(r->id, FK_IMAGE, true));
                        r->kind = FK_IMAGE;
                } else if (atomic_load(&r->raw_backing)) {
                        struct ia_source *src = scan_open_unplanned(s, jb);

                        if (src) {
                                const char *f = atomic_load(&r->backing_drv);

                                r->kind = FK_IMAGE;
                                scan_image(s, src, jb->wf.path, r->id, f, f, NULL, "reference");
                                ia_source_unref(src);
                        }
                } else if (r->raw_by) {
                        scan_vm_raw_disk(s, jb);
                } else if (atomic_load(&r->data_file)) {
                        scan_put(s,
                                 scan_file_rec(r->id, FK_DATA_FILE, jb->action == JOB_REUSE_PLAIN));
                } else if (r->bare_extent ||
                           (jb->action == JOB_REUSE_PLAIN && r->prev_kind == FK_DATA_FILE)) {
                        /* a data file no longer used (or an extent never used): read it */
                        settle_unused_data(s, jb);
                } else if (r->skipped_archive || (r->prev_kind == FK_ARCHIVE_SKIPPED)) {
                        scan_put(s, scan_file_rec(r->id, FK_ARCHIVE_SKIPPED,
                                                  jb->action == JOB_REUSE_PLAIN));
                } else {
                        scan_put(s, scan_file_rec(r->id, FK_NOT_AN_IMAGE,
                                                  jb->action == JOB_REUSE_PLAIN));
                }
        }
}

/*
 * --devices: the block devices the globs name become files of the scan
 * (after the walk, which never opens one), read like the walk's files but
 * opened by ia_device_open(), never reused by an incremental scan.
 */
static void on_device(void *opaque, struct ia_walk_file *f)
{
        struct scan *s = opaque;
        size_t before = s->njobs;

        scan_on_walk_file(s, f);
        if (s->njobs > before)
                s->jobs[s->njobs - 1].device = true;
}

int scan_add_devices(struct scan *s)
{
        if (!s->ndevices)
                return 0;
        return ia_devices_expand(s->devices, on_device, scan_on_walk_entry, s);
}
