/*
 * What the report library (report/) offers the binary: its subcommands,
 * each in its own cmd_<name>.c.  main() (scanner/main.c, built as the
 * executable on top of the libraries) holds the command table; the scanner
 * library's commands are in scanner/scanner.h.
 */
#ifndef IA_REPORT_H
#define IA_REPORT_H

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

/* imgaudit report --db CONNINFO (report/pg_report.c): the fleet's PostgreSQL */
bool ia_report_wants_pg(int argc, char **argv);
int ia_cmd_report_pg(int argc, char **argv);

#endif
