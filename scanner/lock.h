/*
 * The scan lock: two scans of one database never overlap, whatever names
 * they reach it by.
 *
 * The lock is on the database file itself (its inode): an open file
 * description lock on one byte far past anything SQLite locks, held for the
 * whole scan, so a hard link, a symlink or a bind mount of the database is
 * the same lock.  The name is made canonical (symlinks resolved), so that
 * SQLite's -wal and -shm files, which follow the name, are always the same
 * ones.  DB.lock beside the canonical name holds "pid host start-time" so
 * that a refused scan can say who holds it.  The kernel drops the lock when
 * the holder dies, even by SIGKILL, so nothing stale ever blocks the next run.
 */
#ifndef IA_LOCK_H
#define IA_LOCK_H

#include "error.h"

struct ia_lock {
        int fd;     /* DB.lock: the holder's identity */
        int db_fd;  /* the database file: the lock itself */
        char *path; /* DB.lock */
        char *db;   /* the database's canonical name: open it by this name */
};

/*
 * Take the lock for database db_path (created empty if missing), its
 * canonical name in l->db.  If another process holds it: -1 with
 * IA_ERR_REFUSED, reason "locked", and the holder's pid, host and start time
 * in the message when it used the same name.
 */
int ia_lock_take(struct ia_lock *l, const char *db_path, struct ia_error *err);
/* Release the lock (the file stays); safe on a lock never taken. */
void ia_lock_release(struct ia_lock *l);

#endif
