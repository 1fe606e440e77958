/*
 * `imgaudit scan`: crawl directories and archives, map every chain, store it.
 *
 * The flow of one scan:
 *   1. lock the database (lock.c), open it (store.c: refuse damage, migrate),
 *      mark scans left 'running' by a dead process 'aborted', insert our own
 *      'running' scan row;
 *   2. walk every root (walk.c) into a list of regular files and a list of
 *      other entries;
 *   3. plan: a file whose identity (dev, ino, size, mtime, ctime) and path
 *      are those of the previous complete scan, and whose whole recorded
 *      chain is unchanged and was fine, is not read: its rows are copied in
 *      SQL (an IA_REC_REUSE record); an unchanged archive whose results only
 *      its bytes decide is carried over whole (plan_archives());
 *   4. workers (-j) take files in turn: probe the head; an image is opened
 *      with its chain through the scan resolver (resolve.c), each layer is
 *      mapped once into the layer cache and the chain map composed
 *      (compose.c); an archive is opened with archive.c and its members
 *      handled the same way; results go to the one writer thread;
 *   5. a file no driver recognises is an image only if some image uses it as
 *      a raw backing file (then it is mapped as raw); otherwise it is recorded
 *      as "not-an-image" (or "data-file" when an image keeps its data there):
 *      its scan_files row says so, and v_entries shows it (schema 6: no
 *      entries row of its own, so a store of small files costs two rows a file);
 *   6. the writer drains, and the scan row becomes 'complete' (or 'aborted').
 *
 * Exit status: 0 everything recorded; 1 some items could not be scanned
 * (unreadable entries, images that could not be opened or mapped: each is
 * recorded with its reason); 2 usage; 3 aborted (database error, disk full,
 * lock held, damaged database refused).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "chain.h"
#include "cli.h"
#include "commands.h"
#include "compose.h"
#include "devices.h"
#include "drivers.h"
#include "escape.h"
#include "hmap.h"
#include "lock.h"
#include "map.h"
#include "rawdisk.h"
#include "resolve.h"
#include "store.h"
#include "vmscan.h"
#include "walk.h"
#include "banned.h"

const char ia_scan_usage[] =
    "usage: imgaudit scan [--db FILE] [-j N] [--exclude GLOB]... [--allow-root DIR]...\n"
    "                     [--one-file-system] [--no-archives] [--full] [--budget SECONDS]\n"
    "                     [--vm-config DIR]... [--devices GLOB]... [--progress|--quiet]\n"
    "                     [--json] ROOT...\n"
    "\n"
    "Crawl the ROOTs (directories or files) and archives in them, recognise disk\n"
    "images by content, open every backing chain under a confinement policy, map\n"
    "each image and record everything in an SQLite database (see schema/README.md).\n"
    "\n"
    "  --db FILE            the database (default: $IMGAUDIT_DB, else ./imgaudit.db;\n"
    "                       created on first use)\n"
    "  -j, --jobs N         worker threads (default: the CPUs this process may use)\n"
    "  --raw-glob GLOB      files no format recognises whose name matches GLOB are raw\n"
    "                       disks (default: *.img *.raw *.iso; repeat to give several;\n"
    "                       --raw-glob= for none); disks by content are always found\n"
    "  --exclude GLOB       skip entries whose name, path below the ROOT or full path\n"
    "                       matches GLOB (fnmatch: 'vms/*.img', '*.iso', 'old')\n"
    "  --allow-root DIR     also allow backing files beneath DIR (default: the ROOTs)\n"
    "  --devices GLOB       also audit the block devices GLOB matches ('/dev/vg0/*',\n"
    "                       '/dev/zvol/tank/*'), read-only, never exclusively; repeat\n"
    "                       to give several; ROOTs may then be left out.  No other\n"
    "                       device is ever opened\n"
    "  --vm-config DIR      also read the VM definitions below DIR (libvirt XML,\n"
    "                       Proxmox qemu-server/*.conf and storage.cfg, .vmx, .vbox)\n"
    "                       besides those found in the ROOTs: which VM uses each disk\n"
    "  --one-file-system    do not descend into other file systems\n"
    "  --no-archives        do not look inside tar, OVA, zip and compressed archives\n"
    "  --full               read every file, even those unchanged since the last scan\n"
    "  --budget SECONDS     time allowed to map one image (default 300, 0: no limit);\n"
    "                       an image over budget is recorded with status 'limit'\n"
    "  --progress           show progress on stderr even when it is not a terminal\n"
    "  --quiet              no progress and no summary\n"
    "  --json               print the summary on stdout as one JSON object\n"
    "\n"
    "A one-line summary ends every scan on stderr (unless --quiet).  A ROOT that\n"
    "does not exist or cannot be opened is recorded as a problem and the others\n"
    "are scanned; if none can be opened, nothing is recorded (exit 2).\n"
    "\n"
    "Exit status: 0 everything recorded; 1 some items could not be scanned (each\n"
    "recorded with its reason); 2 usage error; 3 aborted (database error, disk\n"
    "full, the database is locked by another scan or damaged).\n";

#define LAYER_CACHE_BUDGET ((size_t)256 << 20)
#define LAYER_MAX_BYTES    ((size_t)64 << 20)
#define QUEUE_CAP          1024

/* A regular file this scan knows: walked, or met as a reference. */
struct reg_file {
        int64_t id;
        char *path;
        bool walked;
        /* what the file turned out to be ("image", "archive", ...); NULL: not decided yet */
        const char *kind;
        const char *prev_kind;             /* its kind in the previous scan, when unchanged */
        bool skipped_archive;              /* looks like an archive, not opened (--no-archives) */
        bool bare_extent;                  /* a VMDK sparse extent without a descriptor */
        atomic_bool raw_backing;           /* an image uses it as a backing file of a format given,
                                              not probed (raw, a fixed VHD parent: vpc) */
        _Atomic(const char *) backing_drv; /* that format's driver name (static) */
        atomic_bool data_file;             /* an image keeps its data (or an extent) in it */
        /* a raw disk because a VM definition names it ("vm-config") or the store's
         * layout says so ("layout", an oVirt .meta); set before the workers start */
        const char *raw_by;
};

enum job_action { JOB_READ, JOB_REUSE_IMAGE, JOB_REUSE_PLAIN, JOB_REUSE_ARCHIVE };

struct job {
        struct ia_walk_file wf;
        bool device; /* a block device asked for with --devices (wf.root unused) */
        struct reg_file *reg;
        bool new_file;
        enum job_action action;
        int64_t prev_image_id;
        int64_t *prev_images; /* JOB_REUSE_ARCHIVE: the images inside it, ascending */
        size_t nprev_images;
};

struct scan {
        /* options */
        const char *db_path;
        unsigned nworkers;
        const char **exclude;   /* NULL-terminated */
        const char **raw_globs; /* NULL-terminated: names of raw disks (--raw-glob) */
        const char **allow;
        size_t nallow;
        const char **devices; /* NULL-terminated --devices globs */
        size_t ndevices;
        const char **vm_config; /* --vm-config DIRs */
        size_t nvm_config;
        struct ia_vmscan vms;
        bool one_fs, no_archives;
        bool full;          /* --full or $IMGAUDIT_NO_INCREMENTAL: read every file */
        int progress;       /* -1 quiet, 0 when stderr is a terminal, 1 forced */
        bool json;          /* --json: the summary on stdout */
        uint64_t budget_ns; /* time allowed to map one image (0: no limit) */
        char **root_args;
        size_t nroots;

        struct ia_walk_root *roots;
        struct ia_walk_dirs dirs; /* directory descriptors kept by the walk */
        const char **allowed;     /* NULL-terminated allowed roots for references */
        struct ia_store *store;
        int64_t scan_id, prev_scan;
        int64_t trusted_before_ns; /* see settled() */
        struct ia_layer_cache *cache;

        pthread_mutex_t reg_lock;
        struct ia_hmap by_fid;   /* (dev, ino) -> struct reg_file * */
        struct ia_hmap findings; /* "file_id code msg" seen */
        struct reg_file **externals;
        size_t nexternals, cap_externals;
        atomic_int_fast64_t next_file_id, next_image_id, next_layer_id;
        /* "file_id format deps" -> layers.id: stored by this scan or an earlier one */
        struct ia_hmap layer_ids;

        struct job *jobs;
        struct {
                uint64_t dev, ino;
        } own[4]; /* the database, its -wal, -shm and .lock files: not scanned */
        size_t nown;
        size_t njobs, cap_jobs;
        atomic_size_t next_job, jobs_done;

        struct ia_rec *pending, *pending_tail; /* records made before the writer starts */
        struct ia_parent_index parents;        /* parents named by uuid (differencing VDIs) */

        /* the previous complete scan's walked files, path -> struct prev_file (when reuse) */
        struct ia_hmap prev;
        bool reuse;

        atomic_uint_fast64_t files_read, files_reused, layers_mapped, images, problems;
        atomic_bool nomem; /* set by any worker */
};

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
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

static void flush(struct scan *s)
{
        if (local_head)
                ia_store_put_list(s->store, local_head);
        local_head = local_tail = NULL;
        local_n = 0;
}

static void put(struct scan *s, struct ia_rec *r)
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
                flush(s);
}

static void pend(struct scan *s, struct ia_rec *r)
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

static struct ia_rec *entry_rec(const char *path, const char *kind, const char *reason,
                                const char *detail, int64_t file_id)
{
        struct ia_rec *r = ia_rec_new(IA_REC_ENTRY);

        if (!r)
                return NULL;
        r->u.entry.path = xstrdup(path);
        r->u.entry.kind = kind;
        r->u.entry.reason = xstrdup(reason);
        r->u.entry.detail = xstrdup(detail);
        r->u.entry.file_id = file_id;
        return r;
}

static struct ia_rec *scan_file_rec(int64_t file_id, const char *kind, bool reused)
{
        struct ia_rec *r = ia_rec_new(IA_REC_SCAN_FILE);

        if (r) {
                r->u.scan_file.file_id = file_id;
                r->u.scan_file.kind = kind;
                r->u.scan_file.reused = reused;
        }
        return r;
}

static bool same_identity(const struct ia_identity *a, const struct ia_identity *b)
{
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/*
 * Whether what the previous scan read of a file with identity was, the same
 * identity now, can be trusted.  Not for a file modified shortly before that
 * scan began: a write landing within the file system's timestamp granularity
 * after our stat leaves mtime as it was (a "racily clean" file).  Such a file
 * is read again, and trusted from the first scan that begins IA_RACY_NS after
 * its mtime.
 */
#define IA_RACY_NS (2 * 1000000000LL) /* covers FAT's 2 s and 1 s file systems */

static bool settled(const struct scan *s, const struct ia_identity *was)
{
        return was->mtime_ns < s->trusted_before_ns;
}

static char *join3(const char *a, char sep, const char *b)
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

/*
 * A VMDK sparse extent without a descriptor of its own ("KDMV", with no
 * descriptor offset or an empty descriptor there, as qemu-img writes the
 * extents of twoGbMaxExtentSparse): the extent file of another image's
 * descriptor, which cannot be opened alone.  Whether it is an image is decided
 * once every image has been scanned: an extent some image uses is a data file;
 * one that nothing uses is scanned as an image (and fails with its reason).
 */
static bool bare_vmdk_extent(const struct ia_driver *drv, const uint8_t *head, size_t hl)
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
static void note_own_files(struct scan *s)
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

struct prev_file {
        int64_t id;
        struct ia_identity ident;
        const char *kind; /* static */
};

static void on_walk_file(void *opaque, struct ia_walk_file *f)
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

static void on_walk_entry(void *opaque, const char *path, const char *kind, const char *reason,
                          const char *detail)
{
        struct scan *s = opaque;

        if (strcmp(kind, "unreadable") == 0)
                s->problems++;
        pend(s, entry_rec(path, kind, reason, detail, 0));
}

static void on_walk_dir(void *opaque, const char *path, uint64_t allocated)
{
        struct scan *s = opaque;
        struct ia_rec *r = entry_rec(path, "directory", NULL, NULL, 0);

        if (r)
                r->u.entry.allocated = allocated;
        pend(s, r);
}

/* ---- the registry of files ---- */

static struct reg_file *reg_new(int64_t id, const char *path)
{
        struct reg_file *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->id = id;
        r->path = strdup(path);
        if (!r->path) {
                free(r);
                return NULL;
        }
        atomic_init(&r->raw_backing, false);
        atomic_init(&r->backing_drv, "raw");
        atomic_init(&r->data_file, false);
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
static struct reg_file *reg_lookup(struct scan *s, const struct ia_file *f)
{
        struct ia_fid_key k = {f->src->dev, f->src->ino};
        struct reg_file *r;
        struct ia_rec *fr = NULL, *sf = NULL;

        pthread_mutex_lock(&s->reg_lock);
        r = ia_hmap_get(&s->by_fid, &k, sizeof(k));
        if (!r) {
                r = reg_new(atomic_fetch_add(&s->next_file_id, 1), f->name);
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
                r->kind = "external";
                fr = ia_rec_new(IA_REC_FILE);
                if (fr) {
                        fr->u.file.id = r->id;
                        fr->u.file.path = xstrdup(r->path);
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
                sf = scan_file_rec(r->id, "external", false);
        }
        pthread_mutex_unlock(&s->reg_lock);
        if (fr || sf) {
                put(s, fr);
                put(s, sf);
        }
        return r;
}

/* ---- one image (a chain) ---- */

/* Members of one archive being scanned. */
struct member_info {
        int64_t file_id;
        char *path; /* ARCHIVE!MEMBER */
        bool raw_backing, data_file, is_image, bare_extent;
        const char *backing_drv; /* with raw_backing: the format it is opened as */
};

struct arch_ctx {
        struct ia_archive *a;
        const char *path;
        int64_t file_id;
        struct ia_hmap members; /* member name -> struct member_info * */
};

struct pending_link {
        int64_t from_file_id, target_file_id;
        const char *kind;
        char *name, *target_path, *status, *error;
        bool target_raw_candidate;
};

struct img_job {
        struct scan *s;
        int64_t image_id, file_id;
        const char *path;
        struct ia_scan_resolver sr;
        struct arch_ctx *arch;
        struct pending_link *links;
        size_t nlinks, cap_links;
        /* the map being stored: pieces, or the rows of a chain mapped live */
        struct ia_rec *pieces_rec, *runs_rec;
        int64_t *layer_ids;                       /* per depth of the chain: its layers row */
        const struct ia_compose_layer *composing; /* the chain being composed, per depth */
        struct ia_chain_row *chain;
        size_t nchain;
        bool broken;             /* the last layer names a backing file that could not be opened */
        int64_t rows_layer;      /* live: the layers row of kind 'rows' holding the rows */
        uint64_t nruns;          /* live: rows stored as runs */
        struct ia_piece_row cur; /* live: the piece being extended (len 0: none) */
        struct ia_space sp;
        uint64_t rows;
};

/* The store id of a host file (and its path), for map rows and links. */
static int64_t file_ref(struct img_job *j, const struct ia_file *f, const char **path)
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
        struct reg_file *r = reg_lookup(j->s, f);

        if (!r)
                return 0;
        if (path)
                *path = r->path;
        return r->id;
}

static int64_t file_id_cb(void *opaque, const struct ia_file *f)
{
        return file_ref(opaque, f, NULL);
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
        l->from_file_id = file_ref(j, from->file, NULL);
        l->kind = ia_ref_kind_name(kind);
        l->name = xstrdup(name ? name : "");
        if (target) {
                l->target_file_id = file_ref(j, target, &tpath);
                l->target_path = xstrdup(tpath);
                /* Followed, but perhaps not the parent it should be (parent-mismatch). */
                l->status = strdup(status && status->reason ? status->reason : "ok");
                l->error = xstrdup(status ? status->msg : NULL);
        } else {
                if (name && name[0] && !ia_name_is_protocol(name) &&
                    strncmp(name, "json:", 5) != 0) {
                        if (j->arch) {
                                const char *base = ia_scan_resolver_member(&j->sr, from->file);
                                char *c = ia_path_combine(base ? base : "", name);
                                char *n = c ? ia_member_normalise(c) : NULL;

                                l->target_path = n ? join3(j->arch->path, '!', n) : NULL;
                                free(c);
                                free(n);
                        } else {
                                l->target_path = ia_path_combine(from->file->name, name);
                        }
                }
                l->status = xstrdup(status && status->reason
                                        ? status->reason
                                        : ia_errcat_name(status ? status->cat : IA_ERR_INTERNAL));
                l->error = xstrdup(status ? status->msg : NULL);
        }
        /* A data file or extent is part of the image, not a file of its own. */
        if (target && kind != IA_REF_BACKING) {
                if (target->src->dev || target->src->ino) {
                        struct reg_file *r = reg_lookup(j->s, target);

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
        int64_t fid = file_ref(j, img->file, NULL);
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
                        r->u.finding.code = xstrdup(code);
                        r->u.finding.message = xstrdup(msg);
                }
                put(s, r);
        }
}

/* A record of type t with its next chunk: the one being filled, else a new one. */
static struct ia_rec *chunk_rec(struct ia_rec **slot, enum ia_rec_type t, struct ia_error *err)
{
        if (!*slot && !(*slot = ia_rec_new(t)))
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return *slot;
}

static void put_chunk(struct scan *s, struct ia_rec **slot)
{
        if (*slot)
                put(s, *slot);
        *slot = NULL;
}

/* Every row of the image's map: its space figures and what it reads from each depth. */
static void count_row(struct img_job *j, const struct ia_map_row *row)
{
        ia_space_add_row(&j->sp, row);
        j->rows++;
        if (row->depth < j->nchain && !row->unknown) {
                if (row->data)
                        j->chain[row->depth].data += row->length;
                else if (row->zero)
                        j->chain[row->depth].zero += row->length;
        }
}

static const char *const piece_kind_name[] = {
    [IA_PIECE_LAYER] = "layer", [IA_PIECE_END] = "end", [IA_PIECE_UNKNOWN] = "unknown"};

static int put_piece(struct img_job *j, const struct ia_piece_row *p, struct ia_error *err)
{
        struct ia_rec *r = j->pieces_rec;

        /* most images have a handful of pieces: a small chunk, grown as needed */
        if (r && !ia_rec_chunk_room(r)) {
                put_chunk(j->s, &j->pieces_rec);
                r = NULL;
        }
        if (!r && !(r = j->pieces_rec = ia_rec_new_chunk(IA_REC_PIECES, 16)))
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        r->u.pieces.image_id = j->image_id;
        r->u.pieces.pieces[r->u.pieces.n++] = *p;
        return 0;
}

static int piece_cb(void *opaque, const struct ia_piece *p, struct ia_error *err)
{
        struct img_job *j = opaque;
        struct ia_space sp = {0};
        uint64_t rows = 0;

        /* count_row() for each of its rows, from the layer's prefix sums */
        ia_piece_space(p->kind == IA_PIECE_LAYER ? j->composing[p->depth].layer : NULL, p, &sp,
                       &rows);
        j->rows += rows;
        j->sp.own_data += sp.own_data;
        j->sp.backing_data += sp.backing_data;
        j->sp.zero += sp.zero;
        j->sp.unallocated += sp.unallocated;
        j->sp.compressed += sp.compressed;
        j->sp.unknown += sp.unknown;
        j->sp.mapped += sp.mapped;
        if (p->depth < j->nchain && p->kind != IA_PIECE_UNKNOWN) {
                j->chain[p->depth].data += sp.own_data + sp.backing_data;
                if (p->kind == IA_PIECE_LAYER)
                        j->chain[p->depth].zero += p->len - sp.own_data - sp.backing_data;
        }
        struct ia_piece_row row = {
            .start = p->start,
            .len = p->len,
            .depth = p->depth,
            .kind = piece_kind_name[p->kind],
            .layer_id = p->kind == IA_PIECE_LAYER ? j->layer_ids[p->depth] : 0,
        };

        return put_piece(j, &row, err);
}

/* A row of a chain mapped live: a run of the image's 'rows' layer, in a piece. */
static int live_row(struct img_job *j, struct ia_map_row row, struct ia_error *err)
{
        enum ia_piece_kind kind = IA_PIECE_LAYER;

        if (j->broken && row.depth + 1 == j->nchain && !row.data && row.zero && !row.present) {
                /* read through to the backing file that is missing: unknown, not zero */
                struct ia_map_row u = {.start = row.start, .length = row.length};

                u.depth = (uint32_t)j->nchain;
                u.unknown = 1;
                row = u;
        }
        if (row.unknown)
                kind = IA_PIECE_UNKNOWN;
        else if (!row.data && !row.zero)
                kind = IA_PIECE_END;
        count_row(j, &row);
        if (kind == IA_PIECE_LAYER) {
                struct ia_rec *r = chunk_rec(&j->runs_rec, IA_REC_RUNS, err);

                if (!r)
                        return -1;
                r->u.runs.layer_id = j->rows_layer;
                r->u.runs.rows[r->u.runs.n++] = row;
                j->nruns++;
                if (r->u.runs.n == IA_MAP_CHUNK)
                        put_chunk(j->s, &j->runs_rec);
        }
        if (j->cur.kind && j->cur.depth == row.depth && j->cur.kind == piece_kind_name[kind] &&
            j->cur.start + j->cur.len == row.start) {
                j->cur.len += row.length;
                return 0;
        }
        if (j->cur.kind && put_piece(j, &j->cur, err) < 0)
                return -1;
        j->cur = (struct ia_piece_row){.start = row.start,
                                       .len = row.length,
                                       .depth = row.depth,
                                       .kind = piece_kind_name[kind],
                                       .layer_id = kind == IA_PIECE_LAYER ? j->rows_layer : 0};
        return 0;
}

static int entry_cb(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct img_job *j = opaque;
        struct ia_map_row row;
        int64_t fid = e->has_offset && e->file ? file_ref(j, e->file, NULL) : 0;

        (void)last;
        ia_map_row_from_entry(e, fid, &row);
        return live_row(j, row, err);
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

/* The other files a layer reads (its data files, extents): "ID,ID", ascending. */
static char *layer_deps(struct img_job *j, int64_t file_id)
{
        int64_t *ids = calloc(j->nlinks + 1, sizeof(*ids));
        size_t n = 0, len = 0;
        char *out;

        if (!ids)
                return NULL;
        for (size_t i = 0; i < j->nlinks; i++)
                if (j->links[i].from_file_id == file_id && strcmp(j->links[i].kind, "backing") &&
                    j->links[i].target_file_id)
                        ids[n++] = j->links[i].target_file_id;
        qsort(ids, n, sizeof(*ids), cmp_i64);
        out = malloc(n * 21 + 1);
        if (out) {
                out[0] = '\0';
                for (size_t i = 0; i < n; i++)
                        if (i == 0 || ids[i] != ids[i - 1])
                                len += (size_t)snprintf(out + len, 22, "%s%lld", len ? "," : "",
                                                        (long long)ids[i]);
        }
        free(ids);
        return out;
}

/*
 * The layers row of layer l (img's own runs): the one stored by this scan or
 * an earlier one when there is one, else a new one, with its runs.  0 with
 * *id set, or -1 (ENOMEM).
 */
static int store_layer(struct img_job *j, struct ia_image *img, const struct ia_layer *l,
                       int64_t file_id, int64_t *id)
{
        struct scan *s = j->s;
        char *deps = layer_deps(j, file_id), *key;
        size_t kl;
        bool fresh = false;
        struct ia_rec *r, *runs = NULL;

        if (!deps)
                return -1;
        kl = strlen(deps) + strlen(img->drv->name) + 24;
        key = malloc(kl);
        if (!key) {
                free(deps);
                return -1;
        }
        kl = (size_t)snprintf(key, kl, "%lld %s %s", (long long)file_id, img->drv->name, deps);
        pthread_mutex_lock(&s->reg_lock);
        *id = (int64_t)(intptr_t)ia_hmap_get(&s->layer_ids, key, kl);
        if (!*id) {
                *id = atomic_fetch_add(&s->next_layer_id, 1);
                fresh = ia_hmap_put(&s->layer_ids, key, kl, (void *)(intptr_t)*id) == 0;
        }
        pthread_mutex_unlock(&s->reg_lock);
        free(key);
        if (!fresh) {
                free(deps);
                return 0;
        }
        r = ia_rec_new(IA_REC_LAYER);
        if (!r) {
                free(deps);
                return -1;
        }
        r->u.layer.id = *id;
        r->u.layer.kind = "layer";
        r->u.layer.file_id = file_id;
        r->u.layer.format = xstrdup(img->drv->name);
        r->u.layer.deps = deps;
        r->u.layer.size = l->size;
        r->u.layer.runs = l->n;
        put(s, r);
        for (size_t i = 0; i < l->n; i++) {
                const struct ia_layer_run *u = &l->runs[i];
                struct ia_map_row *m;

                if (!runs && !(runs = ia_rec_new_chunk(IA_REC_RUNS, l->n - i)))
                        return -1;
                runs->u.runs.layer_id = *id;
                m = &runs->u.runs.rows[runs->u.runs.n++];
                memset(m, 0, sizeof(*m));
                m->start = u->start;
                m->length = u->len;
                m->present = (u->flags & IA_BS_ALLOCATED) != 0;
                m->zero = (u->flags & IA_BS_ZERO) != 0;
                m->data = (u->flags & IA_BS_DATA) != 0;
                m->compressed = (u->flags & IA_BS_COMPRESSED) != 0;
                m->has_offset = (u->flags & IA_BS_OFFSET) != 0;
                m->offset = u->host_off;
                m->file_id = u->file_id;
                if (runs->u.runs.n == runs->u.runs.cap)
                        put_chunk(s, &runs);
        }
        put_chunk(s, &runs);
        return 0;
}

/* Compose the pieces of the chain from its cached layers; 1 if it must be mapped live. */
static int compose_chain(struct img_job *j, struct ia_image *top, struct ia_error *err)
{
        struct scan *s = j->s;
        struct ia_compose_layer *chain = calloc(j->nchain, sizeof(*chain));
        struct ia_layer **held = calloc(j->nchain, sizeof(*held));
        struct ia_image *img = top;
        size_t got = 0;
        int rc = 1;

        if (!chain || !held)
                goto out;
        for (got = 0; got < j->nchain; got++, img = img->backing_img) {
                struct ia_error lerr;
                bool mapped = false;

                ia_error_clear(&lerr);
                if (ia_layer_cache_get(s->cache, img, file_id_cb, j, &held[got], &mapped, &lerr) <
                    0)
                        break;
                if (mapped)
                        s->layers_mapped++;
                chain[got].layer = held[got];
                chain[got].cow = img->cow;
        }
        if (got < j->nchain)
                goto out;
        chain[j->nchain - 1].broken = j->broken;
        for (size_t d = 0; d < j->nchain; d++)
                if (chain[d].layer->failed || chain[d].layer->too_big)
                        goto out;
        img = top;
        for (size_t d = 0; d < j->nchain; d++, img = img->backing_img) {
                if (store_layer(j, img, chain[d].layer, j->chain[d].file_id, &j->layer_ids[d]) <
                    0) {
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        goto out;
                }
                j->chain[d].layer_id = j->layer_ids[d];
        }
        j->composing = chain;
        rc = ia_compose_pieces(chain, j->nchain, piece_cb, NULL, j, err);
        j->composing = NULL;
out:
        for (size_t i = 0; i < got; i++)
                ia_layer_cache_put(s->cache, held[i]);
        free(chain);
        free(held);
        return rc;
}

/*
 * Map the opened chain into the store: its pieces over the layers (each
 * stored once), or, when a layer failed or is too big, its rows mapped live
 * as one 'rows' layer; then what it reads from each depth.
 */
static int map_chain(struct img_job *j, struct ia_image *top, struct ia_error *err)
{
        struct scan *s = j->s;
        struct ia_image *img;
        struct ia_rec *c;
        int rc = -1;

        j->nchain = 0;
        for (img = top; img; img = img->backing_img) {
                j->nchain++;
                if (!img->backing_img)
                        j->broken = img->backing && img->backing[0];
        }
        j->chain = calloc(j->nchain, sizeof(*j->chain));
        j->layer_ids = calloc(j->nchain, sizeof(*j->layer_ids));
        if (!j->chain || !j->layer_ids) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        img = top;
        for (size_t d = 0; d < j->nchain; d++, img = img->backing_img) {
                j->chain[d].depth = (uint32_t)d;
                j->chain[d].file_id = file_ref(j, img->file, NULL);
        }
        rc = compose_chain(j, top, err);
        if (rc == 1) {
                /* a layer failed, is too big, or memory ran out: map it live, streaming */
                struct ia_map_opts o = {
                    .start = 0, .max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
                struct ia_rec *r;

                if (j->rows || j->pieces_rec) {
                        rc = ia_error_set(err, IA_ERR_INTERNAL,
                                          "composition stopped after emitting pieces");
                        goto out;
                }
                j->rows_layer = atomic_fetch_add(&s->next_layer_id, 1);
                rc = ia_map(top, &o, entry_cb, j, err);
                if (j->cur.kind && put_piece(j, &j->cur, rc < 0 ? NULL : err) < 0)
                        rc = -1;
                r = ia_rec_new(IA_REC_LAYER);
                if (r) {
                        r->u.layer.id = j->rows_layer;
                        r->u.layer.kind = "rows";
                        r->u.layer.file_id = j->chain[0].file_id;
                        r->u.layer.format = xstrdup(top->drv->name);
                        r->u.layer.size = top->size;
                        r->u.layer.runs = j->nruns;
                }
                put_chunk(s, &j->runs_rec);
                put(s, r);
        }
        put_chunk(s, &j->pieces_rec);
        /* what it reads from each backing layer (depth 0 is the image's own_data_bytes) */
        if (j->nchain > 1) {
                c = ia_rec_new(IA_REC_CHAIN);
                if (c) {
                        memmove(j->chain, j->chain + 1, (j->nchain - 1) * sizeof(*j->chain));
                        c->u.chain.image_id = j->image_id;
                        c->u.chain.rows = j->chain;
                        c->u.chain.n = j->nchain - 1;
                        j->chain = NULL;
                }
                put(s, c);
        }
out:
        free(j->chain);
        free(j->layer_ids);
        j->chain = NULL;
        j->layer_ids = NULL;
        return rc;
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
                        if (file_ref(j, img->file, NULL) == l->from_file_id)
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
                put(j->s, r);
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
static void scan_image(struct scan *s, struct ia_source *top_src, const char *path, int64_t file_id,
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
        j.file_id = file_id;
        j.path = path;
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
                ir->u.image.format = xstrdup(fmt ? fmt : probed);
                ir->u.image.status = xstrdup(err.reason && strcmp(err.reason, "unreadable") != 0
                                                 ? err.reason
                                                 : ia_errcat_name(err.cat));
                ir->u.image.error = xstrdup(err.msg);
                s->problems++;
                flush_links(&j, NULL);
                put(s, ir);
                put(s, scan_file_rec(file_id, "image", false));
                s->images++;
                return;
        }
        ir->u.image.format = xstrdup(top->drv->name);
        ir->u.image.probed = top->fmt_probed;
        ir->u.image.has_vsize = true;
        ir->u.image.virtual_size = top->size;
        ir->u.image.cluster_size = top->cluster_size;
        ir->u.image.flags = top->flags;
        ir->u.image.backing = xstrdup(top->backing);
        ir->u.image.backing_fmt = top->backing_fmt[0] ? xstrdup(top->backing_fmt) : NULL;
        for (struct ia_image *i = top; i; i = i->backing_img) {
                if (i != top) {
                        depth++;
                        /* A parent opened by the format its child names (raw, or a fixed
                         * VHD that no probe recognises) is an image of that format. */
                        if (strcmp(i->drv->name, "raw") == 0 || !i->fmt_probed) {
                                if (i->file->src->dev || i->file->src->ino) {
                                        struct reg_file *r = reg_lookup(s, i->file);

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
                        errmsg = xstrdup(i->backing_err.msg);
                }
        }
        ir->u.image.chain_depth = depth;
        if (map_chain(&j, top, &err) < 0) {
                status = ia_errcat_name(err.cat);
                free(errmsg);
                errmsg = xstrdup(err.msg);
                s->problems++;
        }
        ir->u.image.has_space = true;
        ir->u.image.sp = j.sp;
        ir->u.image.map_rows = j.rows;
        flush_links(&j, top);
        ir->u.image.status = xstrdup(status);
        ir->u.image.error = errmsg;
        put(s, ir);
        put(s, scan_file_rec(file_id, "image", false));
        s->images++;
        ia_image_free(top);
}

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
                r->u.finding.code = xstrdup(code);
                r->u.finding.message = xstrdup(msg);
        }
        put(s, r);
}

/* name: the path the image is opened by (dmg is recognised by its suffix). */
static bool probe_source(struct ia_source *src, const char *name, uint8_t *head, size_t *len,
                         const struct ia_driver **drv, struct ia_error *err)
{
        struct ia_probe p;
        int64_t n = ia_read_upto(src, head, IA_PROBE_HEAD, 0, err);

        if (n < 0)
                return false;
        memset(&p, 0, sizeof(p));
        p.head = head;
        p.head_len = (size_t)n;
        p.size = src->size;
        p.name = name;
        *len = (size_t)n;
        *drv = ia_driver_probe_bytes(&p);
        return true;
}

static void scan_archive(struct scan *s, struct ia_source *src, const char *path, int64_t file_id,
                         bool *is_archive);

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
                               aerr->msg);
                s->problems++;
        }
        /* Every member gets a files row first, so references can name it. */
        for (size_t i = 0; i < n; i++) {
                const struct ia_archive_member *m = ia_archive_member(ac->a, i);
                struct member_info *mi;
                struct ia_rec *fr;

                if (m->type == IA_MEMBER_DIR)
                        continue;
                mi = calloc(1, sizeof(*mi));
                if (!mi || !(mi->path = join3(ac->path, '!', m->name))) {
                        free(mi);
                        atomic_store(&s->nomem, true);
                        goto out;
                }
                mi->file_id = atomic_fetch_add(&s->next_file_id, 1);
                free_member_info(ia_hmap_get(&ac->members, m->name, strlen(m->name)), NULL);
                ia_hmap_put(&ac->members, m->name, strlen(m->name), mi);
                fr = ia_rec_new(IA_REC_FILE);
                if (fr) {
                        fr->u.file.id = mi->file_id;
                        fr->u.file.path = xstrdup(mi->path);
                        fr->u.file.archive_id = ac->file_id;
                        fr->u.file.member = xstrdup(m->name);
                        fr->u.file.size = m->size;
                        fr->u.file.allocated = 0; /* its bytes are its archive's blocks */
                        fr->u.file.mtime_ns = m->mtime * 1000000000;
                }
                put(s, fr);
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
        /* Images first (they decide which plain members are raw backing or data files). */
        for (size_t i = 0; i < n; i++) {
                const struct ia_archive_member *m = ia_archive_member(ac->a, i);
                struct member_info *mi = ia_hmap_get(&ac->members, m->name, strlen(m->name));
                const struct ia_driver *drv;
                struct ia_error err;
                size_t hl;

                if (m->type == IA_MEMBER_DIR || !mi || ia_archive_find(ac->a, m->name) != m)
                        continue; /* an overwritten duplicate is only recorded */
                if (m->type != IA_MEMBER_FILE) {
                        put(s, entry_rec(mi->path, member_kind(m->type), "not followed",
                                         m->link_target, mi->file_id));
                        continue;
                }
                if (!m->src) {
                        put(s, entry_rec(mi->path, "unreadable", ia_errcat_name(m->error.cat),
                                         m->error.msg, mi->file_id));
                        s->problems++;
                        continue;
                }
                ia_error_clear(&err);
                if (!probe_source(m->src, mi->path, head, &hl, &drv, &err)) {
                        put(s, entry_rec(mi->path, "unreadable", ia_errcat_name(err.cat), err.msg,
                                         mi->file_id));
                        s->problems++;
                        continue;
                }
                if (bare_vmdk_extent(drv, head, hl)) {
                        mi->bare_extent = true; /* decided below, as for a walked file */
                        todo[i] = true;
                        continue;
                }
                if (drv != &ia_drv_raw) {
                        mi->is_image = true;
                        scan_image(s, m->src, mi->path, mi->file_id, NULL, drv->name, ac,
                                   "content");
                        continue;
                }
                if (ia_archive_probe(head, hl)) {
                        bool nested = false;

                        scan_archive(s, m->src, mi->path, mi->file_id, &nested);
                        if (nested)
                                continue;
                }
                todo[i] = true;
        }
        for (size_t i = 0; i < n; i++) {
                const struct ia_archive_member *m = ia_archive_member(ac->a, i);
                struct member_info *mi = ia_hmap_get(&ac->members, m->name, strlen(m->name));

                if (!todo[i] || !mi)
                        continue;
                if (mi->raw_backing) {
                        const char *f = mi->backing_drv ? mi->backing_drv : "raw";

                        scan_image(s, m->src, mi->path, mi->file_id, f, f, ac, "reference");
                } else if (mi->data_file) {
                        put(s, scan_file_rec(mi->file_id, "data-file", false));
                } else if (mi->bare_extent) {
                        mi->is_image = true;
                        scan_image(s, m->src, mi->path, mi->file_id, NULL, "vmdk", ac, "content");
                } else {
                        put(s, scan_file_rec(mi->file_id, "not-an-image", false));
                }
        }
        for (size_t i = 0; i < ia_archive_ovf_count(ac->a); i++) {
                const struct ia_ovf_disk *d = ia_archive_ovf_disk(ac->a, i);
                struct ia_rec *r = ia_rec_new(IA_REC_OVF);
                struct member_info *mi =
                    d->href ? ia_hmap_get(&ac->members, d->href, strlen(d->href)) : NULL;

                if (r) {
                        r->u.ovf.archive_file_id = ac->file_id;
                        r->u.ovf.member_file_id = mi ? mi->file_id : 0;
                        r->u.ovf.disk_id = xstrdup(d->disk_id);
                        r->u.ovf.href = xstrdup(d->href);
                        r->u.ovf.format = xstrdup(d->format);
                        r->u.ovf.capacity = d->capacity;
                }
                put(s, r);
        }
out:
        free(head);
        free(todo);
}

static void scan_archive(struct scan *s, struct ia_source *src, const char *path, int64_t file_id,
                         bool *is_archive)
{
        struct arch_ctx ac;
        struct ia_error err;

        *is_archive = false;
        memset(&ac, 0, sizeof(ac));
        ia_error_clear(&err);
        if (ia_archive_open(src, path, NULL, &ac.a, &err) < 0) {
                if (err.cat == IA_ERR_LIMIT) {
                        /* an archive, but nested too deep: recorded, not opened */
                        *is_archive = true;
                        put(s, scan_file_rec(file_id, "archive", false));
                        member_finding(s, file_id, "archive-limit", err.msg);
                        s->problems++; /* its members could not be scanned */
                }
                return;
        }
        *is_archive = true;
        ac.path = path;
        ac.file_id = file_id;
        ia_hmap_init(&ac.members);
        put(s, scan_file_rec(file_id, "archive", false));
        scan_members(s, &ac);
        ia_hmap_each(&ac.members, free_member_info, NULL);
        ia_hmap_release(&ac.members);
        ia_archive_free(ac.a);
}

/* ---- one walked file ---- */

static void new_file_rec(struct scan *s, const struct job *jb)
{
        struct ia_rec *r = ia_rec_new(IA_REC_FILE);

        if (r) {
                r->u.file.id = jb->reg->id;
                r->u.file.path = xstrdup(jb->wf.path);
                r->u.file.has_identity = true;
                r->u.file.dev = jb->wf.id.dev;
                r->u.file.ino = jb->wf.id.ino;
                r->u.file.size = jb->wf.id.size;
                r->u.file.allocated = jb->wf.id.allocated;
                r->u.file.mtime_ns = jb->wf.id.mtime_ns;
                r->u.file.ctime_ns = jb->wf.id.ctime_ns;
        }
        put(s, r);
}

static struct ia_source *open_job(struct scan *s, struct job *jb)
{
        struct ia_error err;
        struct ia_source *src;

        ia_error_clear(&err);
        src = jb->device ? ia_device_open(jb->wf.path, &jb->wf.id, &err)
                         : ia_walk_open_file(&s->roots[jb->wf.root], &s->dirs, &jb->wf, &err);
        if (!src) {
                put(s, entry_rec(jb->wf.path, "unreadable", err.reason ? err.reason : "io", err.msg,
                                 jb->reg->id));
                s->problems++;
        }
        return src;
}

static void process(struct scan *s, struct job *jb)
{
        struct ia_source *src;
        const struct ia_driver *drv;
        struct ia_error err;
        uint8_t head[IA_PROBE_HEAD];
        size_t hl;

        if (jb->new_file)
                new_file_rec(s, jb);
        if (jb->action == JOB_REUSE_PLAIN) {
                s->files_reused++;
                return; /* decided after the workers: not-an-image, data-file or raw backing */
        }
        if (jb->action == JOB_REUSE_IMAGE) {
                struct ia_rec *r = ia_rec_new(IA_REC_REUSE);

                if (r) {
                        r->u.reuse.old_image_id = jb->prev_image_id;
                        r->u.reuse.new_image_id = atomic_fetch_add(&s->next_image_id, 1);
                }
                put(s, r);
                put(s, scan_file_rec(jb->reg->id, "image", true));
                jb->reg->kind = "image";
                s->files_reused++;
                s->images++;
                return;
        }
        if (jb->action == JOB_REUSE_ARCHIVE) {
                /* its members' other rows come with the IA_REC_REUSE_MEMBERS record */
                for (size_t i = 0; i < jb->nprev_images; i++) {
                        struct ia_rec *r = ia_rec_new(IA_REC_REUSE);

                        if (r) {
                                r->u.reuse.old_image_id = jb->prev_images[i];
                                r->u.reuse.new_image_id = atomic_fetch_add(&s->next_image_id, 1);
                        }
                        put(s, r);
                }
                put(s, scan_file_rec(jb->reg->id, "archive", true));
                jb->reg->kind = "archive";
                s->files_reused++;
                s->images += jb->nprev_images;
                return;
        }
        s->files_read++;
        src = open_job(s, jb);
        if (!src) {
                jb->reg->kind = "unreadable";
                return;
        }
        ia_error_clear(&err);
        if (!probe_source(src, jb->wf.path, head, &hl, &drv, &err)) {
                put(s, entry_rec(jb->wf.path, "unreadable", "io", err.msg, jb->reg->id));
                s->problems++;
                jb->reg->kind = "unreadable";
        } else if (bare_vmdk_extent(drv, head, hl)) {
                jb->reg->bare_extent = true; /* decided by settle_plain_files() */
        } else if (drv != &ia_drv_raw) {
                jb->reg->kind = "image";
                scan_image(s, src, jb->wf.path, jb->reg->id, NULL, drv->name, NULL, "content");
        } else if (s->no_archives && ia_archive_probe(head, hl)) {
                jb->reg->skipped_archive = true; /* read by settle_plain_files() after the join */
        } else if (ia_archive_probe(head, hl)) {
                bool is_archive = false;

                scan_archive(s, src, jb->wf.path, jb->reg->id, &is_archive);
                if (is_archive)
                        jb->reg->kind = "archive";
        } else if (src->size > 0 &&
                   (jb->device || ia_rawdisk_signature(src, head, hl) || jb->reg->raw_by ||
                    ia_rawdisk_name_matches(jb->wf.path, s->raw_globs))) {
                /* a raw disk: by content (a partition table, a file system, ...), because a
                 * VM definition or the store's layout names it, by name, or a block device
                 * asked for (--devices: a volume is a disk) */
                const char *by = ia_rawdisk_signature(src, head, hl) ? "content"
                                 : jb->device                        ? "option"
                                 : jb->reg->raw_by                   ? jb->reg->raw_by
                                                                     : "name";

                jb->reg->kind = "image";
                scan_image(s, src, jb->wf.path, jb->reg->id, "raw", "raw", NULL, by);
        }
        ia_source_unref(src);
}

static void *worker_main(void *arg)
{
        struct scan *s = arg;

        for (;;) {
                size_t i = atomic_fetch_add(&s->next_job, 1);

                if (i >= s->njobs)
                        break;
                process(s, &s->jobs[i]);
                s->jobs_done++;
        }
        flush(s);
        return NULL;
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

        if (jb->action == JOB_REUSE_PLAIN) {
                s->files_reused--;
                s->files_read++;
        }
        src = open_job(s, jb);
        if (!src) {
                r->kind = "unreadable";
                return;
        }
        ia_error_clear(&err);
        if (!probe_source(src, jb->wf.path, head, &hl, &drv, &err)) {
                put(s, entry_rec(jb->wf.path, "unreadable", "io", err.msg, r->id));
                s->problems++;
                r->kind = "unreadable";
        } else if (drv != &ia_drv_raw) {
                r->kind = "image";
                scan_image(s, src, jb->wf.path, r->id, NULL, drv->name, NULL, "content");
        } else {
                put(s, scan_file_rec(r->id, "not-an-image", false));
        }
        ia_source_unref(src);
}

/* A raw disk by its users (a VM definition, the store's layout), read after the workers. */
static void vm_raw_disk(struct scan *s, struct job *jb)
{
        struct reg_file *r = jb->reg;
        struct ia_source *src;

        if (jb->action == JOB_REUSE_PLAIN && r->prev_kind && strcmp(r->prev_kind, "image") == 0) {
                struct ia_rec *rec = ia_rec_new(IA_REC_REUSE); /* unchanged: carried over */

                if (rec) {
                        rec->u.reuse.old_image_id = jb->prev_image_id;
                        rec->u.reuse.new_image_id = atomic_fetch_add(&s->next_image_id, 1);
                }
                put(s, rec);
                put(s, scan_file_rec(r->id, "image", true));
                r->kind = "image";
                s->images++;
                return;
        }
        if (jb->action == JOB_REUSE_PLAIN) {
                s->files_reused--;
                s->files_read++;
        }
        src = open_job(s, jb);
        if (!src) {
                r->kind = "unreadable";
                return;
        }
        r->kind = "image";
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
                ia_vmscan_add_error(&s->vms, jb->wf.path, jb->reg->id, err.msg);
                return;
        }
        text = malloc((size_t)src->size + 1);
        if (!text) {
                s->vms.nomem = true;
        } else if (ia_read(src, text, (size_t)src->size, 0, "VM definition", &err) < 0) {
                ia_vmscan_add_error(&s->vms, jb->wf.path, jb->reg->id, err.msg);
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
        r = ia_hmap_get(&s->by_fid, &k, sizeof(k));
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
static bool in_nova_base(const char *path)
{
        const char *slash = strrchr(path, '/');

        if (!slash || slash == path)
                return false;
        return (slash - path == 5 && strncmp(path, "_base", 5) == 0) ||
               (slash - path > 5 && strncmp(slash - 6, "/_base", 6) == 0);
}

static void vm_pass(struct scan *s)
{
        for (size_t i = 0; i < s->njobs; i++) {
                enum ia_vmdef_file k = ia_vmdef_classify(s->jobs[i].wf.path);

                if (k != IA_VMDEF_NONE)
                        vm_read_walked(s, &s->jobs[i], k);
                else if (in_nova_base(s->jobs[i].wf.path) && s->jobs[i].wf.id.size > 0)
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

/* Files no driver recognised: raw backing files become images, the rest are recorded. */
static void settle_plain_files(struct scan *s)
{
        for (size_t i = 0; i < s->njobs; i++) {
                struct job *jb = &s->jobs[i];
                struct reg_file *r = jb->reg;

                if (r->kind)
                        continue;
                if (atomic_load(&r->raw_backing) && jb->action == JOB_REUSE_PLAIN && r->prev_kind &&
                    strcmp(r->prev_kind, "image") == 0) {
                        /* an unchanged raw backing file still used as one: carried over */
                        struct ia_rec *rec = ia_rec_new(IA_REC_REUSE);

                        if (rec) {
                                rec->u.reuse.old_image_id = jb->prev_image_id;
                                rec->u.reuse.new_image_id = atomic_fetch_add(&s->next_image_id, 1);
                        }
                        put(s, rec);
                        put(s, scan_file_rec(r->id, "image", true));
                        r->kind = "image";
                        s->images++;
                } else if (atomic_load(&r->raw_backing)) {
                        struct ia_source *src = open_job(s, jb);

                        if (jb->action == JOB_REUSE_PLAIN) {
                                s->files_reused--;
                                s->files_read++;
                        }
                        if (src) {
                                const char *f = atomic_load(&r->backing_drv);

                                r->kind = "image";
                                scan_image(s, src, jb->wf.path, r->id, f, f, NULL, "reference");
                                ia_source_unref(src);
                        }
                } else if (r->raw_by) {
                        vm_raw_disk(s, jb);
                } else if (atomic_load(&r->data_file)) {
                        put(s, scan_file_rec(r->id, "data-file", jb->action == JOB_REUSE_PLAIN));
                } else if (r->bare_extent || (jb->action == JOB_REUSE_PLAIN && r->prev_kind &&
                                              strcmp(r->prev_kind, "data-file") == 0)) {
                        /* a data file no longer used (or an extent never used): read it */
                        settle_unused_data(s, jb);
                } else if (r->skipped_archive ||
                           (r->prev_kind && strcmp(r->prev_kind, "archive-skipped") == 0)) {
                        put(s,
                            scan_file_rec(r->id, "archive-skipped", jb->action == JOB_REUSE_PLAIN));
                } else {
                        put(s, scan_file_rec(r->id, "not-an-image", jb->action == JOB_REUSE_PLAIN));
                }
        }
}

/* ---- planning: the previous scan ---- */

static const char *static_kind(const unsigned char *k)
{
        static const char *const kinds[] = {"image",     "archive",         "not-an-image",
                                            "data-file", "archive-skipped", "external"};

        for (size_t i = 0; k && i < sizeof(kinds) / sizeof(kinds[0]); i++)
                if (strcmp((const char *)k, kinds[i]) == 0)
                        return kinds[i];
        return NULL;
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

/* The current identity of path: from this walk, or lstat for files outside it. */
static bool current_identity(const struct ia_hmap *walked, const char *path, struct ia_identity *id)
{
        const struct job *jb = ia_hmap_get(walked, path, strlen(path));
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
static bool image_reusable(struct scan *s, sqlite3 *db, const struct ia_hmap *walked,
                           int64_t file_id, int64_t *image_id, bool *raw)
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
                ok = path && current_identity(walked, path, &now) && same_identity(&was, &now) &&
                     settled(s, &was);
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
static int mark_reused_refs(struct scan *s, sqlite3 *db, const struct ia_hmap *walked)
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
                        const struct job *t = ia_hmap_get(walked, sqlite3_column_blob(st, 1),
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

static void free_prev(void *value, void *opaque)
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
                if (s->jobs[i].reg->prev_kind && strcmp(s->jobs[i].reg->prev_kind, "archive") == 0)
                        ncand++;
        if (!ncand)
                return;
        plans = calloc(ncand, sizeof(*plans));
        if (!plans)
                goto out;
        for (size_t i = 0; i < s->njobs; i++) {
                struct job *jb = &s->jobs[i];

                if (!jb->reg->prev_kind || strcmp(jb->reg->prev_kind, "archive") != 0)
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
        pend(s, rec);
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
        ia_hmap_each(&ap.members, free_prev, NULL);
        ia_hmap_release(&ap.members);
        ia_hmap_release(&ap.tops);
}

/* Give every walked file its id and decide what to do with it. */
/*
 * The layers the previous scan's files have, stored already: a layer read
 * again with the same file, format and data files is not written again.
 * Only files this scan keeps (unchanged, same files row) can match.
 */
static int load_layers(struct scan *s, sqlite3 *db)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(db,
                               "SELECT id, file_id, format, deps FROM layers "
                               "WHERE kind = 'layer' AND tool_version = ?2 AND file_id IN "
                               "(SELECT file_id FROM scan_files WHERE scan_id = ?1)",
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
static int load_prev(struct scan *s, struct ia_error *err)
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
                        p->kind = static_kind(sqlite3_column_text(st, 7));
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

static int plan(struct scan *s, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s->store);
        struct ia_hmap walked;
        int64_t max_file, max_image, max_layer;
        bool reuse = s->reuse;
        int rc = -1;

        ia_hmap_init(&walked);
        if (ia_store_max_ids(s->store, &max_file, &max_image, &max_layer, err) < 0)
                return -1;
        atomic_store(&s->next_file_id, max_file + 1);
        atomic_store(&s->next_image_id, max_image + 1);
        atomic_store(&s->next_layer_id, max_layer + 1);
        /* the walked files by path: only what reuse consults */
        for (size_t i = 0; reuse && i < s->njobs; i++)
                if (ia_hmap_put(&walked, s->jobs[i].wf.path, strlen(s->jobs[i].wf.path),
                                &s->jobs[i]) < 0)
                        goto nomem;
        for (size_t i = 0; i < s->njobs; i++) {
                struct job *jb = &s->jobs[i];
                struct prev_file *p = ia_hmap_get(&s->prev, jb->wf.path, strlen(jb->wf.path));
                struct ia_fid_key k = {jb->wf.id.dev, jb->wf.id.ino};
                bool same = p && same_identity(&p->ident, &jb->wf.id);
                bool raw = false;

                jb->reg =
                    reg_new(same ? p->id : atomic_fetch_add(&s->next_file_id, 1), jb->wf.path);
                if (!jb->reg || ia_hmap_put(&s->by_fid, &k, sizeof(k), jb->reg) < 0)
                        goto nomem;
                jb->reg->walked = true;
                jb->new_file = !same;
                jb->action = JOB_READ;
                /* a device's bytes change with no time of its node changing: always read */
                if (!same || !p->kind || !settled(s, &p->ident) || jb->device)
                        continue;
                if (strcmp(p->kind, "not-an-image") == 0 || strcmp(p->kind, "data-file") == 0) {
                        jb->action = JOB_REUSE_PLAIN;
                        jb->reg->prev_kind = p->kind;
                } else if (strcmp(p->kind, "archive-skipped") == 0 && s->no_archives) {
                        jb->action = JOB_REUSE_PLAIN;
                        jb->reg->prev_kind = p->kind;
                } else if (strcmp(p->kind, "image") == 0 &&
                           image_reusable(s, db, &walked, p->id, &jb->prev_image_id, &raw)) {
                        jb->action = raw ? JOB_REUSE_PLAIN : JOB_REUSE_IMAGE;
                        if (raw)
                                jb->reg->prev_kind = p->kind;
                } else if (strcmp(p->kind, "archive") == 0 && !s->no_archives) {
                        jb->reg->prev_kind = p->kind; /* decided by plan_archives() */
                }
        }
        if (reuse && mark_reused_refs(s, db, &walked) < 0) {
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
        ia_hmap_each(&s->prev, free_prev, NULL);
        ia_hmap_release(&s->prev);
        ia_hmap_init(&s->prev);
        ia_hmap_release(&walked);
        return rc;
}

/* ---- the command ---- */

static void progress(struct scan *s, bool final)
{
        if (s->progress < 0 || (s->progress == 0 && !isatty(STDERR_FILENO)))
                return;
        fprintf(stderr, "\rimgaudit scan: %zu/%zu files, %llu images%s",
                (size_t)atomic_load(&s->jobs_done), s->njobs,
                (unsigned long long)atomic_load(&s->images), final ? "\n" : "");
}

static int usage_error(const char *fmt, const char *arg)
{
        return ia_usage_error("scan", 2, fmt, arg);
}

enum {
        OPT_DB = 256,
        OPT_EXCLUDE,
        OPT_ALLOW,
        OPT_ONE_FS,
        OPT_NO_ARCHIVES,
        OPT_PROGRESS,
        OPT_QUIET,
        OPT_BUDGET,
        OPT_FULL,
        OPT_JSON,
        OPT_RAW_GLOB,
        OPT_DEVICES,
        OPT_VM_CONFIG,
};

static int parse_args(struct scan *s, int argc, char **argv)
{
        static const struct option longopts[] = {
            {"db", required_argument, NULL, OPT_DB},
            {"jobs", required_argument, NULL, 'j'},
            {"exclude", required_argument, NULL, OPT_EXCLUDE},
            {"allow-root", required_argument, NULL, OPT_ALLOW},
            {"one-file-system", no_argument, NULL, OPT_ONE_FS},
            {"no-archives", no_argument, NULL, OPT_NO_ARCHIVES},
            {"progress", no_argument, NULL, OPT_PROGRESS},
            {"quiet", no_argument, NULL, OPT_QUIET},
            {"budget", required_argument, NULL, OPT_BUDGET},
            {"full", no_argument, NULL, OPT_FULL},
            {"json", no_argument, NULL, OPT_JSON},
            {"raw-glob", required_argument, NULL, OPT_RAW_GLOB},
            {"devices", required_argument, NULL, OPT_DEVICES},
            {"vm-config", required_argument, NULL, OPT_VM_CONFIG},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        size_t nex = 0, nraw = 0;
        bool quiet = false, forced = false, raw_given = false;
        int c;

        s->exclude = calloc((size_t)argc + 1, sizeof(char *));
        s->allow = calloc((size_t)argc + 1, sizeof(char *));
        s->raw_globs = calloc((size_t)argc + 1, sizeof(char *));
        s->devices = calloc((size_t)argc + 1, sizeof(char *));
        s->vm_config = calloc((size_t)argc + 1, sizeof(char *));
        if (!s->exclude || !s->allow || !s->raw_globs || !s->devices || !s->vm_config)
                return usage_error("%s", "out of memory");
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":j:h", longopts, NULL)) != -1) {
                char *end;
                unsigned long v;

                switch (c) {
                case OPT_DB:
                        /* SQLite would take these for a database that vanishes on exit */
                        if (!*optarg || strcmp(optarg, ":memory:") == 0)
                                return usage_error("--db wants a database file, not '%s'", optarg);
                        s->db_path = optarg;
                        break;
                case 'j':
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || v < 1 || v > 1024)
                                return usage_error("-j wants a number of workers from 1 to "
                                                   "1024, not '%s'",
                                                   optarg);
                        s->nworkers = (unsigned)v;
                        break;
                case OPT_EXCLUDE:
                        s->exclude[nex++] = optarg;
                        break;
                case OPT_RAW_GLOB:
                        /* the first one replaces the defaults; an empty one means none */
                        raw_given = true;
                        if (*optarg)
                                s->raw_globs[nraw++] = optarg;
                        break;
                case OPT_ALLOW:
                        s->allow[s->nallow++] = optarg;
                        break;
                case OPT_DEVICES:
                        if (!*optarg)
                                return usage_error("%s", "--devices wants a glob of block devices");
                        s->devices[s->ndevices++] = optarg;
                        break;
                case OPT_VM_CONFIG:
                        s->vm_config[s->nvm_config++] = optarg;
                        break;
                case OPT_ONE_FS:
                        s->one_fs = true;
                        break;
                case OPT_NO_ARCHIVES:
                        s->no_archives = true;
                        break;
                case OPT_PROGRESS:
                        forced = true;
                        s->progress = 1;
                        break;
                case OPT_QUIET:
                        quiet = true;
                        s->progress = -1;
                        break;
                case OPT_JSON:
                        s->json = true;
                        break;
                case OPT_FULL:
                        s->full = true;
                        break;
                case OPT_BUDGET: {
                        double secs;

                        errno = 0;
                        secs = strtod(optarg, &end);
                        if (errno || end == optarg || *end || !(secs >= 0) || secs > 86400 * 365)
                                return usage_error("--budget wants seconds (0 for no limit), "
                                                   "not '%s'",
                                                   optarg);
                        s->budget_ns = (uint64_t)(secs * 1e9);
                        break;
                }
                case 'h':
                        fputs(ia_scan_usage, stdout);
                        return 0;
                case ':':
                        return usage_error("option '%s' needs a value", argv[optind - 1]);
                default:
                        return usage_error("unknown option '%s'", argv[optind - 1]);
                }
        }
        if (quiet && forced)
                return usage_error("%s", "--progress and --quiet contradict each other");
        if (optind >= argc && !s->ndevices)
                return usage_error("%s", "expects at least one ROOT to scan (or --devices)");
        if (!raw_given)
                for (size_t i = 0; ia_raw_globs_default[i]; i++)
                        s->raw_globs[nraw++] = ia_raw_globs_default[i];
        s->root_args = argv + optind;
        s->nroots = (size_t)(argc - optind);
        return -1;
}

/* seconds since t0 on the monotonic clock */
static double elapsed(const struct timespec *t0)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * The end of every scan: one line on stderr unless --quiet, and with --json
 * the same figures as one JSON object on stdout.
 */
static void summary(const struct scan *s, const struct ia_scan_stats *st, bool complete, int rc,
                    double secs)
{
        const char *status = complete ? "complete" : "aborted";

        if (s->progress >= 0)
                fprintf(stderr,
                        "imgaudit scan: scan %lld %s: %llu images, %llu files (%llu read, %llu "
                        "reused), %llu problems, %.1f s\n",
                        (long long)s->scan_id, status, (unsigned long long)st->images,
                        (unsigned long long)st->files_seen, (unsigned long long)st->files_read,
                        (unsigned long long)st->files_reused, (unsigned long long)st->problems,
                        secs);
        if (s->json)
                printf("{\"scan_id\": %lld, \"status\": \"%s\", \"exit_status\": %d, "
                       "\"images\": %llu, \"files\": %llu, \"files_read\": %llu, "
                       "\"files_reused\": %llu, \"layers_mapped\": %llu, \"map_rows\": %llu, "
                       "\"problems\": %llu, \"duration_seconds\": %.3f}\n",
                       (long long)s->scan_id, status, rc, (unsigned long long)st->images,
                       (unsigned long long)st->files_seen, (unsigned long long)st->files_read,
                       (unsigned long long)st->files_reused, (unsigned long long)st->layers_mapped,
                       (unsigned long long)st->map_rows, (unsigned long long)st->problems, secs);
}

/*
 * The candidates for a parent named by uuid: every walked file named *.vdi
 * (the index reads their headers once, when the first differencing VDI
 * asks).  A .vbox registry's entries would be registered before the workers
 * start (ia_parent_index_register()) and are preferred.
 */
static void fill_parent_index(struct ia_parent_index *ix, void *opaque)
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

/*
 * --devices: the block devices the globs name become files of the scan
 * (after the walk, which never opens one), read like the walk's files but
 * opened by ia_device_open(), never reused by an incremental scan.
 */
static void on_device(void *opaque, struct ia_walk_file *f)
{
        struct scan *s = opaque;
        size_t before = s->njobs;

        on_walk_file(s, f);
        if (s->njobs > before)
                s->jobs[s->njobs - 1].device = true;
}

static int add_devices(struct scan *s)
{
        if (!s->ndevices)
                return 0;
        return ia_devices_expand(s->devices, on_device, on_walk_entry, s);
}

static int run(struct scan *s)
{
        struct ia_lock lock = {.fd = -1, .path = NULL};
        struct ia_walk_opts wo;
        struct ia_hmap visited;
        struct ia_scan_stats stats;
        struct ia_error err;
        pthread_t *threads = NULL;
        unsigned started = 0;
        int dead = 0, rc = 3;
        bool complete = false;
        const char *abort_reason = NULL;
        size_t nallowed = 0, nopen = 0;
        struct timespec t0;
        char why[512];

        clock_gettime(CLOCK_MONOTONIC, &t0);
        ia_error_clear(&err);
        ia_hmap_init(&visited);
        ia_parent_index_init(&s->parents, fill_parent_index, s);
        memset(&stats, 0, sizeof(stats));

        s->roots = calloc(s->nroots + 1, sizeof(*s->roots));
        s->allowed = calloc(s->nroots + s->nallow + 1, sizeof(char *));
        if (!s->roots || !s->allowed) {
                ia_diag("imgaudit scan", "out of memory");
                return 3;
        }
        /* A root that cannot be opened is a problem of this scan; the others are scanned. */
        for (size_t i = 0; i < s->nroots; i++) {
                if (ia_walk_root_open(&s->roots[i], s->root_args[i], &err) < 0) {
                        if (err.cat == IA_ERR_NOMEM) {
                                fprintf(stderr, "imgaudit scan: out of memory\n");
                                rc = 3;
                                goto close_roots;
                        }
                        ia_diag("imgaudit scan", "%s", err.msg);
                        s->problems++;
                        pend(s, entry_rec(s->root_args[i], "unreadable",
                                          err.cat == IA_ERR_MISSING ? "missing"
                                          : err.errnum == EACCES    ? "permission"
                                                                    : "io",
                                          err.msg, 0));
                        continue;
                }
                nopen++;
                s->allowed[nallowed++] = s->roots[i].dirpath;
        }
        if (nopen == 0 && (s->nroots || !s->ndevices)) {
                fprintf(stderr, "imgaudit scan: no ROOT could be opened; nothing recorded\n");
                rc = 2;
                goto close_roots;
        }
        for (size_t i = 0; i < s->nallow; i++)
                s->allowed[nallowed++] = s->allow[i];
        if (ia_db_problem(s->db_path, true, why, sizeof(why))) {
                ia_diag("imgaudit scan", "database '%s': %s", s->db_path, why);
                goto close_roots;
        }

        if (ia_lock_take(&lock, s->db_path, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                goto close_roots;
        }
        s->db_path = lock.db; /* by its canonical name: one -wal, one -shm */
        if (ia_store_open(s->db_path, &s->store, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                goto unlock;
        }
        if (ia_store_mark_dead_scans(s->store, &dead, &err) < 0 ||
            ia_store_begin_scan(s->store, (const char *const *)s->root_args, s->nroots, s->allow,
                                s->nallow, &s->scan_id, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                goto close_store;
        }
        if (dead && s->progress >= 0)
                ia_diag("imgaudit scan", "marked %d unfinished earlier scan%s aborted", dead,
                        dead == 1 ? "" : "s");

        /* the walk */
        note_own_files(s);
        if (load_prev(s, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                abort_reason = err.msg;
                goto end_scan;
        }
        memset(&wo, 0, sizeof(wo));
        wo.exclude = s->exclude;
        wo.one_file_system = s->one_fs;
        wo.visited = &visited;
        {
                /* half the descriptors this process may open, for directories */
                struct rlimit rl;

                s->dirs.max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                                  ? (size_t)rl.rlim_cur / 2
                                  : 512;
        }
        wo.dirs = &s->dirs;
        for (size_t i = 0; i < s->nroots; i++)
                wo.remember_all_files |= s->roots[i].is_file;
        wo.on_file = on_walk_file;
        wo.on_entry = on_walk_entry;
        wo.on_dir = on_walk_dir;
        wo.opaque = s;
        for (size_t i = 0; i < s->nroots; i++) {
                if (s->roots[i].dirfd < 0)
                        continue;
                if (ia_walk(s->roots, i, &wo, &err) < 0) {
                        ia_diag("imgaudit scan", "%s", err.msg);
                        abort_reason = "out of memory walking";
                        goto end_scan;
                }
        }
        if (add_devices(s) < 0) {
                abort_reason = "out of memory listing the devices";
                goto end_scan;
        }
        if (plan(s, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                abort_reason = err.msg;
                goto end_scan;
        }

        vm_pass(s);

        /* the workers and the writer */
        {
                /* IMGAUDIT_TEST_LAYER_CAP: a smaller per-layer cap, for tests of live chains */
                const char *cap = getenv("IMGAUDIT_TEST_LAYER_CAP");

                s->cache = ia_layer_cache_new(
                    LAYER_CACHE_BUDGET, cap ? (size_t)strtoull(cap, NULL, 10) : LAYER_MAX_BYTES);
        }
        threads = calloc(s->nworkers, sizeof(*threads));
        if (!s->cache || !threads) {
                abort_reason = "out of memory";
                goto end_scan;
        }
        if (ia_store_writer_start(s->store, s->scan_id, QUEUE_CAP, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                abort_reason = err.msg;
                goto end_scan;
        }
        while (s->pending) {
                struct ia_rec *r = s->pending;

                s->pending = r->next;
                ia_store_put(s->store, r);
        }
        s->pending_tail = NULL;
        for (started = 0; started < s->nworkers; started++)
                if (pthread_create(&threads[started], NULL, worker_main, s) != 0)
                        break;
        if (started == 0)
                worker_main(s);
        while (s->progress >= 0 && (s->progress > 0 || isatty(STDERR_FILENO)) &&
               atomic_load(&s->jobs_done) < s->njobs) {
                progress(s, false);
                usleep(100000);
        }
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        settle_plain_files(s);
        flush(s);
        progress(s, true);
        if (ia_store_writer_stop(s->store, &stats.map_rows, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                abort_reason = err.msg;
                goto end_scan;
        }
        if (atomic_load(&s->nomem)) {
                abort_reason = "out of memory";
                goto end_scan;
        }
        if (ia_vmscan_store(&s->vms, s->store, s->scan_id, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                abort_reason = err.msg;
                goto end_scan;
        }
        complete = true;

end_scan:
        ia_store_writer_stop(s->store, NULL, NULL);
        stats.files_seen = s->njobs;
        stats.files_read = s->files_read;
        stats.files_reused = s->files_reused;
        stats.layers_mapped = s->layers_mapped;
        stats.images = s->images;
        stats.problems = s->problems;
        rc = complete ? (s->problems ? 1 : 0) : 3;
        if (ia_store_end_scan(s->store, s->scan_id, complete, abort_reason, rc, &stats, &err) < 0) {
                ia_diag("imgaudit scan", "%s", err.msg);
                rc = 3;
                complete = false;
        }
        summary(s, &stats, complete, rc, elapsed(&t0));
close_store:
        ia_store_close(s->store);
        s->store = NULL;
unlock:
        ia_lock_release(&lock);
close_roots:
        for (size_t i = 0; i < s->nroots; i++)
                ia_walk_root_close(&s->roots[i]);
        ia_walk_dirs_close(&s->dirs);
        ia_hmap_each(&visited, free_prev, NULL);
        ia_hmap_release(&visited);
        ia_parent_index_free(&s->parents);
        free(threads);
        return rc;
}

/* The CPUs this process may run on (taskset, cgroup cpusets), else those online. */
static long usable_cpus(void)
{
        cpu_set_t set;

        if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
                return CPU_COUNT(&set);
        return sysconf(_SC_NPROCESSORS_ONLN);
}

int ia_cmd_scan(int argc, char **argv)
{
        struct scan s;
        int rc;
        long ncpu;

        memset(&s, 0, sizeof(s));
        s.db_path = getenv("IMGAUDIT_DB");
        if (!s.db_path || !*s.db_path)
                s.db_path = "imgaudit.db";
        ncpu = usable_cpus();
        s.nworkers = ncpu > 0 ? (unsigned)ncpu : 1;
        s.budget_ns = 300ull * 1000000000u;
        pthread_mutex_init(&s.reg_lock, NULL);
        ia_hmap_init(&s.by_fid);
        ia_hmap_init(&s.findings);
        ia_hmap_init(&s.layer_ids);
        ia_hmap_init(&s.prev);
        rc = parse_args(&s, argc, argv);
        if (rc < 0)
                rc = run(&s);

        while (s.pending) {
                struct ia_rec *r = s.pending;

                s.pending = r->next;
                ia_rec_free(r);
        }
        for (size_t i = 0; i < s.njobs; i++) {
                free(s.jobs[i].wf.rel);
                free(s.jobs[i].wf.path);
                free(s.jobs[i].prev_images);
                if (s.jobs[i].reg) {
                        free(s.jobs[i].reg->path);
                        free(s.jobs[i].reg);
                }
        }
        for (size_t i = 0; i < s.nexternals; i++) {
                free(s.externals[i]->path);
                free(s.externals[i]);
        }
        free(s.externals);
        free(s.jobs);
        ia_hmap_release(&s.by_fid); /* values are the jobs' and externals' */
        ia_hmap_release(&s.findings);
        ia_hmap_release(&s.layer_ids);          /* values are ids */
        ia_hmap_each(&s.prev, free_prev, NULL); /* left by a scan that ended before its plan */
        ia_hmap_release(&s.prev);
        ia_layer_cache_free(s.cache);
        free(s.roots);
        free(s.allowed);
        free(s.exclude);
        free(s.raw_globs);
        free(s.vm_config);
        ia_vmscan_free(&s.vms);
        free(s.allow);
        free(s.devices);
        pthread_mutex_destroy(&s.reg_lock);
        return rc;
}
