/*
 * The Prometheus series of the whole store, in every metrics file (ia_prom_store).
 * See sections.h, and imgaudit(1) "REPORT FIGURES" for every figure.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "sec_emit.h"
#include "banned.h"

/* One (format, status) pair and its images. */
struct fs_count {
        const char *format, *status;
        struct ia_rpt_agg a;
};

static int cmp_fs(const void *a, const void *b)
{
        const struct fs_count *x = a, *y = b;
        int c = strcmp(x->format, y->format);

        return c ? c : strcmp(x->status, y->status);
}

static void prom_fs(struct ia_rbuf *b, const char *name, const struct fs_count *c, uint64_t v)
{
        ia_rbuf_addf(b, "%s{format=\"", name);
        ia_prom_label(b, c->format);
        ia_rbuf_adds(b, "\",status=\"");
        ia_prom_label(b, c->status);
        ia_rbuf_addf(b, "\"} %" PRIu64 "\n", v);
}

static void prom_f(struct ia_rbuf *b, const char *name, double v)
{
        ia_rbuf_addf(b, "%s %.0f\n", name, v);
}

/*
 * The latest scan that ended, complete or aborted (a running scan, or one
 * killed before the next run marked it aborted, has not ended): what alerts
 * watch.  The figures below are those of the reported scan.
 */
static int prom_last_scan(struct ia_rpt *r, struct ia_rbuf *p, struct ia_error *err)
{
        struct ia_rdb_ended e;
        bool found;

        if (ia_rdb_last_ended(r->db, &found, &e, err) < 0)
                return -1;
        if (!found)
                return 0;
        ia_prom_head(p, "imgaudit_last_scan_start_timestamp_seconds", "gauge",
                     "When the latest scan that ended (complete or aborted) started.");
        prom_f(p, "imgaudit_last_scan_start_timestamp_seconds", (double)e.started);
        ia_prom_head(p, "imgaudit_last_scan_finish_timestamp_seconds", "gauge",
                     "When the latest scan that ended finished.");
        prom_f(p, "imgaudit_last_scan_finish_timestamp_seconds", (double)e.finished);
        ia_prom_head(p, "imgaudit_last_scan_duration_seconds", "gauge",
                     "How long the latest scan that ended ran.");
        prom_f(p, "imgaudit_last_scan_duration_seconds", e.duration > 0 ? e.duration : 0);
        ia_prom_head(p, "imgaudit_last_scan_success", "gauge",
                     "1 if the latest scan that ended is complete, 0 if it aborted.");
        ia_prom_u(p, "imgaudit_last_scan_success", NULL, NULL, e.complete ? 1 : 0);
        return 0;
}

int ia_prom_store(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        const struct ia_rpt_scan *s = &r->scan;
        struct ia_rbuf *p = &o->prom;
        struct fs_count *fs = calloc(r->nimg + 1, sizeof(*fs));
        struct ia_rpt_agg *roots = calloc(s->nroots + 1, sizeof(*roots));
        struct ia_rpt_agg total = {0};
        char metric[96];
        size_t nfs = 0;
        double ratio;
        bool ok;

        if (!fs || !roots) {
                free(fs);
                free(roots);
                return NOMEM(err);
        }
        ia_prom_head(p, "imgaudit_scan_info", "gauge",
                     "The imgaudit version that made the reported scan (value 1).");
        ia_rbuf_adds(p, "imgaudit_scan_info{version=\"");
        ia_prom_label(p, s->tool_version ? s->tool_version : "");
        ia_rbuf_adds(p, "\"} 1\n");
        if (s->has_duration) {
                ia_prom_head(p, "imgaudit_scan_duration_seconds", "gauge",
                             "How long the reported scan took.");
                prom_f(p, "imgaudit_scan_duration_seconds", s->duration);
        }
        ia_prom_head(p, "imgaudit_scan_errors", "gauge",
                     "Items the reported scan could not scan (each recorded with its reason).");
        ia_prom_u(p, "imgaudit_scan_errors", NULL, NULL, s->problems);
        if (prom_last_scan(r, p, err) < 0) {
                free(fs);
                free(roots);
                return -1;
        }

        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                const char *f = m->format ? m->format : "unknown";
                size_t j;

                for (j = 0; j < nfs; j++)
                        if (strcmp(fs[j].format, f) == 0 && strcmp(fs[j].status, m->status) == 0)
                                break;
                if (j == nfs) {
                        fs[j].format = f;
                        fs[j].status = m->status;
                        nfs++;
                }
                ia_agg_add(&fs[j].a, m);
                ia_agg_add(&total, m);
                if (m->root >= 0 && (size_t)m->root < s->nroots)
                        ia_agg_add(&roots[m->root], m);
        }
        qsort(fs, nfs, sizeof(*fs), cmp_fs);
        ia_prom_head(p, "imgaudit_images", "gauge",
                     "Images of the reported scan by format and status.");
        for (size_t j = 0; j < nfs; j++)
                prom_fs(p, "imgaudit_images", &fs[j], fs[j].a.images);
        for (size_t k = 0; k < IA_NFIGURES; k++) {
                snprintf(metric, sizeof(metric), "imgaudit_images_%s_bytes", ia_figures[k].name);
                ia_prom_head(p, metric, "gauge", ia_figures[k].help);
                for (size_t j = 0; j < nfs; j++)
                        prom_fs(p, metric, &fs[j], ia_fig(&fs[j].a, k));
        }
        for (size_t k = 0; k < IA_NFIGURES; k++) {
                snprintf(metric, sizeof(metric), "imgaudit_store_%s_bytes", ia_figures[k].name);
                ia_prom_head(p, metric, "gauge", ia_figures[k].help);
                ia_prom_u(p, metric, NULL, NULL, ia_fig(&total, k));
        }
        ratio = ia_overcommit(&total, &ok);
        if (ok) {
                ia_prom_head(p, "imgaudit_store_overcommit_ratio", "gauge",
                             "Virtual size of leaf images / bytes allocated by all images.");
                ia_rbuf_addf(p, "imgaudit_store_overcommit_ratio %.6f\n", ratio);
        }
        /* a root given twice is one series */
        for (size_t k = 0; k < s->nroots; k++)
                for (size_t j = 0; j < k; j++)
                        if (strcmp(s->roots[j], s->roots[k]) == 0)
                                roots[k].name = (char *)"";
        ia_prom_head(p, "imgaudit_root_images", "gauge", "Images per scan root.");
        for (size_t k = 0; k < s->nroots; k++)
                if (!roots[k].name)
                        ia_prom_u(p, "imgaudit_root_images", "root", s->roots[k], roots[k].images);
        for (size_t f = 0; f < IA_NFIGURES; f++) {
                snprintf(metric, sizeof(metric), "imgaudit_root_%s_bytes", ia_figures[f].name);
                ia_prom_head(p, metric, "gauge", ia_figures[f].help);
                for (size_t k = 0; k < s->nroots; k++)
                        if (!roots[k].name)
                                ia_prom_u(p, metric, "root", s->roots[k], ia_fig(&roots[k], f));
        }

        ia_prom_head(p, "imgaudit_broken_links", "gauge",
                     "Links (backing, data file, extent) not ok.");
        ia_prom_u(p, "imgaudit_broken_links", NULL, NULL, r->nlinks);
        /* findings are sorted by category */
        ia_prom_head(p, "imgaudit_findings", "gauge",
                     "Findings by category: scanner findings, image-STATUS, link-STATUS.");
        for (size_t i = 0, n = 0; i < r->nfindings; i++) {
                n++;
                if (i + 1 < r->nfindings &&
                    strcmp(r->findings[i].category, r->findings[i + 1].category) == 0)
                        continue;
                ia_prom_u(p, "imgaudit_findings", "category", r->findings[i].category, n);
                n = 0;
        }
        free(fs);
        free(roots);
        return p->nomem ? NOMEM(err) : 0;
}
