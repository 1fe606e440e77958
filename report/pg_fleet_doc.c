/*
 * imgaudit report --db CONNINFO, the fleet document: each host's report
 * (written by a worker into a file of the temporary directory) appended in
 * host order under its host's heading, in every format (see pg_report.c),
 * and the files of the temporary directory.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "escape.h"
#include "out.h"
#include "pg_report.h"
#include "banned.h"

int ia_fleet_read_file(const char *path, struct ia_rbuf *b)
{
        char buf[65536];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -1;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                ia_rbuf_add(b, buf, (size_t)n);
        close(fd);
        return n < 0 || b->nomem ? -1 : 0;
}

static void json_str(struct ia_rbuf *b, const char *s)
{
        ia_rbuf_addc(b, '"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        ia_rbuf_addf(b, "\\%c", *p);
                else if (*p < 0x20)
                        ia_rbuf_addf(b, "\\u%04x", *p);
                else
                        ia_rbuf_addc(b, (char)*p);
        }
        ia_rbuf_addc(b, '"');
}

static void csv_field(struct ia_rbuf *b, const char *s)
{
        ia_rbuf_addc(b, '"');
        for (; *s; s++) {
                if (*s == '"')
                        ia_rbuf_addc(b, '"');
                ia_rbuf_addc(b, *s);
        }
        ia_rbuf_addc(b, '"');
}

static struct ia_fleet_prom_family *prom_family(struct ia_fleet_prom *p, const char *name,
                                                size_t len)
{
        struct ia_fleet_prom_family *a;

        for (size_t i = 0; i < p->n; i++)
                if (strlen(p->f[i].name) == len && memcmp(p->f[i].name, name, len) == 0)
                        return &p->f[i];
        a = realloc(p->f, (p->n + 1) * sizeof(*a));
        if (!a)
                return NULL;
        p->f = a;
        a = &p->f[p->n];
        a->name = strndup(name, len);
        if (!a->name)
                return NULL;
        ia_rbuf_init(&a->head);
        ia_rbuf_init(&a->samples);
        p->n++;
        return a;
}

static void prom_add(struct ia_fleet_prom *p, const char *text, size_t len, const char *host,
                     bool first)
{
        struct ia_fleet_prom_family *cur = NULL;
        const char *end = text + len;

        for (const char *l = text; l < end;) {
                const char *nl = memchr(l, '\n', (size_t)(end - l));
                size_t n = nl ? (size_t)(nl - l) : (size_t)(end - l);

                if (n > 7 && (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0)) {
                        const char *nm = l + 7, *sp = memchr(nm, ' ', n - 7);
                        cur = prom_family(p, nm, sp ? (size_t)(sp - nm) : n - 7);
                        if (!cur) {
                                p->nomem = true;
                                return;
                        }
                        if (first) {
                                ia_rbuf_add(&cur->head, l, n);
                                ia_rbuf_addc(&cur->head, '\n');
                        }
                } else if (n > 0 && l[0] != '#') {
                        const char *br = memchr(l, '{', n), *sp = memchr(l, ' ', n);
                        size_t cut = br && (!sp || br < sp) ? (size_t)(br - l)
                                     : sp                   ? (size_t)(sp - l)
                                                            : n;

                        if (!cur) {
                                cur = prom_family(p, l, cut);
                                if (!cur) {
                                        p->nomem = true;
                                        return;
                                }
                        }
                        ia_rbuf_add(&cur->samples, l, cut);
                        ia_rbuf_adds(&cur->samples, "{fleet_host=\"");
                        for (const char *h = host; *h; h++) {
                                if (*h == '\\' || *h == '"')
                                        ia_rbuf_addc(&cur->samples, '\\');
                                if (*h == '\n')
                                        ia_rbuf_adds(&cur->samples, "\\n");
                                else
                                        ia_rbuf_addc(&cur->samples, *h);
                        }
                        ia_rbuf_addc(&cur->samples, '"');
                        if (br && (!sp || br < sp)) {
                                if (l[cut + 1] != '}')
                                        ia_rbuf_addc(&cur->samples, ',');
                                ia_rbuf_add(&cur->samples, l + cut + 1, n - cut - 1);
                        } else {
                                ia_rbuf_addc(&cur->samples, '}');
                                ia_rbuf_add(&cur->samples, l + cut, n - cut);
                        }
                        ia_rbuf_addc(&cur->samples, '\n');
                }
                l += n + 1;
        }
}

static void prom_release(struct ia_fleet_prom *p)
{
        for (size_t i = 0; i < p->n; i++) {
                free(p->f[i].name);
                ia_rbuf_release(&p->f[i].head);
                ia_rbuf_release(&p->f[i].samples);
        }
        free(p->f);
}

/* The document to stdout ("-" or none), else to path as every report is written. */
int ia_fleet_write_out(const char *path, const char *buf, size_t len)
{
        if (!path || strcmp(path, "-") == 0)
                return ia_write_all(STDOUT_FILENO, buf, len);
        return ia_write_file(path, buf, len);
}

/* A report file, or the directory of csv tables, in the temporary directory. */
void ia_fleet_remove_out(const char *path)
{
        DIR *d;

        if (unlink(path) == 0 || errno != EISDIR)
                return;
        d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));)
                if (e->d_name[0] != '.')
                        unlinkat(dirfd(d), e->d_name, 0);
        if (d)
                closedir(d);
        rmdir(path);
}

void ia_fleet_doc_begin(struct ia_fleet_doc *d, const char *format, bool single)
{
        memset(d, 0, sizeof(*d));
        ia_rbuf_init(&d->doc);
        d->format = format;
        d->single = single;
        if (single)
                return; /* the host's report as it is */
        if (strcmp(format, "json") == 0)
                ia_rbuf_adds(&d->doc, "{\"fleet\": [");
        else if (strcmp(format, "html") == 0)
                ia_rbuf_adds(&d->doc, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                                      "<title>imgaudit fleet report</title></head><body>\n"
                                      "<h1>imgaudit fleet report</h1>\n");
}

void ia_fleet_doc_add(struct ia_fleet_doc *d, int i, const struct ia_fleet_store *s,
                      const char *part, size_t len)
{
        struct ia_rbuf *doc = &d->doc;
        const char *format = d->format;

        if (d->single) {
                ia_rbuf_add(doc, part, len);
        } else if (strcmp(format, "json") == 0) {
                ia_rbuf_adds(doc, i ? ",\n{\"host\": " : "\n{\"host\": ");
                json_str(doc, s->host);
                ia_rbuf_adds(doc, ", \"store_id\": ");
                json_str(doc, s->store_id);
                ia_rbuf_adds(doc, ", \"report\": ");
                ia_rbuf_add(doc, part, len);
                ia_rbuf_adds(doc, "}");
        } else if (strcmp(format, "csv") == 0) {
                if (i)
                        ia_rbuf_adds(doc, "\r\n");
                ia_rbuf_adds(doc, "host,store_id\r\n");
                csv_field(doc, s->host);
                ia_rbuf_addc(doc, ',');
                csv_field(doc, s->store_id);
                ia_rbuf_adds(doc, "\r\n\r\n");
                ia_rbuf_add(doc, part, len);
        } else if (strcmp(format, "html") == 0) {
                ia_rbuf_adds(doc, "<h2>host ");
                ia_html_text(doc, s->host);
                ia_rbuf_addf(doc, " <small>(store %s)</small></h2>\n", s->store_id);
                ia_rbuf_adds(doc, "<iframe style=\"width:100%;height:80vh;border:1px solid "
                                  "#ccc\" sandbox srcdoc=\"");
                ia_html_text(doc, part);
                ia_rbuf_adds(doc, "\"></iframe>\n");
        } else if (strcmp(format, "prometheus") == 0) {
                prom_add(&d->prom, part, len, s->host, i == 0);
        } else {
                ia_rbuf_adds(doc, "######## host ");
                for (const char *h = s->host; *h; h++)
                        ia_rbuf_addc(doc, (unsigned char)*h < 0x20 ? '?' : *h);
                ia_rbuf_addf(doc, " (store %s) ########\n\n", s->store_id);
                ia_rbuf_add(doc, part, len);
                ia_rbuf_addc(doc, '\n');
        }
}

int ia_fleet_doc_end(struct ia_fleet_doc *d)
{
        if (!d->single) {
                if (strcmp(d->format, "json") == 0)
                        ia_rbuf_adds(&d->doc, "\n]}\n");
                else if (strcmp(d->format, "html") == 0)
                        ia_rbuf_adds(&d->doc, "</body></html>\n");
                else if (strcmp(d->format, "prometheus") == 0)
                        for (size_t k = 0; k < d->prom.n; k++) {
                                struct ia_fleet_prom_family *f = &d->prom.f[k];

                                ia_rbuf_add(&d->doc, f->head.buf ? f->head.buf : "", f->head.len);
                                ia_rbuf_add(&d->doc, f->samples.buf ? f->samples.buf : "",
                                            f->samples.len);
                        }
        }
        return d->doc.nomem || d->prom.nomem ? -1 : 0;
}

void ia_fleet_doc_release(struct ia_fleet_doc *d)
{
        prom_release(&d->prom);
        ia_rbuf_release(&d->doc);
}
