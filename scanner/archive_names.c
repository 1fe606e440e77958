/*
 * Member names: the flags an audit reports (traversal, absolute), the one
 * normalisation rule (ia_name_normalise: the archive's index and names that
 * resolve to members), the index that finds a member by name, and the caps
 * on the names a hostile archive makes us hold.
 */
#define _GNU_SOURCE
#include "archive_int.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* ---- names ---- */

static bool is_sep(char c)
{
        return c == '/' || c == '\\';
}

unsigned arc_name_flags(const char *name)
{
        unsigned flags = 0;
        const char *p = name;

        if (is_sep(name[0]))
                flags |= IA_MEMBER_ABSOLUTE;
        while (*p) {
                const char *q = p;

                while (*q && !is_sep(*q))
                        q++;
                if (q - p == 2 && p[0] == '.' && p[1] == '.')
                        flags |= IA_MEMBER_TRAVERSAL;
                p = *q ? q + 1 : q;
        }
        return flags;
}

char *ia_name_normalise(const char *name, bool resolve_dotdot)
{
        size_t o = 0, base;
        char *out = malloc(strlen(name) + 1);
        const char *p = name;

        if (!out)
                return NULL;
        if (!resolve_dotdot && name[0] == '/')
                out[o++] = '/';
        base = o;
        while (*p) {
                const char *q = p;
                size_t n;

                while (*q && *q != '/')
                        q++;
                n = (size_t)(q - p);
                if (n == 2 && p[0] == '.' && p[1] == '.' && resolve_dotdot) {
                        if (o == base) { /* above the top */
                                free(out);
                                return NULL;
                        }
                        while (o > base && out[o - 1] != '/')
                                o--;
                        if (o > base)
                                o--; /* the slash */
                } else if (n > 0 && !(n == 1 && p[0] == '.')) {
                        if (o > base)
                                out[o++] = '/';
                        memcpy(out + o, p, n);
                        o += n;
                }
                p = *q ? q + 1 : q;
        }
        out[o] = '\0';
        return out;
}

static size_t name_hash(const char *s)
{
        uint64_t h = 1469598103934665603ull; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ull;
        return (size_t)h;
}

/* The slot of norm in the index: the one holding it, or the empty one where it would go. */
size_t arc_index_slot(const struct ia_archive *a, const char *norm)
{
        size_t mask = a->index_cap - 1;
        size_t i = name_hash(norm) & mask;

        while (a->index[i] && strcmp(a->norms[a->index[i] - 1], norm) != 0)
                i = (i + 1) & mask;
        return i;
}

int arc_index_grow(struct ia_archive *a)
{
        size_t cap = a->index_cap ? a->index_cap * 2 : 64;
        size_t *old = a->index;
        size_t old_cap = a->index_cap;

        a->index = calloc(cap, sizeof(*a->index));
        if (!a->index) {
                a->index = old;
                return -1;
        }
        a->index_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i])
                        a->index[arc_index_slot(a, a->norms[old[i] - 1])] = old[i];
        free(old);
        return 0;
}

const char *arc_entry_name(struct archive_entry *entry)
{
        const char *p = archive_entry_pathname(entry);

        if (!p)
                p = archive_entry_pathname_utf8(entry);
        return p ? p : "";
}

/*
 * Member names are held in memory and stored: a pax header can make one as
 * long as it likes, and a compressed stream of such headers is tiny.  Cap
 * each name (and link target) and their total; over a cap the walk stops,
 * the members before it stay recorded.
 */
int arc_check_names(struct walk *w, struct archive_entry *entry)
{
        struct ia_archive *a = w->a;
        const char *link = archive_entry_hardlink(entry);
        size_t n = strlen(arc_entry_name(entry)), ln;
        struct ia_error e;

        if (!link)
                link = archive_entry_symlink(entry);
        ln = link ? strlen(link) : 0;
        if (n > w->lim.max_name || ln > w->lim.max_name) {
                ia_error_set(&e, IA_ERR_LIMIT,
                             "archive '%s': member %zu has a %s of %zu bytes, over the cap of "
                             "%llu bytes",
                             a->name, a->count + 1, n > w->lim.max_name ? "name" : "link target",
                             n > w->lim.max_name ? n : ln, (unsigned long long)w->lim.max_name);
                arc_walk_fail(w, &e);
                return -1;
        }
        a->name_bytes += n + ln;
        if (a->name_bytes > w->lim.name_budget) {
                ia_error_set(&e, IA_ERR_LIMIT,
                             "archive '%s': member names total more than %llu bytes (the cap) "
                             "after %zu members",
                             a->name, (unsigned long long)w->lim.name_budget, a->count);
                arc_walk_fail(w, &e);
                return -1;
        }
        return 0;
}

const struct ia_archive_member *ia_archive_find(const struct ia_archive *a, const char *name)
{
        char *norm;
        size_t slot;

        if (!a->index_cap)
                return NULL;
        norm = ia_name_normalise(name, false);
        if (!norm)
                return NULL;
        slot = arc_index_slot(a, norm);
        free(norm);
        return a->index[slot] ? &a->members[a->index[slot] - 1] : NULL;
}
