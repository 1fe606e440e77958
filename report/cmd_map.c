/*
 * `imgaudit map`: the allocation map of one image through its backing chain,
 * printed exactly as `qemu-img map` prints it (see README, "Differences from
 * qemu-img", for where and why we deliberately print more).
 *
 * Command-line compatible with qemu-img map: -f, --output, -s/--start-offset,
 * -l/--max-length (qemu's size syntax), -U (accepted; we never lock), options
 * after the file name.  --qemu-compat=VERSION picks the output layout and the
 * version-dependent rules of that qemu release.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "cli.h"
#include "report.h"
#include "escape.h"
#include "map.h"
#include "mapout.h"
#include "out.h"
#include "size.h"
#include "banned.h"

const char ia_map_usage[] =
    "usage: imgaudit map [-f FMT] [--output=human|json] [-s|--start-offset=N]\n"
    "                    [-l|--max-length=N] [-U] [--qemu-compat=VERSION] [--true-map] FILE\n"
    "\n"
    "Print the allocation map of FILE through its whole backing chain, with the\n"
    "semantics and the output of `qemu-img map`.\n"
    "\n"
    "  -f, --format=FMT       the format of FILE (default: recognised by content);\n"
    "                         backing formats come from the headers\n"
    "      --output=FMT       human (default) or json\n"
    "  -s, --start-offset=N   first guest byte to map (sizes as qemu: 4096, 4k, 1.5M, 0x1000)\n"
    "  -l, --max-length=N     map at most N bytes\n"
    "  -U, --force-share      accepted for compatibility; imgaudit never takes locks\n"
    "      --qemu-compat=V    print the layout of qemu-img V (e.g. 7.2: no \"compressed\"\n"
    "                         key before 8.2); 7.2 or later, default 10.2\n"
    "      --true-map         where qemu-img prints one data entry for a whole disk\n"
    "                         whose format records more (dmg, bochs, cloop), print\n"
    "                         what it records\n"
    "      --allow-root=DIR   confine every file the image refers to (backing files,\n"
    "                         data files, extents) beneath DIR, symlinks included;\n"
    "                         may be repeated (default: no confinement, as qemu-img)\n"
    "\n"
    "Exit status: 0 on success, 1 on any error.\n";

static int parse_compat(const char *s, unsigned *out)
{
        unsigned long major, minor = 0;
        char *end;

        errno = 0;
        major = strtoul(s, &end, 10);
        if (end == s || errno)
                return -1;
        if (*end == '.') {
                const char *m = end + 1;
                minor = strtoul(m, &end, 10);
                if (end == m || errno || minor > 99)
                        return -1;
                if (*end == '.') {
                        m = end + 1;
                        (void)strtoul(m, &end, 10);
                        if (end == m)
                                return -1;
                }
        }
        if (*end || major < 1 || major > 99)
                return -1;
        *out = (unsigned)(major * 100 + minor);
        return 0;
}

/*
 * qemu-img reads the image name as a protocol name when a ':' comes before
 * any '/'.  "file:PATH" is the plain file PATH (shown as "./PATH" when PATH
 * itself looks like a protocol name, as qemu shows it); "json:" names and
 * every other protocol are refused (qemu-img fails on unknown protocols and
 * would connect to network ones).  Sets *path (malloc'd) or prints why not.
 */
static int top_path(const char *name, char **path)
{
        const char *p = name;
        size_t len;

        if (strncmp(name, "json:", 5) == 0) {
                ia_diag("imgaudit map",
                        "'%s': json: image names are not supported; imgaudit maps "
                        "plain files",
                        name);
                return -1;
        }
        if (ia_name_is_protocol(name)) {
                if (strncmp(name, "file:", 5) != 0) {
                        ia_diag("imgaudit map",
                                "'%s' names the protocol '%.*s'; imgaudit maps plain "
                                "files (write ./%s for a file of that name)",
                                name, (int)strcspn(name, ":"), name, name);
                        return -1;
                }
                p = name + 5;
                if (!*p) {
                        ia_diag("imgaudit map", "'%s' names no file", name);
                        return -1;
                }
        }
        len = strlen(p) + 3;
        *path = malloc(len);
        if (!*path) {
                ia_diag("imgaudit map", "out of memory");
                return -1;
        }
        snprintf(*path, len, "%s%s", p != name && ia_name_is_protocol(p) ? "./" : "", p);
        return 0;
}

static int parse_offset(const char *what, const char *arg, uint64_t *v)
{
        bool hex_suffix;
        int r = ia_parse_size(arg, v, &hex_suffix);

        if (r == 0 && *v > (uint64_t)INT64_MAX)
                r = -ERANGE;
        if (r == -ERANGE)
                return ia_usage_error("map", -1, "%s '%s' is out of range (0 to %lld)", what, arg,
                                      (long long)INT64_MAX);
        if (r < 0)
                return ia_usage_error("map", -1,
                                      "%s '%s' is not a size (a number with an optional k, M, G, "
                                      "T, P or E suffix, or 0x hex)",
                                      what, arg);
        if (hex_suffix)
                ia_diag("imgaudit map", "warning: a suffix on a hex number is deprecated: %s", arg);
        return 0;
}

static void print_finding(void *opaque, const struct ia_image *img, const char *code,
                          const char *msg)
{
        /* Names in the message are bytes of the store: ia_diag() escapes the message as
         * the report escapes names, so a newline cannot forge a line and no escape
         * sequence reaches the terminal. */
        (void)opaque;
        ia_diag("imgaudit map", "warning: '%s': %s [%s]", img->file->name, msg, code);
}

enum { OPT_OUTPUT = 256, OPT_COMPAT, OPT_IMAGE_OPTS, OPT_OBJECT, OPT_ALLOW_ROOT, OPT_TRUE_MAP };

#define MAX_ROOTS 64

/*
 * imgaudit map.  Longer than the other commands' entry points (about 140
 * lines) for a reason: qemu-img's option semantics are order-dependent (the
 * last --output wins before 10.1, the first bad one from 10.1 on, --qemu-compat
 * decides both), so the option loop and the checks that follow it read best
 * as one piece; opening and mapping are two calls after it.
 */
int ia_cmd_map(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"format", required_argument, NULL, 'f'},
            {"output", required_argument, NULL, OPT_OUTPUT},
            {"start-offset", required_argument, NULL, 's'},
            {"max-length", required_argument, NULL, 'l'},
            {"force-share", no_argument, NULL, 'U'},
            {"qemu-compat", required_argument, NULL, OPT_COMPAT},
            {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
            {"object", required_argument, NULL, OPT_OBJECT},
            {"allow-root", required_argument, NULL, OPT_ALLOW_ROOT},
            {"true-map", no_argument, NULL, OPT_TRUE_MAP},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        struct ia_map_opts mopts = {.start = 0, .max_len = IA_MAP_NO_MAX, .flags = 0};
        const char *fmt = NULL, *output = "human", *bad_output = NULL;
        struct ia_fs_policy policy = {.roots = NULL, .data_file_cwd = true};
        const char *roots[MAX_ROOTS + 1];
        size_t nroots = 0;
        struct ia_resolver resolver;
        struct ia_open_ctx ctx = {.compat = IA_DEFAULT_COMPAT, .on_finding = print_finding};
        static struct ia_out out;
        struct ia_mapout mo;
        struct ia_image *top = NULL;
        struct ia_error err;
        char *path = NULL;
        int c, rc = 1;

        ia_error_clear(&err);
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":f:hs:l:U", longopts, NULL)) != -1) {
                switch (c) {
                case 'f':
                        fmt = optarg;
                        break;
                case 'h':
                        fputs(ia_map_usage, stdout);
                        return 0;
                case 's':
                        if (parse_offset("start offset", optarg, &mopts.start) < 0)
                                return 1;
                        break;
                case 'l':
                        if (parse_offset("max length", optarg, &mopts.max_len) < 0)
                                return 1;
                        break;
                case 'U':
                        break;
                case OPT_OUTPUT:
                        output = optarg;
                        if (!bad_output && strcmp(optarg, "json") != 0 &&
                            strcmp(optarg, "human") != 0)
                                bad_output = optarg;
                        break;
                case OPT_COMPAT:
                        if (parse_compat(optarg, &ctx.compat) < 0)
                                return ia_usage_error("map", 1,
                                                      "--qemu-compat wants a qemu version such as "
                                                      "7.2 or 10.2, not '%s'",
                                                      optarg);
                        /* Older releases print other layouts (no "present" key before
                         * 6.1): refuse them rather than print a layout they never had. */
                        if (ctx.compat < IA_QEMU_7_2)
                                return ia_usage_error("map", 1,
                                                      "--qemu-compat=%s: only qemu 7.2 and later "
                                                      "are imitated",
                                                      optarg);
                        break;
                case OPT_ALLOW_ROOT:
                        if (nroots == MAX_ROOTS)
                                return ia_usage_error("map", 1, "at most %d --allow-root options",
                                                      MAX_ROOTS);
                        roots[nroots++] = optarg;
                        break;
                case OPT_TRUE_MAP:
                        ctx.true_map = true;
                        break;
                case OPT_IMAGE_OPTS:
                case OPT_OBJECT:
                        return ia_usage_error("map", 1,
                                              "%s is not supported: imgaudit maps plain files "
                                              "and never needs a key",
                                              argv[optind - 1]);
                default:
                        return ia_getopt_error("map", 1, c, argv);
                }
        }
        if (optind != argc - 1)
                return ia_usage_error("map", 1, "expects exactly one image file name");
        /* qemu-img up to 10.0 checks only the last --output; from 10.1 on, each one
         * as it is parsed, so an invalid value anywhere is an error. */
        if (bad_output && ctx.compat >= IA_QEMU_10_1)
                output = bad_output;
        if (strcmp(output, "json") == 0) {
                mo.mode = IA_MAPOUT_JSON;
        } else if (strcmp(output, "human") == 0) {
                mo.mode = IA_MAPOUT_HUMAN;
                mopts.flags |= IA_MAP_HUMAN_COALESCE;
        } else {
                return ia_usage_error("map", 1, "--output must be 'human' or 'json', not '%s'",
                                      output);
        }
        if (ctx.compat >= IA_QEMU_8_2)
                mopts.flags |= IA_MAP_MERGE_COMPRESSED;

        if (nroots) {
                roots[nroots] = NULL;
                policy.roots = roots;
        }
        ia_fs_resolver_init(&resolver, &policy);
        ctx.resolver = &resolver;
        if (top_path(argv[optind], &path) < 0)
                return 1;
        if (ia_chain_open(&ctx, path, fmt, &top, &err) < 0) {
                ia_diag("imgaudit map", "cannot open '%s': %s", argv[optind], ia_error_msg(&err));
                free(path);
                return 1;
        }
        free(path);

        ia_out_init(&out, STDOUT_FILENO);
        mo.out = &out;
        mo.compressed_key = ctx.compat >= IA_QEMU_8_2;
        mo.image = argv[optind];
        ia_mapout_begin(&mo);
        if (ia_map(top, &mopts, ia_mapout_entry, &mo, &err) == 0) {
                ia_mapout_end(&mo);
                rc = 0;
        }
        if (ia_out_flush(&out) < 0) {
                ia_diag("imgaudit map", "writing the map failed: %s", strerror(errno));
                rc = 1;
        } else if (rc != 0) {
                ia_diag("imgaudit map", "%s", ia_error_msg(&err));
        }
        ia_image_free(top);
        return rc;
}
