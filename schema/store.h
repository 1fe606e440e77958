/*
 * The scan database: opening (refusing what is not ours or is damaged),
 * migrations, the scan row's life cycle, and the one writer thread.
 *
 * SQLite in WAL mode.  Exactly one thread writes: workers hand results over a
 * bounded queue as records (struct ia_rec) and the writer turns them into
 * prepared-statement executions, batched into transactions.  A scan's rows
 * are written while its scans row says 'running'; the views only show the
 * latest 'complete' scan, so readers never see a half scan, and a scan killed
 * mid-way stays 'running' until the next run (holding the lock) marks it
 * 'aborted'.  Schema: schema/ (embedded, applied in order, PRAGMA
 * user_version), documented in schema/README.md.
 *
 * No SQLite here: the layers above the store ask it typed questions
 * (store_plan.h, store_prune.h, store_vms.h) and never issue SQL through
 * it; the store's own files and the tests reach SQLite through store_sql.h.
 */
#ifndef IA_STORE_H
#define IA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* One BlockDeviceMapEntry as stored. */
struct ia_map_row {
        uint64_t start, length, offset;
        int64_t file_id; /* the file offset points into; 0 when there is no offset */
        uint32_t depth;
        uint8_t present, zero, data, compressed, has_offset;
        uint8_t unknown; /* behind a backing file that could not be opened: zero, data unknown */
};

/* How an image's virtual size splits (schema/README.md, images). */
struct ia_space {
        uint64_t own_data;     /* depth 0, data */
        uint64_t backing_data; /* depth > 0, data */
        uint64_t zero;         /* not data, present */
        uint64_t unallocated;  /* not data, not present: zero through the whole chain */
        uint64_t compressed;   /* data stored compressed, any depth */
        uint64_t unknown;      /* behind a backing file that could not be opened */
        uint64_t mapped;       /* every byte the map covers */
};

/* One stored piece of an image's map (struct ia_piece with its layer's store id). */
struct ia_piece_row {
        uint64_t start, len;
        int64_t layer_id; /* 0: none (kinds end and unknown) */
        uint32_t depth;
        const char *kind; /* static: "layer", "end", "unknown" */
};

/* What an image reads from the layer at one depth of its chain. */
struct ia_chain_row {
        int64_t file_id, layer_id; /* 0: none */
        uint64_t data, zero;
        uint32_t depth;
};

enum ia_rec_type {
        IA_REC_FILE,      /* a new files row (identity dictionary) */
        IA_REC_SCAN_FILE, /* this scan saw files row file_id as kind */
        IA_REC_ENTRY,     /* a non-image entry */
        IA_REC_IMAGE,
        IA_REC_LINK,
        IA_REC_FINDING,
        IA_REC_OVF,
        IA_REC_LAYER,         /* a layers row */
        IA_REC_RUNS,          /* a chunk of the runs of one layer (map rows without depth) */
        IA_REC_PIECES,        /* a chunk of the pieces of one image */
        IA_REC_CHAIN,         /* the chain_layers rows of one image */
        IA_REC_REUSE,         /* copy an image of an earlier scan with its map, links, findings */
        IA_REC_REUSE_MEMBERS, /* copy the non-image rows of unchanged archives' members */
};

#define IA_MAP_CHUNK 512

/* A record for the writer.  Every char * is owned by the record (freed with it), but
 * a file's path marked path_borrowed. */
struct ia_rec {
        enum ia_rec_type type;
        struct ia_rec *next;
        union {
                struct {
                        int64_t id, archive_id; /* archive_id 0: none */
                        char *path, *member;
                        bool path_borrowed; /* path is not the record's: it outlives it */
                        bool has_identity;
                        uint64_t dev, ino, size, allocated;
                        int64_t mtime_ns, ctime_ns;
                } file;
                struct {
                        int64_t file_id;
                        const char *kind; /* static */
                        bool reused;
                } scan_file;
                struct {
                        char *path, *reason, *detail;
                        const char *kind;   /* static */
                        int64_t file_id;    /* 0: none */
                        uint64_t allocated; /* kind "directory" (a dirs row): its blocks */
                } entry;
                struct {
                        int64_t id, file_id;
                        char *format, *backing, *backing_fmt, *status, *error;
                        bool probed, has_vsize;
                        uint64_t virtual_size, file_size, allocated;
                        uint32_t cluster_size;
                        unsigned flags; /* IA_IMG_* */
                        unsigned chain_depth;
                        const char *recognised_by; /* static: content, name, reference, ... */
                        bool has_space; /* mapped (maybe part-way): sp and map_rows are set */
                        struct ia_space sp;
                        uint64_t map_rows;
                } image;
                struct {
                        int64_t id, file_id;
                        const char *kind; /* static: "layer" or "rows" */
                        char *format, *deps;
                        uint64_t size, runs;
                } layer;
                struct {
                        int64_t layer_id;
                        size_t n, cap;
                        struct ia_map_row *rows; /* cap (at most IA_MAP_CHUNK) of them, owned */
                } runs;
                struct {
                        int64_t image_id;
                        size_t n, cap;
                        struct ia_piece_row *pieces; /* cap (at most IA_MAP_CHUNK), owned */
                } pieces;
                struct {
                        int64_t image_id;
                        size_t n;
                        struct ia_chain_row *rows; /* owned */
                } chain;
                struct {
                        int64_t image_id, from_file_id, target_file_id; /* 0: none */
                        int depth;
                        const char *kind; /* static */
                        char *name, *target_path, *status, *error;
                } link;
                struct {
                        int64_t image_id, file_id; /* 0: none */
                        char *code, *message;
                } finding;
                struct {
                        int64_t archive_file_id, member_file_id;
                        char *disk_id, *href, *format;
                        uint64_t capacity;
                } ovf;
                struct {
                        int64_t old_image_id, new_image_id;
                } reuse;
                /*
                 * Carry files (unchanged archives, their members, nested archives) over
                 * from scan prev_scan_id: their scan_files, entries, archive findings
                 * (image_id NULL) and ovf_disks rows; images go through IA_REC_REUSE.
                 */
                struct {
                        int64_t prev_scan_id;
                        int64_t *file_ids; /* owned */
                        size_t n;
                } reuse_members;
        } u;
};

/* A zeroed record of that type; NULL on ENOMEM.  Chunks (runs, pieces) hold IA_MAP_CHUNK. */
struct ia_rec *ia_rec_new(enum ia_rec_type type);
/* A chunk record (IA_REC_RUNS, IA_REC_PIECES) with room for cap entries (1..IA_MAP_CHUNK). */
struct ia_rec *ia_rec_new_chunk(enum ia_rec_type type, size_t cap);
/* Room for one more entry in chunk r, growing it up to IA_MAP_CHUNK; false if full or ENOMEM. */
bool ia_rec_chunk_room(struct ia_rec *r);
void ia_rec_free(struct ia_rec *r); /* NULL-safe */

/* Counters the scan row keeps. */
struct ia_scan_stats {
        uint64_t files_seen, files_read, files_reused, layers_mapped, images, map_rows, problems;
};

struct ia_store;

/*
 * Open (creating if needed) the database at path, refusing a file that is not
 * an SQLite database, is damaged, belongs to another application or has a
 * newer schema (IA_ERR_CORRUPT / IA_ERR_UNSUPPORTED; nothing is written), then
 * switch to WAL and apply the missing migrations.
 */
int ia_store_open(const char *path, struct ia_store **out, struct ia_error *err);
/* Checkpoint the WAL (truncate) and close; NULL-safe. */
void ia_store_close(struct ia_store *s);

/* Mark every 'running' scan aborted (call with the lock held); the count in *n. */
int ia_store_mark_dead_scans(struct ia_store *s, int *n, struct ia_error *err);
/* Insert and commit a 'running' scan row with its roots; its id in *scan_id. */
int ia_store_begin_scan(struct ia_store *s, const char *const *roots, size_t nroots,
                        const char *const *allow, size_t nallow, int64_t *scan_id,
                        struct ia_error *err);
/* Make the scan the latest complete one (or aborted, with reason), with its counters. */
int ia_store_end_scan(struct ia_store *s, int64_t scan_id, bool complete, const char *reason,
                      int exit_status, const struct ia_scan_stats *st, struct ia_error *err);
/* The highest id used in files, images and layers, for allocating new ids. */
int ia_store_max_ids(struct ia_store *s, int64_t *file_id, int64_t *image_id, int64_t *layer_id,
                     struct ia_error *err);

/* Start the writer thread for scan_id with a queue of at most cap records. */
int ia_store_writer_start(struct ia_store *s, int64_t scan_id, size_t cap, struct ia_error *err);
/*
 * Hand a record to the writer (blocks while the queue is full); the writer
 * owns it from here.  After a writer failure records are dropped; 0 or -1.
 */
int ia_store_put(struct ia_store *s, struct ia_rec *r);
/* The same for a list of records linked through next (one lock round-trip). */
int ia_store_put_list(struct ia_store *s, struct ia_rec *head);
/* Drain the queue, commit, stop the thread; the writer's error, if any.  Map rows in *map_rows. */
int ia_store_writer_stop(struct ia_store *s, uint64_t *map_rows, struct ia_error *err);

/* Is [s, s+n) valid UTF-8? */
bool ia_utf8_valid(const char *s, size_t n);

#endif
