/* `imgaudit scan`'s command line: the usage text, the options, the entry point. */
#define _GNU_SOURCE /* before any system header */
#include "scan.h"
#include "path.h"
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
    "  -j, --jobs N         images mapped at once (default: the CPUs this process may\n"
    "                       use); as many workers probe files, twice as many cold\n"
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

static int usage_error(const char *fmt, const char *arg)
{
        return ia_usage_error("scan", 2, fmt, arg);
}

/* What parse_args counts and remembers while it reads the options. */
struct scan_argv {
        size_t nex, nraw;
        bool quiet, forced, raw_given;
        char **argv;
};

/* The value of -j N: 1 to 1024 images mapped at once (as many workers, twice as many cold). */
static int parse_jobs(struct scan *s, const char *arg)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(arg, &end, 10);
        if (errno || end == arg || *end || v < 1 || v > 1024)
                return usage_error("-j wants a number of workers from 1 to 1024, not '%s'", arg);
        s->nworkers = (unsigned)v;
        return -1;
}

/* The value of --budget SECONDS: 0 (no limit) to a year. */
static int parse_budget(struct scan *s, const char *arg)
{
        char *end;
        double secs;

        errno = 0;
        secs = strtod(arg, &end);
        if (errno || end == arg || *end || !(secs >= 0) || secs > 86400 * 365)
                return usage_error("--budget wants seconds (0 for no limit), not '%s'", arg);
        s->budget_ns = (uint64_t)(secs * 1e9);
        return -1;
}

/* One option c (its value in optarg): -1 to go on, else the exit status. */
static int scan_option(struct scan *s, int c, struct scan_argv *a)
{
        switch (c) {
        case OPT_DB:
                /* SQLite would take these for a database that vanishes on exit */
                if (!*optarg || strcmp(optarg, ":memory:") == 0)
                        return usage_error("--db wants a database file, not '%s'", optarg);
                s->db_path = optarg;
                break;
        case 'j':
                return parse_jobs(s, optarg);
        case OPT_EXCLUDE:
                s->exclude[a->nex++] = optarg;
                break;
        case OPT_RAW_GLOB:
                /* the first one replaces the defaults; an empty one means none */
                a->raw_given = true;
                if (*optarg)
                        s->raw_globs[a->nraw++] = optarg;
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
                a->forced = true;
                s->progress = 1;
                break;
        case OPT_QUIET:
                a->quiet = true;
                s->progress = -1;
                break;
        case OPT_JSON:
                s->json = true;
                break;
        case OPT_FULL:
                s->full = true;
                break;
        case OPT_BUDGET:
                return parse_budget(s, optarg);
        case 'h':
                fputs(ia_scan_usage, stdout);
                return 0;
        default:
                return ia_getopt_error("scan", 2, c, a->argv);
        }
        return -1;
}

/* Reads the command line into *s: -1 to go on and scan, else the exit status. */
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
        struct scan_argv a = {.argv = argv};
        int c, rc;

        s->exclude = calloc((size_t)argc + 1, sizeof(char *));
        s->allow = calloc((size_t)argc + 1, sizeof(char *));
        s->raw_globs = calloc((size_t)argc + 1, sizeof(char *));
        s->devices = calloc((size_t)argc + 1, sizeof(char *));
        s->vm_config = calloc((size_t)argc + 1, sizeof(char *));
        if (!s->exclude || !s->allow || !s->raw_globs || !s->devices || !s->vm_config)
                return usage_error("%s", "out of memory");
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":j:h", longopts, NULL)) != -1)
                if ((rc = scan_option(s, c, &a)) >= 0)
                        return rc;
        if (a.quiet && a.forced)
                return usage_error("%s", "--progress and --quiet contradict each other");
        if (optind >= argc && !s->ndevices)
                return usage_error("%s", "expects at least one ROOT to scan (or --devices)");
        if (!a.raw_given)
                for (size_t i = 0; ia_raw_globs_default[i]; i++)
                        s->raw_globs[a.nraw++] = ia_raw_globs_default[i];
        s->root_args = argv + optind;
        s->nroots = (size_t)(argc - optind);
        return -1;
}

/*
 * --exclude globs are matched on the name, the path below the ROOT and the
 * full path, which is absolute now: a relative glob holding a '/' (`--exclude
 * store/vms` with ROOT store) is also tried made absolute against the
 * current directory, so that it still names what it named when paths were
 * stored as typed.  The new array replaces s->exclude (freed by the caller,
 * as the old one was); the absolute globs are added to *owned.
 */
static int exclude_absolute(struct scan *s, char ***owned, size_t *nowned)
{
        size_t n = 0, k = 0;
        const char **ex;
        char **grown;

        while (s->exclude[n])
                n++;
        ex = calloc(2 * n + 1, sizeof(*ex));
        grown = realloc(*owned, (*nowned + n + 2) * sizeof(**owned));
        if (!ex || !grown) {
                free(ex);
                if (grown)
                        *owned = grown;
                return -1;
        }
        *owned = grown;
        for (size_t i = 0; i < n; i++) {
                const char *g = s->exclude[i];

                ex[k++] = g;
                if (g[0] != '/' && strchr(g, '/')) {
                        char *a = ia_path_lexical(g);

                        if (!a)
                                return -1;
                        (*owned)[(*nowned)++] = a;
                        ex[k++] = a;
                }
        }
        ex[k] = NULL;
        free(s->exclude);
        s->exclude = ex;
        return 0;
}

/*
 * Every path the scan is given, spelled one way (see README, "Paths"): the
 * ROOTs, --allow-root and --vm-config directories canonical (absolute,
 * symlinks in them followed, "." and ".." resolved, no trailing slash), as
 * realpath(3) gives them, or, where a path cannot be resolved (it does not
 * exist), its absolute textual form; --devices globs absolute and textually
 * normalised (a glob is not a path to resolve).  So `scan /srv/images`,
 * `scan /srv/images/`, `scan /srv/./images`, `scan images` from /srv and a
 * symlink to it store the same paths, and a rescan reuses them all.  The
 * strings made are added to *owned (freed by the caller).  0, or -1 (ENOMEM).
 */
static int canonical_args(struct scan *s, char ***owned, size_t *nowned)
{
        size_t n = s->nroots + s->nallow + s->nvm_config + s->ndevices;
        char **roots = calloc(s->nroots + 1, sizeof(*roots));

        *owned = calloc(n + 1, sizeof(**owned));
        *nowned = 0;
        if (!roots || !*owned) {
                free(roots);
                return -1;
        }
        (*owned)[(*nowned)++] = (char *)roots; /* the array itself */
        for (size_t i = 0; i < s->nroots; i++) {
                roots[i] = ia_path_canonical(s->root_args[i]);
                if (!roots[i])
                        return -1;
                (*owned)[(*nowned)++] = roots[i];
        }
        s->root_args = roots;
        for (size_t i = 0; i < s->nallow; i++) {
                char *c = ia_path_canonical(s->allow[i]);

                if (!c)
                        return -1;
                (*owned)[(*nowned)++] = c;
                s->allow[i] = c;
        }
        for (size_t i = 0; i < s->nvm_config; i++) {
                char *c = ia_path_canonical(s->vm_config[i]);

                if (!c)
                        return -1;
                (*owned)[(*nowned)++] = c;
                s->vm_config[i] = c;
        }
        for (size_t i = 0; i < s->ndevices; i++) {
                char *c = ia_path_lexical(s->devices[i]);

                if (!c)
                        return -1;
                (*owned)[(*nowned)++] = c;
                s->devices[i] = c;
        }
        return exclude_absolute(s, owned, nowned);
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
        char **owned = NULL;
        size_t nowned = 0;
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
        pthread_mutex_init(&s.map_lock, NULL);
        pthread_cond_init(&s.map_cv, NULL);
        ia_hmap_init(&s.by_fid);
        ia_hmap_init(&s.findings);
        ia_hmap_init(&s.layer_ids);
        ia_hmap_init(&s.prev);
        rc = parse_args(&s, argc, argv);
        if (rc < 0 && canonical_args(&s, &owned, &nowned) < 0) {
                fprintf(stderr, "imgaudit scan: out of memory\n");
                rc = 3;
        }
        if (rc < 0)
                rc = scan_run(&s);

        while (s.pending) {
                struct ia_rec *r = s.pending;

                s.pending = r->next;
                ia_rec_free(r);
        }
        for (size_t i = 0; i < s.njobs; i++) {
                free(s.jobs[i].wf.rel);
                free(s.jobs[i].wf.path);
                free(s.jobs[i].prev_images);
        }
        free(s.regs); /* the jobs' registry entries: their paths are the jobs' */
        for (size_t i = 0; i < s.nexternals; i++) {
                free(s.externals[i]->path);
                free(s.externals[i]);
        }
        free(s.externals);
        free(s.jobs);
        ia_hmap_release(&s.by_fid); /* values are the jobs' and externals' */
        ia_hmap_release(&s.findings);
        ia_hmap_release(&s.layer_ids);               /* values are ids */
        ia_hmap_each(&s.prev, scan_free_prev, NULL); /* left by a scan that ended before its plan */
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
        for (size_t i = 0; i < nowned; i++)
                free(owned[i]);
        free(owned);
        pthread_mutex_destroy(&s.reg_lock);
        pthread_mutex_destroy(&s.map_lock);
        pthread_cond_destroy(&s.map_cv);
        return rc;
}
