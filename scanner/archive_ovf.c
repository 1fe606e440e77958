/*
 * OVF: the first regular member whose name ends in ".ovf" is parsed with
 * libxml2 (vmdefs.h: no network, no DTD, no entity expansion, size and item
 * caps) for its <File> and <Disk> elements and their attributes: data for the
 * audit, never trusted as paths.
 */
#define _GNU_SOURCE
#include "archive_int.h"
#include "vmdefs.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"
#include "banned.h"

static bool parse_u64(const char *s, uint64_t *out)
{
        uint64_t v = 0;

        while (isspace((unsigned char)*s))
                s++;
        if (!isdigit((unsigned char)*s))
                return false;
        for (; isdigit((unsigned char)*s); s++)
                if (!ia_mul_ok(v, 10, &v) || !ia_add_ok(v, (uint64_t)(*s - '0'), &v))
                        return false;
        while (isspace((unsigned char)*s))
                s++;
        if (*s)
                return false;
        *out = v;
        return true;
}

/*
 * capacityAllocationUnits: "byte", "byte * 2^30", "byte*10^3", "2^20", or a
 * shorthand (KB, MB, GB, TB, KiB, ...).  false when not understood or > 2^64.
 */
static bool parse_units(const char *s, uint64_t *mult)
{
        char t[64];
        size_t n = 0;
        const char *p;
        uint64_t base = 0, exp = 0, m = 1;
        static const struct {
                const char *name;
                unsigned shift;
        } shorthand[] = {
            {"kb", 10}, {"kib", 10}, {"kilobytes", 10}, {"mb", 20}, {"mib", 20}, {"megabytes", 20},
            {"gb", 30}, {"gib", 30}, {"gigabytes", 30}, {"tb", 40}, {"tib", 40}, {"terabytes", 40}};

        for (; *s && n < sizeof(t) - 1; s++)
                if (!isspace((unsigned char)*s))
                        t[n++] = (char)tolower((unsigned char)*s);
        if (*s)
                return false;
        t[n] = '\0';
        if (n == 0 || strcmp(t, "byte") == 0 || strcmp(t, "bytes") == 0) {
                *mult = 1;
                return true;
        }
        for (size_t i = 0; i < sizeof(shorthand) / sizeof(shorthand[0]); i++)
                if (strcmp(t, shorthand[i].name) == 0) {
                        *mult = 1ull << shorthand[i].shift;
                        return true;
                }
        p = t;
        if (strncmp(p, "bytes*", 6) == 0)
                p += 6;
        else if (strncmp(p, "byte*", 5) == 0)
                p += 5;
        if (!isdigit((unsigned char)*p))
                return false;
        while (isdigit((unsigned char)*p) && base < 1000000)
                base = base * 10 + (uint64_t)(*p++ - '0');
        if (*p++ != '^' || !isdigit((unsigned char)*p))
                return false;
        while (isdigit((unsigned char)*p) && exp < 1000)
                exp = exp * 10 + (uint64_t)(*p++ - '0');
        if (*p)
                return false;
        for (uint64_t i = 0; i < exp; i++)
                if (!ia_mul_ok(m, base, &m))
                        return false;
        *mult = m;
        return true;
}

static void ovf_problem(struct ia_archive *a, enum ia_errcat cat, const char *fmt, const char *x,
                        const char *y)
{
        if (a->error.cat == IA_ERR_NONE)
                ia_error_set(&a->error, cat, fmt, a->name, x, y);
}

/* The <File> and <Disk> elements of the descriptor, read by libxml2 (vmdefs.h). */
static void ovf_parse(struct ia_archive *a, const char *desc, const char *text, size_t len)
{
        struct ia_ovf_desc od;
        struct ia_error e;
        bool nomem = false;

        ia_error_clear(&e);
        if (ia_ovf_descriptor_parse(text, len, &od, &e) < 0) {
                ovf_problem(a, e.cat, "archive '%s': descriptor '%s': %s", desc, ia_error_msg(&e));
                return;
        }
        for (size_t i = 0; i < od.nfiles; i++) {
                uint64_t size;

                if (od.files[i].size && !parse_u64(od.files[i].size, &size))
                        ovf_problem(a, IA_ERR_CORRUPT,
                                    "archive '%s': descriptor '%s': <File> size '%s' is "
                                    "not a number",
                                    desc, od.files[i].size);
        }
        a->ovf = od.ndisks ? calloc(od.ndisks, sizeof(*a->ovf)) : NULL;
        if (od.ndisks && !a->ovf)
                nomem = true;
        for (size_t i = 0; i < od.ndisks && !nomem; i++) {
                struct ia_ovf_diskdef *dd = &od.disks[i];
                struct ia_ovf_disk *d = &a->ovf[a->ovf_count++];
                uint64_t cap = 0, mult = 1;

                d->disk_id = dd->disk_id;
                d->file_id = dd->file_ref;
                d->format = dd->format;
                dd->disk_id = dd->file_ref = dd->format = NULL;
                if (dd->capacity && !parse_u64(dd->capacity, &cap))
                        ovf_problem(a, IA_ERR_CORRUPT,
                                    "archive '%s': descriptor '%s': disk capacity '%s' "
                                    "is not a number",
                                    desc, dd->capacity);
                else if (dd->units && !parse_units(dd->units, &mult))
                        ovf_problem(a, IA_ERR_CORRUPT,
                                    "archive '%s': descriptor '%s': unknown "
                                    "capacityAllocationUnits '%s'",
                                    desc, dd->units);
                else if (!ia_mul_ok(cap, mult, &cap))
                        ovf_problem(a, IA_ERR_LIMIT,
                                    "archive '%s': descriptor '%s': disk capacity '%s' "
                                    "overflows 64 bits",
                                    desc, dd->capacity);
                else
                        d->capacity = cap;
                for (size_t j = 0; d->file_id && j < od.nfiles; j++) {
                        struct ia_ovf_ref *f = &od.files[j];

                        if (f->id && strcmp(f->id, d->file_id) == 0 && f->href) {
                                d->href = strdup(f->href);
                                if (!d->href)
                                        nomem = true;
                                if (f->size)
                                        parse_u64(f->size, &d->file_size);
                                break;
                        }
                }
        }
        if (nomem)
                ovf_problem(a, IA_ERR_NOMEM, "archive '%s': descriptor '%s': %s", desc,
                            "out of memory");
        if (od.malformed)
                ovf_problem(a, IA_ERR_CORRUPT, "archive '%s': descriptor '%s': %s", desc,
                            "not well-formed XML (what could be read is kept)");
        ia_ovf_desc_free(&od);
}

bool arc_ends_with_ovf(const char *name)
{
        size_t n = strlen(name);

        return n > 4 && strcasecmp(name + n - 4, ".ovf") == 0;
}

/* The descriptor's text (at most OVF_MAX bytes), or NULL. */
static char *ovf_text(const struct ia_archive_member *m, struct ia_error *err)
{
        char *text;

        if (m->src->size > OVF_MAX)
                return NULL;
        text = malloc((size_t)m->src->size + 1);
        if (!text)
                return NULL;
        if (ia_read(m->src, text, (size_t)m->src->size, 0, "OVF descriptor", err) < 0) {
                free(text);
                return NULL;
        }
        text[m->src->size] = '\0';
        return text;
}

/* The normalised hrefs of the descriptor m, for the walk's decisions (problems are ovf_read's). */
static void ovf_names(struct walk *w, const struct ia_archive_member *m)
{
        struct ia_ovf_desc od;
        struct ia_error e;
        char *text;

        w->ovf_read = true;
        ia_error_clear(&e);
        text = ovf_text(m, &e);
        if (!text || ia_ovf_descriptor_parse(text, (size_t)m->src->size, &od, &e) < 0) {
                free(text);
                return;
        }
        free(text);
        w->ovf_names = od.nfiles ? calloc(od.nfiles, sizeof(char *)) : NULL;
        for (size_t i = 0; w->ovf_names && i < od.nfiles; i++)
                if (od.files[i].href &&
                    (w->ovf_names[w->n_ovf_names] = ia_name_normalise(od.files[i].href, false)))
                        w->n_ovf_names++;
        ia_ovf_desc_free(&od);
}

bool arc_ovf_names_member(struct walk *w)
{
        const struct ia_archive *a = w->a;

        for (size_t i = 0; !w->ovf_read && i + 1 < a->count; i++)
                if (a->members[i].type == IA_MEMBER_FILE && a->members[i].src &&
                    arc_ends_with_ovf(a->members[i].name))
                        ovf_names(w, &a->members[i]);
        for (size_t i = 0; a->count && i < w->n_ovf_names; i++)
                if (strcmp(w->ovf_names[i], a->norms[a->count - 1]) == 0)
                        return true;
        return false;
}

void arc_ovf_names_free(struct walk *w)
{
        for (size_t i = 0; i < w->n_ovf_names; i++)
                free(w->ovf_names[i]);
        free(w->ovf_names);
        w->ovf_names = NULL;
        w->n_ovf_names = 0;
}

void arc_ovf_read(struct ia_archive *a)
{
        for (size_t i = 0; i < a->count; i++) {
                struct ia_archive_member *m = &a->members[i];
                struct ia_error e;
                char *text;

                if (m->type != IA_MEMBER_FILE || !m->src || !arc_ends_with_ovf(m->name))
                        continue;
                if (m->src->size > OVF_MAX) {
                        if (a->error.cat == IA_ERR_NONE)
                                ia_error_set(&a->error, IA_ERR_LIMIT,
                                             "archive '%s': descriptor '%s' is %llu bytes (cap "
                                             "%u)",
                                             a->name, m->name, (unsigned long long)m->src->size,
                                             OVF_MAX);
                        return;
                }
                text = malloc((size_t)m->src->size + 1);
                if (!text)
                        return;
                if (ia_read(m->src, text, (size_t)m->src->size, 0, "OVF descriptor", &e) == 0) {
                        text[m->src->size] = '\0';
                        ovf_parse(a, m->name, text, (size_t)m->src->size);
                } else if (a->error.cat == IA_ERR_NONE) {
                        a->error = e;
                }
                free(text);
                return;
        }
}
