/* One image job: its chain opened through the scan resolver, its links and findings. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "path.h"
#include "banned.h"

/* The store id of a host file (and its path), for map rows and links. */
int64_t scan_file_ref(struct img_job *j, const struct ia_file *f, const char **path)
{
        if (path)
                *path = f->name;
        if (!f->src->dev && !f->src->ino) {
                const char *member = ia_scan_resolver_member(&j->sr, f);
                struct member_info *mi;

                if (!member || !j->arch)
                        return 0;
                mi = ia_hmap_get(&j->arch->members, member, strlen(member));
                if (!mi)
                        return 0;
                if (path)
                        *path = mi->path;
                return mi->file_id;
        }
        struct reg_file *r = scan_reg_lookup(j->s, f);

        if (!r)
                return 0;
        if (path)
                *path = r->path;
        return r->id;
}

int64_t scan_file_id_cb(void *opaque, const struct ia_file *f)
{
        return scan_file_ref(opaque, f, NULL);
}

static void on_link(void *opaque, const struct ia_image *from, const char *name,
                    enum ia_ref_kind kind, const struct ia_file *target,
                    const struct ia_error *status)
{
        struct img_job *j = opaque;
        struct pending_link *l;
        const char *tpath = NULL;

        if (j->nlinks == j->cap_links) {
                size_t nc = j->cap_links ? j->cap_links * 2 : 4;
                struct pending_link *nl = realloc(j->links, nc * sizeof(*nl));

                if (!nl) {
                        atomic_store(&j->s->nomem, true);
                        return;
                }
                j->links = nl;
                j->cap_links = nc;
        }
        l = &j->links[j->nlinks++];
        memset(l, 0, sizeof(*l));
        l->from_file_id = scan_file_ref(j, from->file, NULL);
        l->kind = ia_ref_kind_name(kind);
        l->name = scan_xstrdup(name ? name : "");
        if (target) {
                l->target_file_id = scan_file_ref(j, target, &tpath);
                l->target_path = scan_xstrdup(tpath);
                /* Followed, but perhaps not the parent it should be (parent-mismatch). */
                l->status = strdup(status && status->reason ? status->reason : "ok");
                l->error = scan_xstrdup(status ? ia_error_msg(status) : NULL);
        } else {
                if (name && name[0] && !ia_name_is_protocol(name) &&
                    strncmp(name, "json:", 5) != 0) {
                        if (j->arch) {
                                const char *base = ia_scan_resolver_member(&j->sr, from->file);
                                char *c = ia_path_combine(base ? base : "", name);
                                char *n = c ? ia_name_normalise(c, true) : NULL;

                                l->target_path = n ? scan_join3(j->arch->path, '!', n) : NULL;
                                free(c);
                                free(n);
                        } else {
                                /* where it would be, spelled as the scan spells paths */
                                char *c = ia_path_combine(from->file->name, name);

                                l->target_path = c ? ia_path_canonical(c) : NULL;
                                free(c);
                        }
                }
                l->status =
                    scan_xstrdup(status && status->reason
                                     ? status->reason
                                     : ia_errcat_name(status ? status->cat : IA_ERR_INTERNAL));
                l->error = scan_xstrdup(status ? ia_error_msg(status) : NULL);
        }
        /* A data file or extent is part of the image, not a file of its own. */
        if (target && kind != IA_REF_BACKING) {
                if (target->src->dev || target->src->ino) {
                        struct reg_file *r = scan_reg_lookup(j->s, target);

                        if (r)
                                atomic_store(&r->data_file, true);
                } else if (j->arch && tpath) {
                        const char *m = ia_scan_resolver_member(&j->sr, target);
                        struct member_info *mi =
                            m ? ia_hmap_get(&j->arch->members, m, strlen(m)) : NULL;

                        if (mi)
                                mi->data_file = true;
                }
        }
}

static void on_finding(void *opaque, const struct ia_image *img, const char *code, const char *msg)
{
        struct img_job *j = opaque;
        struct scan *s = j->s;
        int64_t fid = scan_file_ref(j, img->file, NULL);
        char *key = NULL;
        bool fresh = false;
        size_t n;

        n = 24 + strlen(code) + strlen(msg) + 3;
        key = malloc(n);
        if (!key)
                return;
        snprintf(key, n, "%lld %s %s", (long long)fid, code, msg);
        pthread_mutex_lock(&s->reg_lock);
        if (!ia_hmap_get(&s->findings, key, strlen(key))) {
                fresh = ia_hmap_put(&s->findings, key, strlen(key), (void *)1) == 0;
        }
        pthread_mutex_unlock(&s->reg_lock);
        free(key);
        if (fresh) {
                struct ia_rec *r = ia_rec_new(IA_REC_FINDING);

                if (r) {
                        r->u.finding.image_id = j->image_id;
                        r->u.finding.file_id = fid;
                        r->u.finding.code = scan_xstrdup(code);
                        r->u.finding.message = scan_xstrdup(msg);
                }
                scan_put(s, r);
        }
}

static void flush_links(struct img_job *j, struct ia_image *top)
{
        for (size_t i = 0; i < j->nlinks; i++) {
                struct pending_link *l = &j->links[i];
                struct ia_rec *r = ia_rec_new(IA_REC_LINK);
                int depth = 0;

                /* the depth of the layer holding the reference; a layer that failed to
                 * open (its data file, say) sits just below the last one */
                for (struct ia_image *img = top; img; img = img->backing_img, depth++)
                        if (scan_file_ref(j, img->file, NULL) == l->from_file_id)
                                break;
                if (r) {
                        r->u.link.image_id = j->image_id;
                        r->u.link.depth = depth;
                        r->u.link.from_file_id = l->from_file_id;
                        r->u.link.kind = l->kind;
                        r->u.link.name = l->name;
                        r->u.link.target_file_id = l->target_file_id;
                        r->u.link.target_path = l->target_path;
                        r->u.link.status = l->status;
                        r->u.link.error = l->error;
                } else {
                        free(l->name);
                        free(l->target_path);
                        free(l->status);
                        free(l->error);
                }
                scan_put(j->s, r);
        }
        free(j->links);
        j->links = NULL;
        j->nlinks = j->cap_links = 0;
}

/*
 * Open and map the image at path (top_src, store id file_id) and record it.
 * fmt: NULL to probe; probed: the driver the scan's probe found (for the
 * record when the open fails).
 */
static void map_image(struct scan *s, struct ia_source *top_src, const char *path, int64_t file_id,
                      const char *fmt, const char *probed, struct arch_ctx *arch, const char *by)
{
        struct img_job j;
        struct ia_open_ctx ctx;
        struct ia_image *top = NULL;
        struct ia_error err;
        struct ia_rec *ir;
        const char *status = "ok";
        char *errmsg = NULL;
        unsigned depth = 0;

        memset(&j, 0, sizeof(j));
        j.s = s;
        j.image_id = atomic_fetch_add(&s->next_image_id, 1);
        j.arch = arch;
        ia_scan_resolver_init(&j.sr, s->allowed);
        j.sr.parents = &s->parents;
        j.sr.top_src = top_src;
        j.sr.top_name = path;
        if (arch) {
                j.sr.archive = arch->a;
                j.sr.archive_path = arch->path;
        }
        memset(&ctx, 0, sizeof(ctx));
        ctx.resolver = &j.sr.r;
        ctx.compat = IA_DEFAULT_COMPAT;
        ctx.lenient = true;
        if (s->budget_ns)
                ctx.deadline_ns = ia_clock_ns() + s->budget_ns;
        ctx.on_link = on_link;
        ctx.on_finding = on_finding;
        ctx.opaque = &j;
        ia_error_clear(&err);

        ir = ia_rec_new(IA_REC_IMAGE);
        if (!ir) {
                atomic_store(&s->nomem, true);
                return;
        }
        ir->u.image.id = j.image_id;
        ir->u.image.file_id = file_id;
        ir->u.image.file_size = top_src->size;
        /* an archive's member has no blocks of its own: its archive's file has them */
        ir->u.image.allocated = arch ? 0 : top_src->allocated;
        ir->u.image.probed = fmt == NULL;
        ir->u.image.recognised_by = by;

        if (ia_chain_open(&ctx, path, fmt, &top, &err) < 0) {
                ir->u.image.format = scan_xstrdup(fmt ? fmt : probed);
                ir->u.image.status = scan_xstrdup(
                    err.reason && strcmp(err.reason, "unreadable") != 0 ? err.reason
                                                                        : ia_errcat_name(err.cat));
                ir->u.image.error = scan_xstrdup(ia_error_msg(&err));
                s->problems++;
                flush_links(&j, NULL);
                scan_put(s, ir);
                scan_put(s, scan_file_rec(file_id, FK_IMAGE, false));
                s->images++;
                return;
        }
        ir->u.image.format = scan_xstrdup(top->drv->name);
        ir->u.image.probed = top->fmt_probed;
        ir->u.image.has_vsize = true;
        ir->u.image.virtual_size = top->size;
        ir->u.image.cluster_size = top->cluster_size;
        ir->u.image.flags = top->flags;
        ir->u.image.backing = scan_xstrdup(top->backing);
        ir->u.image.backing_fmt = top->backing_fmt[0] ? scan_xstrdup(top->backing_fmt) : NULL;
        for (struct ia_image *i = top; i; i = i->backing_img) {
                if (i != top) {
                        depth++;
                        /* A parent opened by the format its child names (raw, or a fixed
                         * VHD that no probe recognises) is an image of that format. */
                        if (strcmp(i->drv->name, "raw") == 0 || !i->fmt_probed) {
                                if (i->file->src->dev || i->file->src->ino) {
                                        struct reg_file *r = scan_reg_lookup(s, i->file);

                                        if (r) {
                                                atomic_store(&r->backing_drv, i->drv->name);
                                                atomic_store(&r->raw_backing, true);
                                        }
                                } else if (arch) {
                                        const char *m = ia_scan_resolver_member(&j.sr, i->file);
                                        struct member_info *mi =
                                            m ? ia_hmap_get(&arch->members, m, strlen(m)) : NULL;

                                        if (mi) {
                                                mi->backing_drv = i->drv->name;
                                                mi->raw_backing = true;
                                        }
                                }
                        }
                }
                if (i->backing && i->backing[0] && !i->backing_img && !errmsg) {
                        status = i->backing_err.reason ? i->backing_err.reason
                                                       : ia_errcat_name(i->backing_err.cat);
                        errmsg = scan_xstrdup(ia_error_msg(&i->backing_err));
                }
        }
        ir->u.image.chain_depth = depth;
        if (scan_map_chain(&j, top, &err) < 0) {
                status = ia_errcat_name(err.cat);
                free(errmsg);
                errmsg = scan_xstrdup(ia_error_msg(&err));
                s->problems++;
        }
        ir->u.image.has_space = true;
        ir->u.image.sp = j.sp;
        ir->u.image.map_rows = j.rows;
        flush_links(&j, top);
        ir->u.image.status = scan_xstrdup(status);
        ir->u.image.error = errmsg;
        scan_put(s, ir);
        scan_put(s, scan_file_rec(file_id, FK_IMAGE, false));
        s->images++;
        ia_image_free(top);
}

/* One image (a chain) mapped, in one of the scan's mapping slots (scan_map_begin). */
void scan_image(struct scan *s, struct ia_source *top_src, const char *path, int64_t file_id,
                const char *fmt, const char *probed, struct arch_ctx *arch, const char *by)
{
        scan_map_begin(s);
        map_image(s, top_src, path, file_id, fmt, probed, arch, by);
        scan_map_end(s);
}

/*
 * The candidates for a parent named by uuid: every walked file named *.vdi
 * (the index reads their headers once, when the first differencing VDI
 * asks).  A .vbox registry's entries would be registered before the workers
 * start (ia_parent_index_register()) and are preferred.
 */
void scan_fill_parent_index(struct ia_parent_index *ix, void *opaque)
{
        struct scan *s = opaque;

        for (size_t i = 0; i < s->njobs; i++) {
                const char *path = s->jobs[i].wf.path;
                const char *base = strrchr(path, '/');

                if (ia_vdi_file_name(base ? base + 1 : path))
                        ia_parent_index_add_file(ix, path);
        }
        /* and, as imgaudit map, the *.vdi at the top of each --allow-root directory */
        for (size_t i = 0; i < s->nallow; i++)
                ia_parent_index_add_dir(ix, s->allow[i]);
}
