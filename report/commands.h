/*
 * The subcommands of the one binary, each in its own cmd_<name>.c in the
 * folder of the module it drives.  main() (scanner/main.c) holds the table.
 */
#ifndef IA_COMMANDS_H
#define IA_COMMANDS_H

int ia_cmd_map(int argc, char **argv);
extern const char ia_map_usage[];

int ia_cmd_scan(int argc, char **argv);
extern const char ia_scan_usage[];

#endif
