/*
 * What every subcommand's command line shares: one style of usage error
 * (one line naming the problem, one line pointing at the help) with the
 * exit status each command documents (map exits 1 as qemu-img does, scan
 * and report 2), and a diagnosis of a database path that SQLite could only
 * describe as "unable to open database file".
 */
#ifndef IA_CLI_H
#define IA_CLI_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Print "imgaudit CMD: MESSAGE" and "Try 'imgaudit help CMD'." on stderr;
 * returns status, so that `return ia_usage_error(...)` is one line.
 */
int ia_usage_error(const char *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * getopt_long's answer c, '?' (unknown option) or ':' (a value missing: the
 * option string starts with ':'), as that usage error of cmd, named as typed.
 */
int ia_getopt_error(const char *cmd, int status, int c, char **argv);

/*
 * Why the database at path cannot be used, when the file system says so:
 * a directory of the path that does not exist, a permission refused (to
 * read the file, to write it or to create it and its lock beside it when
 * for_write), a file that is not an SQLite database, a directory.  Writes
 * the reason into buf and returns it, or returns NULL when nothing visibly
 * stands in the way (SQLite's own error then says more).
 */
const char *ia_db_problem(const char *path, bool for_write, char *buf, size_t n);

#endif
