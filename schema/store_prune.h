/*
 * imgaudit prune's statements (scanner/cmd_prune.c drives them): in one
 * transaction, choose the scans to remove, remove their own rows, then what
 * no kept row uses any more (maps, layers and their runs, files).  Each
 * function returns 0, or -1 with err's message "database error WHAT: ...".
 */
#ifndef IA_STORE_PRUNE_H
#define IA_STORE_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

/* BEGIN IMMEDIATE. */
int ia_prune_begin(struct ia_store *s, struct ia_error *err);
/*
 * Choose the scans to remove (never a running one): with keep > 0 all those
 * before the keep latest complete scans, else those started more than
 * older_s seconds ago except the latest complete scan.  Their number in *n.
 */
int ia_prune_choose(struct ia_store *s, long keep, int64_t older_s, int64_t *n,
                    struct ia_error *err);
/* Each chosen scan, in id order: (id, started_at, status). */
void ia_prune_each_chosen(struct ia_store *s,
                          void (*fn)(int64_t id, const char *started_at, const char *status,
                                     void *opaque),
                          void *opaque);
/* Remove the rows; fn(table, rows) for each table that lost rows. */
int ia_prune_remove(struct ia_store *s, void (*fn)(const char *table, int rows, void *opaque),
                    void *opaque, struct ia_error *err);
/* COMMIT (commit) or ROLLBACK (a dry run); a failed COMMIT rolls back. */
int ia_prune_end(struct ia_store *s, bool commit, struct ia_error *err);
/* ROLLBACK, after an error. */
void ia_prune_rollback(struct ia_store *s);
/* VACUUM, after the commit. */
int ia_prune_vacuum(struct ia_store *s, struct ia_error *err);

#endif
