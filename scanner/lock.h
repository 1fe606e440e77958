/*
 * The scan lock: two scans of one database never overlap.
 *
 * DB.lock next to the database, held with an exclusive flock() for the
 * whole scan and holding "pid host start-time" so that a refused scan can
 * say who holds it.  The kernel drops the lock when the holder dies, even by
 * SIGKILL, so a stale lock file never blocks the next run.
 */
#ifndef IA_LOCK_H
#define IA_LOCK_H

#include "error.h"

struct ia_lock {
        int fd;
        char *path;
};

/*
 * Take the lock for database db_path.  If another process holds it: -1 with
 * IA_ERR_REFUSED, reason "locked", and the holder's pid, host and start time
 * in the message.
 */
int ia_lock_take(struct ia_lock *l, const char *db_path, struct ia_error *err);
/* Release the lock (the file stays); safe on a lock never taken. */
void ia_lock_release(struct ia_lock *l);

#endif
