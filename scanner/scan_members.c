/* Archives: the members of an open archive, scanned like files. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "banned.h"

/* ---- archives ---- */

static const char *member_kind(enum ia_member_type t)
{
        switch (t) {
        case IA_MEMBER_SYMLINK:
                return "member-symlink";
        case IA_MEMBER_HARDLINK:
                return "member-hardlink";
        case IA_MEMBER_FIFO:
                return "member-fifo";
        case IA_MEMBER_DEVICE:
                return "member-device";
        default:
                return "member-other";
        }
}

static void free_member_info(void *value, void *opaque)
{
        struct member_info *mi = value;

        (void)opaque;
        if (mi) {
                free(mi->path);
                free(mi);
        }
}

static void member_finding(struct scan *s, int64_t file_id, const char *code, const char *msg)
{
        struct ia_rec *r = ia_rec_new(IA_REC_FINDING);

        if (r) {
                r->u.finding.file_id = file_id;
                r->u.finding.code = scan_xstrdup(code);
                r->u.finding.message = scan_xstrdup(msg);
        }
        scan_put(s, r);
}

/*
 * The driver that recognises a source by its first len bytes (head), ia_drv_raw
 * when none does; name: the path the image is opened by (dmg is recognised by
 * its suffix).
 */
const struct ia_driver *scan_probe_head(const struct ia_source *src, const char *name,
                                        const uint8_t *head, size_t len)
{
        struct ia_probe p;

        memset(&p, 0, sizeof(p));
        p.head = head;
        p.head_len = len;
        p.size = src->size;
        p.name = name;
        return ia_driver_probe_bytes(&p);
}

bool scan_probe_source(struct ia_source *src, const char *name, uint8_t *head, size_t *len,
                       const struct ia_driver **drv, struct ia_error *err)
{
        int64_t n = ia_read_upto(src, head, IA_PROBE_HEAD, 0, err);

        if (n < 0)
                return false;
        *len = (size_t)n;
        *drv = scan_probe_head(src, name, head, (size_t)n);
        return true;
}

/*
 * The archive walk's question before it spools a big member (archives.h,
 * wanted): may it be an image?  The same tests as member_probe() makes of it
 * below, and the scan of a walked file: a format recognised by content (a bare VMDK extent
 * too), a nested archive, a raw disk by content or by name; and a name
 * ending in ".vmdk", what a VMDK descriptor calls its flat extents.  Any other
 * member that another image names (a raw backing file, a data file) is not
 * known yet: its source reads the rest of it again when it is used.
 */
static const char *const vmdk_extent_glob[] = {"*.vmdk", "*.VMDK", NULL};

static bool member_may_be_image(void *opaque, const char *name, struct ia_source *head)
{
        struct scan *s = opaque;
        uint8_t buf[IA_PROBE_HEAD];
        const struct ia_driver *drv;
        struct ia_error err;
        size_t hl;

        ia_error_clear(&err);
        if (!scan_probe_source(head, name, buf, &hl, &drv, &err))
                return true; /* spooled, and its problem reported as without a probe */
        return drv != &ia_drv_raw || scan_bare_vmdk_extent(drv, buf, hl) ||
               ia_archive_probe(buf, hl) ||
               ia_rawdisk_recognised_by(head, buf, hl, name, s->raw_globs) ||
               ia_rawdisk_name_matches(name, vmdk_extent_glob);
}

/* Every member but directories gets a files row first, so that references can name it. */
static int member_rows(struct scan *s, struct arch_ctx *ac)
{
        for (size_t i = 0; i < ia_archive_count(ac->a); i++) {
                const struct ia_archive_member *m = ia_archive_member(ac->a, i);
                struct member_info *mi;
                struct ia_rec *fr;

                if (m->type == IA_MEMBER_DIR)
                        continue;
                mi = calloc(1, sizeof(*mi));
                if (!mi || !(mi->path = scan_join3(ac->path, '!', m->name))) {
                        free(mi);
                        atomic_store(&s->nomem, true);
                        return -1;
                }
                mi->file_id = atomic_fetch_add(&s->next_file_id, 1);
                free_member_info(ia_hmap_get(&ac->members, m->name, strlen(m->name)), NULL);
                ia_hmap_put(&ac->members, m->name, strlen(m->name), mi);
                fr = ia_rec_new(IA_REC_FILE);
                if (fr) {
                        fr->u.file.id = mi->file_id;
                        fr->u.file.path = scan_xstrdup(mi->path);
                        fr->u.file.archive_id = ac->file_id;
                        fr->u.file.member = scan_xstrdup(m->name);
                        fr->u.file.size = m->size;
                        fr->u.file.allocated = 0; /* its bytes are its archive's blocks */
                        fr->u.file.mtime_ns = m->mtime * 1000000000;
                }
                scan_put(s, fr);
                if (m->flags & IA_MEMBER_TRAVERSAL)
                        member_finding(s, mi->file_id, "member-traversal",
                                       "member name contains a '..' component");
                if (m->flags & IA_MEMBER_ABSOLUTE)
                        member_finding(s, mi->file_id, "member-absolute",
                                       "member name is an absolute path");
                if (m->flags & IA_MEMBER_DUPLICATE)
                        member_finding(s, mi->file_id, "member-duplicate",
                                       "an earlier member has the same name");
                if (m->flags & IA_MEMBER_TRUNCATED)
                        member_finding(s, mi->file_id, "member-truncated",
                                       "the archive ends inside this member");
        }
        return 0;
}

/*
 * One member, probed: an image (a raw disk by content or by name too) or a
 * nested archive is scanned now; a member only the images can decide about
 * (raw backing, data file, bare extent, nothing) is left for member_settle()
 * (true).
 */
static bool member_probe(struct scan *s, struct arch_ctx *ac, const struct ia_archive_member *m,
                         struct member_info *mi, uint8_t *head)
{
        const struct ia_driver *drv;
        struct ia_error err;
        const char *by;
        size_t hl;

        if (m->type != IA_MEMBER_FILE) {
                scan_put(s, scan_entry_rec(mi->path, member_kind(m->type), "not followed",
                                           m->link_target, mi->file_id));
                return false;
        }
        if (!m->src) {
                scan_put(s, scan_entry_rec(mi->path, "unreadable", ia_errcat_name(m->error.cat),
                                           ia_error_msg(&m->error), mi->file_id));
                s->problems++;
                return false;
        }
        ia_error_clear(&err);
        if (!scan_probe_source(m->src, mi->path, head, &hl, &drv, &err)) {
                scan_put(s, scan_entry_rec(mi->path, "unreadable", ia_errcat_name(err.cat),
                                           ia_error_msg(&err), mi->file_id));
                s->problems++;
                return false;
        }
        if (scan_bare_vmdk_extent(drv, head, hl)) {
                mi->bare_extent = true; /* decided later, as for a walked file */
                return true;
        }
        if (drv != &ia_drv_raw) {
                mi->is_image = true;
                scan_image(s, m->src, mi->path, mi->file_id, NULL, drv->name, ac, "content");
                return false;
        }
        if (ia_archive_probe(head, hl)) {
                bool nested = false;

                scan_archive(s, m->src, mi->path, mi->file_id, &nested);
                return !nested;
        }
        /* a raw disk by content or by name, as a walked file is (README, "What is an image") */
        by = ia_rawdisk_recognised_by(m->src, head, hl, m->name, s->raw_globs);
        if (by) {
                mi->is_image = true;
                scan_image(s, m->src, mi->path, mi->file_id, "raw", "raw", ac, by);
                return false;
        }
        return true;
}

/* After the images: a member left undecided is a raw backing file, a data file, or nothing. */
static void member_settle(struct scan *s, struct arch_ctx *ac, const struct ia_archive_member *m,
                          struct member_info *mi)
{
        if (mi->raw_backing) {
                const char *f = mi->backing_drv ? mi->backing_drv : "raw";

                scan_image(s, m->src, mi->path, mi->file_id, f, f, ac, "reference");
        } else if (mi->data_file) {
                scan_put(s, scan_file_rec(mi->file_id, FK_DATA_FILE, false));
        } else if (mi->bare_extent) {
                mi->is_image = true;
                scan_image(s, m->src, mi->path, mi->file_id, NULL, "vmdk", ac, "content");
        } else {
                scan_put(s, scan_file_rec(mi->file_id, FK_NOT_AN_IMAGE, false));
        }
}

static void ovf_rows(struct scan *s, struct arch_ctx *ac)
{
        for (size_t i = 0; i < ia_archive_ovf_count(ac->a); i++) {
                const struct ia_ovf_disk *d = ia_archive_ovf_disk(ac->a, i);
                struct ia_rec *r = ia_rec_new(IA_REC_OVF);
                struct member_info *mi =
                    d->href ? ia_hmap_get(&ac->members, d->href, strlen(d->href)) : NULL;

                if (r) {
                        r->u.ovf.archive_file_id = ac->file_id;
                        r->u.ovf.member_file_id = mi ? mi->file_id : 0;
                        r->u.ovf.disk_id = scan_xstrdup(d->disk_id);
                        r->u.ovf.href = scan_xstrdup(d->href);
                        r->u.ovf.format = scan_xstrdup(d->format);
                        r->u.ovf.capacity = d->capacity;
                }
                scan_put(s, r);
        }
}

/* Everything inside an open archive. */
static void scan_members(struct scan *s, struct arch_ctx *ac)
{
        size_t n = ia_archive_count(ac->a);
        const struct ia_error *aerr = ia_archive_error(ac->a);
        uint8_t *head = malloc(IA_PROBE_HEAD);
        bool *todo = calloc(n ? n : 1, sizeof(bool));

        if (!head || !todo) {
                atomic_store(&s->nomem, true);
                goto out;
        }
        if (aerr && aerr->cat != IA_ERR_NONE) {
                /* a cap that stopped the walk (a bomb, too many members) is a limit */
                member_finding(s, ac->file_id,
                               aerr->cat == IA_ERR_LIMIT ? "archive-limit" : "archive-error",
                               ia_error_msg(aerr));
                s->problems++;
        }
        if (member_rows(s, ac) < 0)
                goto out;
        /* Images first (they decide which plain members are raw backing or data files). */
        for (size_t i = 0; i < n; i++) {
                const struct ia_archive_member *m = ia_archive_member(ac->a, i);
                struct member_info *mi = ia_hmap_get(&ac->members, m->name, strlen(m->name));

                if (m->type == IA_MEMBER_DIR || !mi || ia_archive_find(ac->a, m->name) != m)
                        continue; /* an overwritten duplicate is only recorded */
                todo[i] = member_probe(s, ac, m, mi, head);
        }
        for (size_t i = 0; i < n; i++) {
                const struct ia_archive_member *m = ia_archive_member(ac->a, i);
                struct member_info *mi = ia_hmap_get(&ac->members, m->name, strlen(m->name));

                if (todo[i] && mi)
                        member_settle(s, ac, m, mi);
        }
        ovf_rows(s, ac);
out:
        free(head);
        free(todo);
}

static void read_archive(struct scan *s, struct ia_source *src, const char *path, int64_t file_id,
                         bool *is_archive)
{
        struct arch_ctx ac;
        struct ia_error err;
        struct ia_archive_limits lim;

        *is_archive = false;
        memset(&ac, 0, sizeof(ac));
        memset(&lim, 0, sizeof(lim)); /* the defaults */
        lim.wanted = member_may_be_image;
        lim.wanted_opaque = s;
        ia_error_clear(&err);
        if (ia_archive_open(src, path, &lim, &ac.a, &err) < 0) {
                if (err.cat == IA_ERR_LIMIT) {
                        /* an archive, but nested too deep: recorded, not opened */
                        *is_archive = true;
                        scan_put(s, scan_file_rec(file_id, FK_ARCHIVE, false));
                        member_finding(s, file_id, "archive-limit", ia_error_msg(&err));
                        s->problems++; /* its members could not be scanned */
                }
                return;
        }
        *is_archive = true;
        ac.path = path;
        ac.file_id = file_id;
        ia_hmap_init(&ac.members);
        scan_put(s, scan_file_rec(file_id, FK_ARCHIVE, false));
        scan_members(s, &ac);
        ia_hmap_each(&ac.members, free_member_info, NULL);
        ia_hmap_release(&ac.members);
        ia_archive_free(ac.a);
}

/* One archive read, its members scanned, in one of the scan's mapping slots (scan_map_begin). */
void scan_archive(struct scan *s, struct ia_source *src, const char *path, int64_t file_id,
                  bool *is_archive)
{
        scan_map_begin(s);
        read_archive(s, src, path, file_id, is_archive);
        scan_map_end(s);
}
