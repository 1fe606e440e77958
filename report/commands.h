/*
 * The subcommands of the one binary, each in its own cmd_<name>.c in the
 * folder of the module it drives.  main() (scanner/main.c) holds the table.
 */
#ifndef IA_COMMANDS_H
#define IA_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

int ia_cmd_map(int argc, char **argv);
extern const char ia_map_usage[];

int ia_cmd_report(int argc, char **argv);
extern const char ia_report_usage[];
/*
 * The same command over a store the caller opened and keeps open (the fleet
 * report's in-memory copy of a host's store): argv holds report's options
 * (argv[0] the command name) without --db; name is what messages call the
 * database.  Its exit status (0, 1, or 2 for a usage error).
 */
struct sqlite3;
int ia_cmd_report_db(struct sqlite3 *db, const char *name, int argc, char **argv);
/* "imgaudit VERSION (database schema N, report schema N)" for --version. */
void ia_print_version(FILE *f);

int ia_cmd_scan(int argc, char **argv);
extern const char ia_scan_usage[];

int ia_cmd_prune(int argc, char **argv);
extern const char ia_prune_usage[];

int ia_cmd_push(int argc, char **argv);
extern const char ia_push_usage[];
int ia_cmd_pg_migrate(int argc, char **argv);
extern const char ia_pg_migrate_usage[];
/* imgaudit report --db CONNINFO (report/pg_report.c): the fleet's PostgreSQL */
bool ia_report_wants_pg(int argc, char **argv);
int ia_cmd_report_pg(int argc, char **argv);

#endif
