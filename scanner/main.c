/*
 * imgaudit: audit virtual-machine disk-image stores.
 *
 * One binary, subcommands in a table.  main() checks the driver table, picks
 * the subcommand and returns its exit status; only main() and the commands
 * decide exit statuses, never the engine.
 */
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "scanner.h"
#include "drivers.h"
#include "escape.h"
#include "banned.h"

struct command {
        const char *name;
        const char *summary;
        int (*run)(int argc, char **argv);
        const char *usage;
};

static const struct command commands[] = {
    {"map", "print the allocation map of an image (qemu-img map compatible)", ia_cmd_map,
     ia_map_usage},
    {"scan", "crawl directories and archives, map every chain, store it in SQLite", ia_cmd_scan,
     ia_scan_usage},
    {"report", "report capacity, sharing, chains, orphans, findings and growth", ia_cmd_report,
     ia_report_usage},
    {"prune", "remove old scans and the rows only they use", ia_cmd_prune, ia_prune_usage},
    {"push", "copy the complete scans of a store to the fleet's PostgreSQL", ia_cmd_push,
     ia_push_usage},
    {"pg-migrate", "create or upgrade the fleet's PostgreSQL schema", ia_cmd_pg_migrate,
     ia_pg_migrate_usage},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
        fputs("usage: imgaudit COMMAND [ARGS]\n"
              "       imgaudit help COMMAND | --help | --version\n\ncommands:\n",
              f);
        for (size_t i = 0; i < NCOMMANDS; i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fputs("\nformats:", f);
        for (size_t i = 0; ia_drivers[i]; i++)
                fprintf(f, " %s", ia_drivers[i]->name);
        for (size_t i = 0, n = 0; ia_drivers[i]; i++)
                if (ia_drivers[i]->flags & IA_DRV_PROBE_ONLY)
                        fprintf(f, "%s %s",
                                n++ ? "" : "\nrecognised but not mapped:", ia_drivers[i]->name);
        fputs("\n", f);
}

static const struct command *find(const char *name)
{
        for (size_t i = 0; i < NCOMMANDS; i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

int main(int argc, char **argv)
{
        const struct command *cmd;
        struct ia_error err;

        if (ia_drivers_check(&err) < 0) {
                ia_diag("imgaudit", "internal error: %s", ia_error_msg(&err));
                return 70;
        }
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
                ia_print_version(stdout);
                return 0;
        }
        if (strcmp(argv[1], "help") == 0) {
                if (argc < 3) {
                        usage(stdout);
                        return 0;
                }
                cmd = find(argv[2]);
                if (!cmd) {
                        ia_diag("imgaudit", "no command '%s'", argv[2]);
                        fputs("Try 'imgaudit --help'.\n", stderr);
                        return 2;
                }
                fputs(cmd->usage, stdout);
                return 0;
        }
        cmd = find(argv[1]);
        if (!cmd) {
                ia_diag("imgaudit", "no command '%s'", argv[1]);
                fputs("Try 'imgaudit --help'.\n", stderr);
                return 2;
        }
        return cmd->run(argc - 1, argv + 1);
}
