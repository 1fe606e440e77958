/*
 * The parts of `imgaudit report --db CONNINFO` (pg_report.c: the command
 * and its worker processes; pg_fleet_doc.c: the fleet document the hosts'
 * reports are gathered into; the store's schema/pg_load.h lists the stores
 * and loads one into an in-memory SQLite store).  Internal to those files.
 */
#ifndef IA_PG_REPORT_H
#define IA_PG_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pg.h"
#include "pg_load.h"
#include "rbuf.h"

/* Prometheus: families in first-seen order, each sample labelled with its host. */
struct ia_fleet_prom_family {
        char *name;
        struct ia_rbuf head, samples;
};

struct ia_fleet_prom {
        struct ia_fleet_prom_family *f;
        size_t n;
        bool nomem;
};

/* The fleet document in one format; single: one host's report as it is. */
struct ia_fleet_doc {
        const char *format;
        bool single;
        struct ia_rbuf doc;
        struct ia_fleet_prom prom;
};

void ia_fleet_doc_begin(struct ia_fleet_doc *d, const char *format, bool single);
/* Host i's report (part, len bytes, NUL-terminated) under its heading. */
void ia_fleet_doc_add(struct ia_fleet_doc *d, int i, const struct ia_fleet_store *s,
                      const char *part, size_t len);
/* Close the document; -1: out of memory on the way. */
int ia_fleet_doc_end(struct ia_fleet_doc *d);
void ia_fleet_doc_release(struct ia_fleet_doc *d);

/* A whole file into b; -1 (errno set) on error. */
int ia_fleet_read_file(const char *path, struct ia_rbuf *b);
/* The document to stdout ("-" or none), else to path as every report is written. */
int ia_fleet_write_out(const char *path, const char *buf, size_t len);
/* Remove a report file, or the directory of csv tables, of the temporary directory. */
void ia_fleet_remove_out(const char *path);

#endif
