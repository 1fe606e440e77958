/* The VM-definition pass of a scan (vmscan.h): which files are definitions, how disks resolve. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "banned.h"

/* A raw disk by its users (a VM definition, the store's layout), read after the workers. */
void scan_vm_raw_disk(struct scan *s, struct job *jb)
{
        struct reg_file *r = jb->reg;
        struct ia_source *src;

        if (jb->action == JOB_REUSE_PLAIN && r->prev_kind == FK_IMAGE) {
                scan_carry_image(s, jb->prev_image_id); /* unchanged: carried over */
                scan_put(s, scan_file_rec(r->id, FK_IMAGE, true));
                r->kind = FK_IMAGE;
                return;
        }
        src = scan_open_unplanned(s, jb);
        if (!src) {
                r->kind = FK_UNREADABLE;
                return;
        }
        r->kind = FK_IMAGE;
        scan_image(s, src, jb->wf.path, r->id, "raw", "raw", NULL, r->raw_by);
        ia_source_unref(src);
}

/* ---- the VM-definition pass (vmscan.h) ---- */

/* A candidate definition among the walked files: its text, read beneath its root. */
static void vm_read_walked(struct scan *s, struct job *jb, enum ia_vmdef_file k)
{
        struct ia_error err;
        struct ia_source *src;
        char *text;

        if (jb->wf.id.size > IA_VMDEF_MAX_BYTES) {
                if (k != IA_VMDEF_LIBVIRT) /* a large .xml is just not a domain */
                        ia_vmscan_add_error(&s->vms, jb->wf.path, jb->reg->id,
                                            "larger than the 4 MiB allowed");
                return;
        }
        ia_error_clear(&err);
        src = ia_walk_open(&s->roots[jb->wf.root], jb->wf.rel, &jb->wf.id, &err);
        if (!src) {
                ia_vmscan_add_error(&s->vms, jb->wf.path, jb->reg->id, ia_error_msg(&err));
                return;
        }
        text = malloc((size_t)src->size + 1);
        if (!text) {
                s->vms.nomem = true;
        } else if (ia_read(src, text, (size_t)src->size, 0, "VM definition", &err) < 0) {
                ia_vmscan_add_error(&s->vms, jb->wf.path, jb->reg->id, ia_error_msg(&err));
                free(text);
        } else {
                text[src->size] = 0;
                ia_vmscan_add_text(&s->vms, k, jb->wf.path, jb->reg->id, jb->wf.id.dev,
                                   jb->wf.id.ino, text, (size_t)src->size);
        }
        ia_source_unref(src);
}

/* The walked file at path (by its identity): within the roots, or why not. */
static struct reg_file *vm_walked_file(struct scan *s, const char *path, const char **status)
{
        struct stat sb;
        struct ia_fid_key k;
        struct reg_file *r;

        if (stat(path, &sb) < 0) {
                *status = errno == ENOENT || errno == ENOTDIR ? "missing" : "outside-roots";
                return NULL;
        }
        if (!S_ISREG(sb.st_mode)) {
                *status = S_ISBLK(sb.st_mode) ? "outside-roots" : "not-a-file";
                return NULL;
        }
        k.dev = (uint64_t)sb.st_dev;
        k.ino = (uint64_t)sb.st_ino;
        pthread_mutex_lock(&s->reg_lock);
        r = scan_walked_locked(s, &k, path);
        pthread_mutex_unlock(&s->reg_lock);
        if (!r || !r->walked) {
                *status = "outside-roots";
                return NULL;
        }
        return r;
}

static int64_t vm_lookup(void *opaque, const char *path, const char **status)
{
        struct reg_file *r = vm_walked_file(opaque, path, status);

        if (!r)
                return 0;
        if (!r->raw_by)
                r->raw_by = "vm-config";
        return r->id;
}

static void vm_layout(void *opaque, const char *path, const char *format)
{
        const char *status;
        struct reg_file *r = vm_walked_file(opaque, path, &status);

        if (r && strcmp(format, "raw") == 0)
                r->raw_by = "layout";
}

/* Nova's image cache: every file directly in a _base/ directory is a raw (or qcow2) base. */
bool scan_in_nova_base(const char *path)
{
        const char *slash = strrchr(path, '/');

        if (!slash || slash == path)
                return false;
        return (slash - path == 5 && strncmp(path, "_base", 5) == 0) ||
               (slash - path > 5 && strncmp(slash - 6, "/_base", 6) == 0);
}

void scan_vm_pass(struct scan *s)
{
        for (size_t i = 0; i < s->njobs; i++) {
                enum ia_vmdef_file k;

                if (s->jobs[i].lazy_open)
                        continue; /* scan_want_stat() found it neither of these */
                k = ia_vmdef_classify(s->jobs[i].wf.path);

                if (k != IA_VMDEF_NONE)
                        vm_read_walked(s, &s->jobs[i], k);
                else if (scan_in_nova_base(s->jobs[i].wf.path) && s->jobs[i].wf.id.size > 0)
                        s->jobs[i].reg->raw_by = "layout";
        }
        for (size_t i = 0; i < s->nvm_config; i++)
                ia_vmscan_add_dir(&s->vms, s->vm_config[i]);
        ia_vmscan_resolve(&s->vms, vm_lookup, vm_layout, s);
        /* a VirtualBox registry says which file each medium is: preferred for parents by uuid */
        for (size_t i = 0; i < s->vms.ndefs; i++) {
                const struct ia_vmscan_def *d = &s->vms.defs[i];

                if (d->def.kind != IA_VM_VIRTUALBOX)
                        continue;
                /* a malformed uuid is passed over: the headers still decide */
                for (size_t k = 0; k < d->def.nmedia; k++)
                        if (d->media_file[k] > 0 && d->def.media[k].uuid && d->def.media[k].path)
                                (void)ia_parent_index_register(&s->parents, d->def.media[k].uuid,
                                                               d->def.media[k].path);
        }
        for (size_t i = 0; i < s->vms.nerrors; i++) {
                ia_diag("imgaudit scan", "VM definition '%s': %s", s->vms.errors[i].path,
                        s->vms.errors[i].msg);
                s->problems++;
        }
        if (s->vms.nomem)
                atomic_store(&s->nomem, true);
}
