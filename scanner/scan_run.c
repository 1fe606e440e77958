/* One scan's life: lock, open, walk, plan, workers and writer, settle, summary. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include <malloc.h>
#include "banned.h"

#define LAYER_CACHE_BUDGET ((size_t)256 << 20)
#define LAYER_MAX_BYTES    ((size_t)64 << 20)
#define QUEUE_CAP          1024

/* A file opened whose first bytes were not in memory: probed later (worker_main). */
struct waiting {
        struct job *jb;
        struct ia_source *src;
};

#define READ_WINDOW 64 /* files a worker keeps waiting for their first bytes, at most */
#define COLD_MISSES 64 /* a worker's misses that start the workers beyond -j */

/*
 * A worker takes the jobs in turn.  Each file is opened and its first bytes
 * asked for without waiting (ia_read_nowait): in memory (a warm cache),
 * they are probed at once; else their read is started and the file waits
 * in the worker's window while the next ones are opened, and is probed
 * when the window is full or the jobs run out.  On a cold cache each small
 * file's first block is one random read: a window keeps up to
 * s->window of them in flight per worker, where reading and probing one
 * file after another kept one.
 */
static void *worker_main(void *arg);

/* The workers beyond -j, started by the first worker to meet a run of cold files (run_workers
 * joins them after the first ones). */
static void start_more_workers(struct scan *s)
{
        while (s->nmore < s->cap_more &&
               pthread_create(&s->more[s->nmore], NULL, worker_main, s) == 0)
                s->nmore++;
}

/* The job probed by head (hl bytes), or by what scan_finish reads when head is NULL; one job done.
 */
static void finish_job(struct scan *s, struct job *jb, struct ia_source *src, uint8_t *head,
                       size_t hl)
{
        scan_finish(s, jb, src, head, hl);
        s->jobs_done++;
}

static void *worker_main(void *arg)
{
        struct scan *s = arg;
        struct waiting win[READ_WINDOW];
        size_t first = 0, nwait = 0;
        unsigned misses = 0; /* files not in memory, less those in memory since */
        uint8_t head[IA_PROBE_HEAD];

        for (;;) {
                size_t i = atomic_fetch_add(&s->next_job, 1);
                struct job *jb;
                struct ia_source *src;
                struct ia_error err;
                int64_t hl;

                if (i >= s->njobs)
                        break;
                jb = &s->jobs[i];
                src = scan_begin(s, jb);
                if (!src) {
                        s->jobs_done++;
                        continue;
                }
                if (!s->window) {
                        finish_job(s, jb, src, NULL, 0); /* read as always */
                        continue;
                }
                ia_error_clear(&err);
                hl = ia_read_nowait(src, head, sizeof(head), 0, &err);
                if (hl >= 0) {
                        misses -= misses > 0;
                        finish_job(s, jb, src, head, (size_t)hl);
                        continue;
                }
                if (hl != IA_NOT_IN_MEMORY) {
                        finish_job(s, jb, src, NULL, 0); /* a read error: read again, reported */
                        continue;
                }
                /* cold: a run of files not in memory (even right after every file of a
                 * store was read, a few per cent were not in memory when the scan
                 * reached them: 6,216 of 200,020 here) */
                if (++misses == COLD_MISSES && !atomic_exchange(&s->cold, true))
                        start_more_workers(s);
                if (nwait == s->window) {
                        finish_job(s, win[first].jb, win[first].src, NULL, 0);
                        first = (first + 1) % READ_WINDOW;
                        nwait--;
                }
                win[(first + nwait) % READ_WINDOW] = (struct waiting){jb, src};
                nwait++;
        }
        for (; nwait; nwait--, first = (first + 1) % READ_WINDOW)
                finish_job(s, win[first].jb, win[first].src, NULL, 0);
        scan_flush(s);
        return NULL;
}

/*
 * Once a worker meets a run of files not in memory (a cold cache), twice as
 * many workers as images mapped at once (-j, the CPUs): a worker waiting
 * for a file's inode or first bytes leaves its CPU to another, and the
 * opens that block on inode reads are twice as many in flight (200,020
 * small files, cold: 4.9 s instead of 5.3 s).  Warm, the extra workers would
 * only trade mapping slots (2,020 small images: a tenth slower), so they
 * start when a worker has met COLD_MISSES more files not in memory than in
 * memory (start_more_workers).  The mapping itself, the CPU and memory of a
 * scan, stays at -j at once: scan_image() and scan_archive() take one of
 * nworkers slots.
 */
#define WORKERS_PER_SLOT 2

static _Thread_local unsigned map_depth; /* an archive's member images take no second slot */

void scan_map_begin(struct scan *s)
{
        if (map_depth++ > 0 || !s->map_gated)
                return;
        pthread_mutex_lock(&s->map_lock);
        while (s->map_free == 0)
                pthread_cond_wait(&s->map_cv, &s->map_lock);
        s->map_free--;
        pthread_mutex_unlock(&s->map_lock);
}

void scan_map_end(struct scan *s)
{
        if (--map_depth > 0 || !s->map_gated)
                return;
        pthread_mutex_lock(&s->map_lock);
        s->map_free++;
        pthread_cond_signal(&s->map_cv);
        pthread_mutex_unlock(&s->map_lock);
}

#define FD_RESERVE 64    /* descriptors for the database's files, stdio and the libraries */
#define FD_WANTED  65536 /* the soft limit asked for, when the hard one allows */

/* The descriptors this process may open (its soft limit). */
static size_t fd_limit(void)
{
        struct rlimit rl;

        return getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (size_t)rl.rlim_cur
                   : 1024;
}

/*
 * The soft limit on descriptors raised towards the hard one, up to
 * FD_WANTED: the walk keeps a descriptor for each directory and every
 * worker a window of files, and under a small soft limit the walk ran out
 * and recorded directories as unreadable ("Too many open files").  Nothing
 * here uses select(), so descriptors past 1,023 are safe.
 */
static void raise_fd_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
            rl.rlim_cur >= FD_WANTED)
                return;
        rl.rlim_cur =
            rl.rlim_max == RLIM_INFINITY || rl.rlim_max > FD_WANTED ? FD_WANTED : rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * The window of each worker (worker_main), from the descriptors this
 * process may open: those the walk kept for directories and FD_RESERVE
 * set aside, half of the rest shared by the windows (the other half for
 * the files each image opens, its backing chain), at most READ_WINDOW
 * each, none when nothing is left.  (Taking the jobs by inode number instead
 * of as walked was measured too: on ext4 the data blocks of small files are
 * not in inode order, and it lost a fifth warm and a tenth cold.)
 */
static void plan_reads(struct scan *s, unsigned nworkers)
{
        size_t lim = fd_limit();
        size_t used = s->dirs.n + FD_RESERVE;
        size_t spare = lim > used ? (lim - used) / 2 : 0;

        s->window = nworkers ? spare / nworkers : 0;
        if (s->window > READ_WINDOW)
                s->window = READ_WINDOW;
}

/* ---- the command ---- */

void scan_progress(struct scan *s, bool final)
{
        if (s->progress < 0 || (s->progress == 0 && !isatty(STDERR_FILENO)))
                return;
        fprintf(stderr, "\rimgaudit scan: %zu/%zu files, %llu images%s",
                (size_t)atomic_load(&s->jobs_done), s->njobs,
                (unsigned long long)atomic_load(&s->images), final ? "\n" : "");
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
void scan_summary(const struct scan *s, const struct ia_scan_stats *st, bool complete, int rc,
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
 * Open every root; a root that cannot be opened is a problem of this scan and
 * the others are scanned.  The allowed roots for references are the opened
 * ones and --allow-root's.  0, or the exit status to stop with.
 */
static int open_roots(struct scan *s)
{
        size_t nallowed = 0, nopen = 0;
        struct ia_error err;

        ia_error_clear(&err);
        for (size_t i = 0; i < s->nroots; i++) {
                if (ia_walk_root_open(&s->roots[i], s->root_args[i], &err) < 0) {
                        if (err.cat == IA_ERR_NOMEM) {
                                fprintf(stderr, "imgaudit scan: out of memory\n");
                                return 3;
                        }
                        ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                        s->problems++;
                        scan_pend(s, scan_entry_rec(s->root_args[i], "unreadable",
                                                    err.cat == IA_ERR_MISSING ? "missing"
                                                    : err.errnum == EACCES    ? "permission"
                                                                              : "io",
                                                    ia_error_msg(&err), 0));
                        continue;
                }
                nopen++;
                s->allowed[nallowed++] = s->roots[i].dirpath;
        }
        if (nopen == 0 && (s->nroots || !s->ndevices)) {
                fprintf(stderr, "imgaudit scan: no ROOT could be opened; nothing recorded\n");
                return 2;
        }
        for (size_t i = 0; i < s->nallow; i++)
                s->allowed[nallowed++] = s->allow[i];
        return 0;
}

/* Walk every opened root into the jobs, then add the devices asked for.  NULL, or why not. */
static const char *walk_roots(struct scan *s, struct ia_hmap *visited, struct ia_error *err)
{
        struct ia_walk_opts wo;
        size_t lim = fd_limit();

        memset(&wo, 0, sizeof(wo));
        wo.exclude = s->exclude;
        wo.one_file_system = s->one_fs;
        wo.visited = visited;
        /*
         * Half the descriptors this process may open beyond FD_RESERVE, for
         * directories (files in the others are opened by their path beneath
         * the root); the other half for the walk's own nesting, then the
         * workers.
         */
        s->dirs.max = lim > FD_RESERVE ? (lim - FD_RESERVE) / 2 : 0;
        wo.dirs = &s->dirs;
        for (size_t i = 0; i < s->nroots; i++)
                wo.remember_all_files |= s->roots[i].is_file;
        wo.on_file = scan_on_walk_file;
        wo.on_entry = scan_on_walk_entry;
        wo.on_dir = scan_on_walk_dir;
        wo.want_stat = scan_want_stat;
        wo.opaque = s;
        for (size_t i = 0; i < s->nroots; i++) {
                if (s->roots[i].dirfd < 0)
                        continue;
                if (ia_walk(s->roots, i, &wo, err) < 0) {
                        ia_diag("imgaudit scan", "%s", ia_error_msg(err));
                        return "out of memory walking";
                }
        }
        if (scan_resolve_links(s, visited) < 0)
                return "out of memory walking";
        if (scan_add_devices(s) < 0)
                return "out of memory listing the devices";
        return NULL;
}

/*
 * The workers and the one writer: the records made so far go first, the
 * workers take the jobs in turn, then the files no driver recognised are
 * settled and the writer drains.  NULL, or why the scan is aborted.
 */
static const char *run_workers(struct scan *s, struct ia_scan_stats *stats, struct ia_error *err)
{
        /* IMGAUDIT_TEST_LAYER_CAP: a smaller per-layer cap, for tests of live chains */
        const char *cap = getenv("IMGAUDIT_TEST_LAYER_CAP");
        unsigned nthreads = s->nworkers * WORKERS_PER_SLOT;
        pthread_t *threads = calloc(nthreads, sizeof(*threads));
        unsigned started;

        s->cache = ia_layer_cache_new(LAYER_CACHE_BUDGET,
                                      cap ? (size_t)strtoull(cap, NULL, 10) : LAYER_MAX_BYTES);
        if (!s->cache || !threads) {
                free(threads);
                return "out of memory";
        }
        if (ia_store_writer_start(s->store, s->scan_id, QUEUE_CAP, err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(err));
                free(threads);
                return ia_error_msg(err);
        }
        while (s->pending) {
                struct ia_rec *r = s->pending;

                s->pending = r->next;
                ia_store_put(s->store, r);
        }
        s->pending_tail = NULL;
        plan_reads(s, nthreads);
        s->map_free = s->nworkers;
        s->map_gated = true;
        s->more = threads + s->nworkers;
        s->cap_more = nthreads - s->nworkers;
        s->nmore = 0;
        for (started = 0; started < s->nworkers; started++)
                if (pthread_create(&threads[started], NULL, worker_main, s) != 0)
                        break;
        if (started == 0)
                worker_main(s);
        while (s->progress >= 0 && (s->progress > 0 || isatty(STDERR_FILENO)) &&
               atomic_load(&s->jobs_done) < s->njobs) {
                scan_progress(s, false);
                usleep(100000);
        }
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        for (unsigned i = 0; i < s->nmore; i++) /* started by the workers just joined */
                pthread_join(s->more[i], NULL);
        free(threads);
        s->map_gated = false; /* the settling after the join maps alone */
        scan_settle_plain_files(s);
        scan_flush(s);
        scan_progress(s, true);
        if (ia_store_writer_stop(s->store, &stats->map_rows, err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(err));
                return ia_error_msg(err);
        }
        if (atomic_load(&s->nomem))
                return "out of memory";
        if (ia_vmscan_store(&s->vms, s->store, s->scan_id, err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(err));
                return ia_error_msg(err);
        }
        return NULL;
}

int scan_run(struct scan *s)
{
        struct ia_lock lock = {.fd = -1, .path = NULL};
        struct ia_hmap visited;
        struct ia_scan_stats stats;
        struct ia_error err;
        int dead = 0, rc = 3;
        bool complete = false;
        const char *abort_reason = NULL;
        struct timespec t0;
        char why[512];

        clock_gettime(CLOCK_MONOTONIC, &t0);
        /*
         * Every image open mallocs and frees its header cluster (64 KiB) and
         * L2 slice in a worker's arena; with glibc's default trim threshold
         * (128 KiB) such a free gives the arena's top back with madvise()
         * and the next image faults the pages in again: a TLB shootdown on
         * every CPU of the process and 16 page faults per image (on 2,020
         * small images: 1,800 madvise calls, twice the page faults, a tenth
         * of the cycles).  Keep up to 16 MiB of free top per arena instead.
         * (This also fixes the mmap threshold at its default, 128 KiB.)
         */
        mallopt(M_TRIM_THRESHOLD, 16 << 20);
        ia_error_clear(&err);
        ia_hmap_init(&visited);
        ia_parent_index_init(&s->parents, scan_fill_parent_index, s);
        memset(&stats, 0, sizeof(stats));

        s->roots = calloc(s->nroots + 1, sizeof(*s->roots));
        s->allowed = calloc(s->nroots + s->nallow + 1, sizeof(char *));
        if (!s->roots || !s->allowed) {
                ia_diag("imgaudit scan", "out of memory");
                return 3;
        }
        raise_fd_limit();
        rc = open_roots(s);
        if (rc != 0)
                goto close_roots;
        rc = 3;
        if (ia_db_problem(s->db_path, true, why, sizeof(why))) {
                ia_diag("imgaudit scan", "database '%s': %s", s->db_path, why);
                goto close_roots;
        }

        if (ia_lock_take(&lock, s->db_path, &err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                goto close_roots;
        }
        s->db_path = lock.db; /* by its canonical name: one -wal, one -shm */
        if (ia_store_open(s->db_path, &s->store, &err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                goto unlock;
        }
        if (ia_store_mark_dead_scans(s->store, &dead, &err) < 0 ||
            ia_store_begin_scan(s->store, (const char *const *)s->root_args, s->nroots, s->allow,
                                s->nallow, &s->scan_id, &err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                goto close_store;
        }
        if (dead && s->progress >= 0)
                ia_diag("imgaudit scan", "marked %d unfinished earlier scan%s aborted", dead,
                        dead == 1 ? "" : "s");

        scan_note_own_files(s);
        if (scan_load_prev(s, &err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                abort_reason = ia_error_msg(&err);
                goto end_scan;
        }
        abort_reason = walk_roots(s, &visited, &err);
        if (abort_reason)
                goto end_scan;
        if (scan_plan(s, &err) < 0) {
                ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                abort_reason = ia_error_msg(&err);
                goto end_scan;
        }
        scan_vm_pass(s);
        abort_reason = run_workers(s, &stats, &err);
        complete = !abort_reason;

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
                ia_diag("imgaudit scan", "%s", ia_error_msg(&err));
                rc = 3;
                complete = false;
        }
        scan_summary(s, &stats, complete, rc, elapsed(&t0));
close_store:
        ia_store_close(s->store);
        s->store = NULL;
unlock:
        ia_lock_release(&lock);
close_roots:
        for (size_t i = 0; i < s->nroots; i++)
                ia_walk_root_close(&s->roots[i]);
        ia_walk_dirs_close(&s->dirs);
        ia_hmap_each(&visited, scan_free_prev, NULL);
        ia_hmap_release(&visited);
        ia_parent_index_free(&s->parents);
        return rc;
}
