/*
 * The sections of `imgaudit report` and what they produce.
 *
 * Each section computes its figures once from the loaded scan (rpt.h) and
 * emits them three ways at the same time: into the JSON document, as tables
 * (rendered by human, CSV and HTML) and as Prometheus text.  One computation
 * per figure is what keeps the formats from ever disagreeing.
 */
#ifndef IA_SECTIONS_H
#define IA_SECTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "jsonw.h"
#include "rbuf.h"
#include "rpt.h"
#include "table.h"

#define IA_REPORT_SCHEMA_VERSION 1

enum ia_section {
        IA_SEC_SUMMARY,
        IA_SEC_CAPACITY,
        IA_SEC_SHARING,
        IA_SEC_CHAINS,
        IA_SEC_ORPHANS,
        IA_SEC_FINDINGS,
        IA_SEC_TREND,
        IA_SEC_COUNT,
};

extern const char *const ia_section_names[IA_SEC_COUNT];

/* Space figures of an image or a group of images (see imgaudit(1)). */
struct ia_rpt_agg {
        char *name; /* escaped (group name) */
        uint64_t images, virtual_size, file_size, allocated, own_data, backing_data, zero,
            unallocated, compressed, flattened, overhead, unmapped;
        uint64_t unknown; /* behind a backing file that could not be opened: not zero, not free */
        uint64_t leaf_virtual; /* virtual size of the images nothing uses as a backing file */
};

struct ia_rpt_out {
        /* with IA_OUT_JSON: the document, written as each section is made (the writer's out
         * is NULL in the other layouts: nothing is written, nothing kept) */
        struct ia_jw jw;
        struct ia_table *tables, **tail;
        struct ia_rbuf prom;
        struct ia_sink *prom_sink; /* with IA_OUT_PROM: where ia_prom_spill moves prom's text */
        /* for the HTML charts */
        struct ia_rpt_agg *dirs, total;
        size_t ndirs;
        bool have_capacity, have_sharing, have_trend;
        struct ia_table *sec_first[IA_SEC_COUNT]; /* a section's tables, in the list */
        size_t sec_ntables[IA_SEC_COUNT];
        size_t norphans, nbroken, nfindings;
        bool prom_per_image; /* series per image, directory and base (--prometheus-per-image) */
        /* what the layout needs (IA_OUT_*): a section makes only that (tables are
         * rendered and dropped by the caller as soon as the section is made) */
        unsigned want;
};

/* How the JSON report is laid out. */
#define IA_JSON_FLAGS                                                                              \
        (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

#define IA_OUT_TABLES 0x1u /* human, csv, html */
#define IA_OUT_JSON   0x2u
#define IA_OUT_PROM   0x4u
#define IA_OUT_ALL    (IA_OUT_TABLES | IA_OUT_JSON | IA_OUT_PROM)

/*
 * Start a report that makes what want says (IA_OUT_*); with IA_OUT_JSON the
 * document's first keys (tool, scan) are written to json at once; with
 * IA_OUT_PROM the series go to json as they pile up (ia_prom_spill).
 */
int ia_rpt_out_init(struct ia_rpt_out *o, const struct ia_rpt *r, unsigned want,
                    struct ia_sink *json);
/* End the JSON document (after the last section). */
void ia_rpt_out_finish(struct ia_rpt_out *o);
/* Free the tables made so far (after they were rendered). */
void ia_rpt_out_drop_tables(struct ia_rpt_out *o);
void ia_rpt_out_release(struct ia_rpt_out *o);

/*
 * The Prometheus series every metrics file has, whatever the sections: the
 * reported scan, the latest scan that ended (start, finish, duration,
 * success), images and byte totals by format and status, per root and for
 * the whole store, broken links and findings by category.  Bounded: none
 * of them grows with the number of images.
 */
int ia_prom_store(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
/*
 * Move the series made so far to the output once there are IA_OUT_BUFSZ
 * bytes of them (nothing else is written between sections in that layout),
 * so that the series per image never wait in memory whole.
 */
void ia_prom_spill(struct ia_rpt_out *o);

/* Compute and emit one section. */
int ia_section_run(enum ia_section s, struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);

/*
 * The HTML document (fmt_html.c), written in three parts: each section as
 * soon as it is made, then the head (title, navigation, the cards, which
 * need every section's figures) and the foot.
 */
void ia_html_section(const struct ia_rpt *r, const struct ia_rpt_out *o, enum ia_section k,
                     struct ia_rbuf *b);
void ia_html_head(const struct ia_rpt *r, const struct ia_rpt_out *o,
                  const bool sections[IA_SEC_COUNT], struct ia_rbuf *b);
void ia_html_foot(struct ia_rbuf *b);

#endif
