/*
 * What the scanner library (scanner/) offers the binary: its subcommands,
 * each in its own cmd_<name>.c (scan: scan_cli.c).  main() (scanner/main.c,
 * built as the executable on top of the libraries) holds the command table;
 * the report library's commands are in report/report.h.
 */
#ifndef IA_SCANNER_H
#define IA_SCANNER_H

int ia_cmd_scan(int argc, char **argv);
extern const char ia_scan_usage[];

int ia_cmd_prune(int argc, char **argv);
extern const char ia_prune_usage[];

int ia_cmd_push(int argc, char **argv);
extern const char ia_push_usage[];
int ia_cmd_pg_migrate(int argc, char **argv);
extern const char ia_pg_migrate_usage[];

#endif
