/*
 * The report's command line, one grammar for the report of a local store
 * (cmd_report.c) and the report from the fleet's PostgreSQL database
 * (pg_report.c, which also takes --host and passes the rest on to each
 * host's report).  Internal to report/.
 */
#ifndef IA_REPORT_ARGS_H
#define IA_REPORT_ARGS_H

#include <stdbool.h>

#include "sections.h"

struct ia_report_args {
        /* in */
        bool fleet;     /* --host accepted: the report from PostgreSQL */
        char **pass;    /* NULL, or room for the options each host's report is given */
        int npass;      /* in pass (appended to) */
        const char *db; /* the default, replaced by --db */
        /* out */
        const char *host, *scan, *out;
        const char *since;   /* --since as the loader takes it (NULL: none) */
        const char *section; /* the last --section as given */
        int format;          /* 0 human, 1 json, 2 csv, 3 html, 4 prometheus */
        const char *format_name;
        bool sel[IA_SEC_COUNT]; /* the sections named (any: at least one) */
        bool any, per_image;
        char since_buf[32];
};

/* Parse argv into a; -1 to go on, else the exit status (help: 0; usage: 2, said). */
int ia_report_parse_args(struct ia_report_args *a, int argc, char **argv);

#endif
