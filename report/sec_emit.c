/*
 * The emitters and figures the sections share: see sec_emit.h.
 */
#define _GNU_SOURCE
#include "sec_emit.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "banned.h"

struct ia_table *ia_sec_table(struct ia_rpt_out *o, const char *id, const char *title,
                              const struct ia_col *cols, size_t ncols)
{
        struct ia_table *t;

        if (!(o->want & IA_OUT_TABLES))
                return NULL; /* a layout without tables: ia_table_* take NULL */
        t = ia_table_new(id, title, cols, ncols);
        if (t) {
                *o->tail = t;
                o->tail = &t->next;
        }
        return t;
}

void ia_prom_head(struct ia_rbuf *b, const char *name, const char *type, const char *help)
{
        ia_rbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ia_prom_u(struct ia_rbuf *b, const char *name, const char *label, const char *value,
               uint64_t v)
{
        ia_rbuf_adds(b, name);
        if (label) {
                ia_rbuf_addf(b, "{%s=\"", label);
                ia_prom_label(b, value);
                ia_rbuf_adds(b, "\"}");
        }
        ia_rbuf_addf(b, " %" PRIu64 "\n", v);
}

void ia_prom_spill(struct ia_rpt_out *o)
{
        struct ia_sink *s = o->prom_sink;

        if (!s || o->prom.len < IA_OUT_BUFSZ)
                return;
        ia_rbuf_add(&s->b, o->prom.buf, o->prom.len);
        if (o->prom.nomem)
                s->b.nomem = true;
        o->prom.len = 0;
        o->prom.buf[0] = '\0';
        ia_sink_spill(s);
}

bool ia_is_leaf(const struct ia_rpt_image *m)
{
        return m->nchildren == 0 && !m->used_as_data;
}

void ia_agg_add(struct ia_rpt_agg *a, const struct ia_rpt_image *m)
{
        uint64_t own = m->sp.own_data;
        uint64_t flat = m->sp.own_data + m->sp.backing_data;

        a->images++;
        a->virtual_size += m->virtual_size;
        a->file_size += m->file_size;
        a->allocated += m->allocated;
        a->own_data += own;
        a->backing_data += m->sp.backing_data;
        a->zero += m->sp.zero;
        a->unallocated += m->sp.unallocated;
        a->unknown += m->sp.unknown;
        a->compressed += m->sp.compressed;
        a->flattened += flat;
        a->overhead += m->allocated > own ? m->allocated - own : 0;
        a->unmapped += m->virtual_size > m->sp.mapped ? m->virtual_size - m->sp.mapped : 0;
        if (ia_is_leaf(m))
                a->leaf_virtual += m->virtual_size;
}

double ia_overcommit(const struct ia_rpt_agg *a, bool *ok)
{
        *ok = a->allocated > 0;
        return a->allocated ? (double)a->leaf_virtual / (double)a->allocated : 0.0;
}

char *ia_iso_time(int64_t secs, char *buf, size_t n)
{
        time_t t = (time_t)secs;
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, n, "unknown");
        return buf;
}

/* Metrics: one family per figure, per scope. */
const struct ia_figure ia_figures[IA_NFIGURES] = {
    {"virtual", "Virtual (guest-visible) size.", offsetof(struct ia_rpt_agg, virtual_size)},
    {"file", "Apparent file size.", offsetof(struct ia_rpt_agg, file_size)},
    {"allocated", "Bytes allocated on disk (st_blocks * 512).",
     offsetof(struct ia_rpt_agg, allocated)},
    {"own_data", "Bytes mapped as data in the image's own layer.",
     offsetof(struct ia_rpt_agg, own_data)},
    {"backing_data", "Bytes read through from backing files.",
     offsetof(struct ia_rpt_agg, backing_data)},
    {"zero", "Bytes that read as zeros and are allocated as such.",
     offsetof(struct ia_rpt_agg, zero)},
    {"unallocated", "Bytes allocated in no layer.", offsetof(struct ia_rpt_agg, unallocated)},
    {"unknown", "Bytes behind a backing file that could not be opened (content unknown).",
     offsetof(struct ia_rpt_agg, unknown)},
    {"compressed", "Data bytes stored compressed.", offsetof(struct ia_rpt_agg, compressed)},
    {"flattened", "Data bytes through the whole chain (size when flattened).",
     offsetof(struct ia_rpt_agg, flattened)},
    {"metadata_overhead", "Allocated on disk minus own data, at least 0.",
     offsetof(struct ia_rpt_agg, overhead)},
};

uint64_t ia_fig(const struct ia_rpt_agg *a, size_t k)
{
        return *(const uint64_t *)((const char *)a + ia_figures[k].off);
}

void ia_compute_freed(struct ia_rpt *r, size_t i)
{
        struct ia_rpt_image *m = &r->img[i];
        long c = (long)i, p = m->parent;
        size_t guard = 0;

        m->freed = m->allocated;
        m->orphaned = 0;
        while (p >= 0 && guard++ <= r->nimg) {
                const struct ia_rpt_image *b = &r->img[p];

                if (b->nchildren != 1 || b->children[0] != (size_t)c || b->used_by_ovf ||
                    b->used_as_data)
                        break;
                m->freed += b->allocated;
                m->orphaned++;
                c = p;
                p = b->parent;
        }
}

struct ia_walk *ia_descendants(const struct ia_rpt *r, size_t base, size_t *n)
{
        struct ia_walk *out = calloc(r->img[base].ndesc + 1, sizeof(*out));
        struct ia_walk *stack = calloc(r->img[base].ndesc + 1, sizeof(*stack));
        size_t sp = 0;

        *n = 0;
        if (!out || !stack) {
                free(out);
                free(stack);
                return NULL;
        }
        for (size_t k = r->img[base].nchildren; k-- > 0;)
                stack[sp++] = (struct ia_walk){r->img[base].children[k], 1};
        while (sp > 0 && *n < r->img[base].ndesc) {
                struct ia_walk w = stack[--sp];
                const struct ia_rpt_image *m = &r->img[w.img];

                out[(*n)++] = w;
                for (size_t k = m->nchildren; k-- > 0 && sp <= r->img[base].ndesc;)
                        stack[sp++] = (struct ia_walk){m->children[k], w.depth + 1};
        }
        free(stack);
        return out;
}
