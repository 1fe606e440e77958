/*
 * The scan's private header, shared by scanner/scan_*.c only: the structures
 * of one scan (its options, the registry of files, the jobs, an image job)
 * and the functions its files call across (prefixed scan_).
 */
#ifndef IA_SCAN_H
#define IA_SCAN_H

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
#include "scanner.h"
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

/*
 * `imgaudit scan`: crawl directories and archives, map every chain, store it.
 *
 * The flow of one scan:
 *   1. lock the database (lock.c), open it (schema/store_open.c: refuse
 *      damage, migrate),
 *      mark scans left 'running' by a dead process 'aborted', insert our own
 *      'running' scan row;
 *   2. walk every root (walk.c) into a list of regular files and a list of
 *      other entries;
 *   3. plan: a file whose identity (dev, ino, size, mtime, ctime) and path
 *      are those of the previous complete scan, and whose whole recorded
 *      chain is unchanged and was fine, is not read: its rows are copied in
 *      SQL (an IA_REC_REUSE record); an unchanged archive whose results only
 *      its bytes decide is carried over whole (plan_archives(); the
 *      previous scan is read through schema/store_plan.h);
 *   4. workers (-j) take files in turn: probe the head; an image is opened
 *      with its chain through the scan resolver (resolve.c), each layer is
 *      mapped once into the layer cache and the chain map composed
 *      (compose.c); an archive is opened with archives.c and its members
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

/* What a file of the scan turned out to be: its scan_files.kind (names in scan_kind_names). */
enum file_kind {
        FK_NONE, /* not decided yet */
        FK_IMAGE,
        FK_ARCHIVE,
        FK_NOT_AN_IMAGE,
        FK_DATA_FILE,       /* an image keeps its data (or an extent) in it */
        FK_ARCHIVE_SKIPPED, /* looks like an archive, not opened (--no-archives) */
        FK_EXTERNAL,        /* met as a reference beneath --allow-root, not walked */
        FK_UNREADABLE,      /* recorded as an unreadable entry, no scan_files row */
        FK_COUNT
};
extern const char *const scan_kind_names[FK_COUNT];

/* A regular file this scan knows: walked, or met as a reference. */
struct reg_file {
        int64_t id;
        char *path;
        bool walked;
        enum file_kind kind;      /* what the file turned out to be (FK_NONE: not decided yet) */
        enum file_kind prev_kind; /* its kind in the previous scan, when unchanged */
        bool skipped_archive;     /* looks like an archive, not opened (--no-archives) */
        bool bare_extent;         /* a VMDK sparse extent without a descriptor */
        atomic_bool raw_backing;  /* an image uses it as a backing file of a format given,
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
        /* the walk took no stat (wf.lazy when planned): the worker's open gives the
         * identity; until then wf.id and wf.lazy are read and written under reg_lock */
        bool lazy_open;
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
        /* images (and archives) mapped at once: nworkers, while the workers run (scan_map_begin) */
        pthread_mutex_t map_lock;
        pthread_cond_t map_cv;
        unsigned map_free;
        bool map_gated;
        /* the workers beyond -j, started on a run of cold files (scan_run.c: worker_main) */
        pthread_t *more;
        unsigned nmore, cap_more; /* written by the worker that starts them */
        atomic_bool cold;
        struct ia_hmap by_fid;   /* (dev, ino) -> struct reg_file * */
        struct ia_hmap findings; /* "file_id code msg" seen */
        struct reg_file **externals;
        size_t nexternals, cap_externals;
        atomic_int_fast64_t next_file_id, next_image_id, next_layer_id;
        /* "file_id format deps" -> layers.id: stored by this scan or an earlier one */
        struct ia_hmap layer_ids;

        struct job *jobs;
        struct reg_file *regs; /* the walked files' entries, one array (jobs[i].reg) */
        struct {
                uint64_t dev, ino;
        } own[4]; /* the database, its -wal, -shm and .lock files: not scanned */
        size_t nown;
        size_t njobs, cap_jobs;
        size_t nlazy; /* jobs whose identity is not known yet (under reg_lock) */
        atomic_size_t next_job, jobs_done;
        size_t window; /* files each worker may keep open waiting for their first bytes */

        struct ia_rec *pending, *pending_tail; /* records made before the writer starts */
        struct ia_parent_index parents;        /* parents named by uuid (differencing VDIs) */

        /* the previous complete scan's walked files, path -> struct prev_file (when reuse) */
        struct ia_hmap prev;
        bool reuse;

        atomic_uint_fast64_t files_read, files_reused, layers_mapped, images, problems;
        atomic_bool nomem; /* set by any worker */
};

struct prev_file {
        int64_t id;
        struct ia_identity ident;
        enum file_kind kind;
        struct job *job; /* the walked file at the same path, set by scan_plan() */
};

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
        int64_t image_id;
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

/* scan_run.c */
void scan_progress(struct scan *s, bool final);
void scan_summary(const struct scan *s, const struct ia_scan_stats *st, bool complete, int rc,
                  double secs);
int scan_run(struct scan *s);

/* scan_records.c */
char *scan_xstrdup(const char *s);
void scan_flush(struct scan *s);
void scan_put(struct scan *s, struct ia_rec *r);
void scan_pend(struct scan *s, struct ia_rec *r);
struct ia_rec *scan_entry_rec(const char *path, const char *kind, const char *reason,
                              const char *detail, int64_t file_id);
struct ia_rec *scan_file_rec(int64_t file_id, enum file_kind kind, bool reused);
char *scan_join3(const char *a, char sep, const char *b);
struct ia_rec *scan_chunk_rec(struct ia_rec **slot, enum ia_rec_type t, struct ia_error *err);
void scan_put_chunk(struct scan *s, struct ia_rec **slot);

/* scan_registry.c */
bool scan_same_identity(const struct ia_identity *a, const struct ia_identity *b);
bool scan_settled(const struct scan *s, const struct ia_identity *was);
bool scan_bare_vmdk_extent(const struct ia_driver *drv, const uint8_t *head, size_t hl);
void scan_note_own_files(struct scan *s);
void scan_on_walk_file(void *opaque, struct ia_walk_file *f);
void scan_on_walk_entry(void *opaque, const char *path, const char *kind, const char *reason,
                        const char *detail);
void scan_on_walk_dir(void *opaque, const char *path, uint64_t allocated);
bool scan_want_stat(void *opaque, const char *path, uint64_t d_ino);
int scan_resolve_links(struct scan *s, struct ia_hmap *visited);
/* A lazy job's identity taken now (reg_lock held once the workers run); 0, or -1. */
int scan_take_identity(struct scan *s, struct job *jb);
/* A lazy job's identity, taken by its open, made known (reg_lock held). */
void scan_publish_identity(struct scan *s, struct job *jb, const struct ia_identity *id);
/* The walked file of (dev, ino) reached by name, lazy ones included (reg_lock held). */
struct reg_file *scan_walked_locked(struct scan *s, const struct ia_fid_key *k, const char *name);
/* An external file's registry entry (its own copy of path). */
struct reg_file *scan_reg_new(int64_t id, const char *path);
/* A walked file's, in scan.regs: path is its job's wf.path, not copied. */
void scan_reg_init(struct reg_file *r, int64_t id, char *path);
struct reg_file *scan_reg_lookup(struct scan *s, const struct ia_file *f);

/* scan_image.c */
int64_t scan_file_ref(struct img_job *j, const struct ia_file *f, const char **path);
int64_t scan_file_id_cb(void *opaque, const struct ia_file *f);
void scan_image(struct scan *s, struct ia_source *top_src, const char *path, int64_t file_id,
                const char *fmt, const char *probed, struct arch_ctx *arch, const char *by);
void scan_fill_parent_index(struct ia_parent_index *ix, void *opaque);

/* scan_layers.c */
int scan_map_chain(struct img_job *j, struct ia_image *top, struct ia_error *err);

/* scan_members.c */
bool scan_probe_source(struct ia_source *src, const char *name, uint8_t *head, size_t *len,
                       const struct ia_driver **drv, struct ia_error *err);
const struct ia_driver *scan_probe_head(const struct ia_source *src, const char *name,
                                        const uint8_t *head, size_t len);
void scan_archive(struct scan *s, struct ia_source *src, const char *path, int64_t file_id,
                  bool *is_archive);

/* scan_files.c */
void scan_carry_image(struct scan *s, int64_t old_image_id);
struct ia_source *scan_open_unplanned(struct scan *s, struct job *jb);
struct ia_source *scan_open_job(struct scan *s, struct job *jb);
void scan_map_begin(struct scan *s);
void scan_map_end(struct scan *s);
struct ia_source *scan_begin(struct scan *s, struct job *jb);
void scan_finish(struct scan *s, struct job *jb, struct ia_source *src, uint8_t *head, size_t hl);
void scan_settle_plain_files(struct scan *s);
int scan_add_devices(struct scan *s);

/* scan_vms.c */
bool scan_in_nova_base(const char *path);
void scan_vm_raw_disk(struct scan *s, struct job *jb);
void scan_vm_pass(struct scan *s);

/* scan_plan.c */
void scan_free_prev(void *value, void *opaque);
int scan_load_prev(struct scan *s, struct ia_error *err);
int scan_plan(struct scan *s, struct ia_error *err);

#endif
