/*
 * The COPY writer of pg.h: COPY ... FROM STDIN (FORMAT binary), the rows
 * formatted by the caller into a buffer, each full buffer sent by a sender
 * thread while the caller formats the next.
 *
 * Why a thread: with a blocking send the client formats a buffer while the
 * server waits, then waits while the server parses it (the kernel's socket
 * buffer is the only overlap), so a push took the sum of the two sides'
 * CPU.  With the sender, the caller formats buffer k+1 while buffer k is
 * sent and parsed; the wall time is the busier side's.  At most NBUF
 * buffers exist: the caller's, the one being sent and one queued; the
 * caller waits for a free one when the server is the slower side, so the
 * memory is bounded whatever the table's size.
 *
 * The sender is given a queue of items (start a COPY, send a buffer, end
 * the COPY and read its result) and is the only user of the connection
 * from the first ia_pg_copy_begin to ia_pg_sync (which every other query
 * calls first, pg.c): the caller reads and formats the next table while
 * the server finishes the COPY of the last, where a round trip per table
 * made them wait for each other.  The first failure is kept; after it the
 * sender only ends a COPY left open, and the caller sees the failure at
 * its next ia_pg_copy_* call or at the sync (a push: the scan's COMMIT,
 * which is then never sent).
 */
#define _GNU_SOURCE
#include "pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "banned.h"

/*
 * A buffer is sent when it holds FLUSH_AT bytes: small enough that the
 * first buffer of a COPY (formatted while the server waits) is short,
 * large enough that a CopyData message costs nothing.
 */
#define FLUSH_AT (256 << 10)
#define NBUF     3

/* ---- the sender thread ---- */

struct sbuf {
        char *p;
        size_t len, cap;
};

/* What the sender does, in order: start a COPY, send a buffer, end the COPY. */
enum item_kind { IT_BEGIN, IT_DATA, IT_END };

struct item {
        struct item *next;
        enum item_kind kind;
        char *sql;     /* IT_BEGIN */
        struct sbuf b; /* IT_DATA */
        bool ok;       /* IT_END: false: abort the COPY */
};

struct ia_pg_sender {
        struct ia_pg *pg;
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct item *head, **tail; /* to do, in order */
        struct sbuf spare[NBUF];   /* sent, free for the caller */
        size_t nspare, nbufs;      /* nbufs: buffers that exist */
        bool done, failed;
        struct ia_error err; /* the first failure (failed) */
        bool in_copy;        /* the sender's own: a COPY is open on the connection */
};

/* The sender's first failure into s->err (res: the server's answer, or NULL). */
static void sender_fail(struct ia_pg_sender *s, PGresult *res, const char *what)
{
        pthread_mutex_lock(&s->mu);
        if (!s->failed)
                ia_pg_error(s->pg, res, what, &s->err);
        s->failed = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
}

/* One item, on the connection; after a failure only a COPY left open is ended. */
static void sender_do(struct ia_pg_sender *s, struct item *it, bool failed)
{
        PGconn *conn = s->pg->conn;
        PGresult *res;

        switch (it->kind) {
        case IT_BEGIN:
                if (failed)
                        return;
                res = PQexec(conn, it->sql);
                if (!res || PQresultStatus(res) != PGRES_COPY_IN)
                        sender_fail(s, res, "starting COPY");
                else
                        s->in_copy = true;
                PQclear(res);
                return;
        case IT_DATA:
                if (!failed && s->in_copy && PQputCopyData(conn, it->b.p, (int)it->b.len) != 1)
                        sender_fail(s, NULL, "sending COPY data");
                return;
        case IT_END:
                if (!s->in_copy)
                        return;
                s->in_copy = false;
                if (PQputCopyEnd(conn, it->ok && !failed ? NULL : "imgaudit push stopped") != 1)
                        sender_fail(s, NULL, "ending COPY");
                while ((res = PQgetResult(conn)) != NULL) {
                        if (PQresultStatus(res) != PGRES_COMMAND_OK)
                                sender_fail(s, res, "COPY");
                        PQclear(res);
                }
                return;
        }
}

static void *sender_main(void *arg)
{
        struct ia_pg_sender *s = arg;

        pthread_mutex_lock(&s->mu);
        for (;;) {
                struct item *it;
                bool failed;

                while (!s->head && !s->done)
                        pthread_cond_wait(&s->cv, &s->mu);
                if (!s->head)
                        break;
                it = s->head;
                s->head = it->next;
                if (!s->head)
                        s->tail = &s->head;
                failed = s->failed;
                pthread_mutex_unlock(&s->mu);
                sender_do(s, it, failed);
                free(it->sql);
                pthread_mutex_lock(&s->mu);
                if (it->kind == IT_DATA) {
                        it->b.len = 0;
                        s->spare[s->nspare++] = it->b;
                }
                free(it);
                pthread_cond_broadcast(&s->cv);
        }
        pthread_mutex_unlock(&s->mu);
        return NULL;
}

/* A sender for pg, its thread started; NULL: none (the caller sends). */
static struct ia_pg_sender *sender_start(struct ia_pg *pg)
{
        struct ia_pg_sender *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->pg = pg;
        s->tail = &s->head;
        if (pthread_mutex_init(&s->mu, NULL) != 0) {
                free(s);
                return NULL;
        }
        if (pthread_cond_init(&s->cv, NULL) != 0) {
                pthread_mutex_destroy(&s->mu);
                free(s);
                return NULL;
        }
        if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
                pthread_cond_destroy(&s->cv);
                pthread_mutex_destroy(&s->mu);
                free(s);
                return NULL;
        }
        return s;
}

/* The sender's failure into err; -1. */
static int sender_error(struct ia_pg_sender *s, struct ia_error *err)
{
        pthread_mutex_lock(&s->mu);
        if (err)
                *err = s->err;
        pthread_mutex_unlock(&s->mu);
        return -1;
}

/* Queue it (s->mu held). */
static void enqueue(struct ia_pg_sender *s, struct item *it)
{
        it->next = NULL;
        *s->tail = it;
        s->tail = &it->next;
        pthread_cond_broadcast(&s->cv);
}

/*
 * A free buffer of *cap bytes at least for the caller (s->mu held): a sent
 * one, a new one while fewer than NBUF exist, else the next one sent.
 * NULL: no memory, or the sender failed.
 */
static char *take_buffer(struct ia_pg_sender *s, size_t *cap)
{
        struct sbuf b;

        if (s->nspare == 0 && s->nbufs < NBUF) {
                char *p = malloc(*cap);

                if (p)
                        s->nbufs++;
                return p;
        }
        while (s->nspare == 0 && !s->failed)
                pthread_cond_wait(&s->cv, &s->mu);
        if (s->nspare == 0)
                return NULL;
        b = s->spare[--s->nspare];
        if (b.cap < *cap) {
                char *p = realloc(b.p, *cap);

                if (!p) {
                        free(b.p);
                        s->nbufs--;
                        return NULL;
                }
                b.p = p;
                b.cap = *cap;
        }
        *cap = b.cap;
        return b.p;
}

/*
 * Queue a COPY statement and give the caller a buffer (*buf, *cap); -1:
 * the sender failed before (err), or no memory.
 */
static int sender_begin(struct ia_pg_sender *s, const char *sql, char **buf, size_t *cap,
                        struct ia_error *err)
{
        struct item *it = calloc(1, sizeof(*it));
        char *copy = strdup(sql);
        bool failed;

        if (!it || !copy) {
                free(it);
                free(copy);
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        pthread_mutex_lock(&s->mu);
        if (s->failed) {
                pthread_mutex_unlock(&s->mu);
                free(it);
                free(copy);
                return sender_error(s, err);
        }
        it->kind = IT_BEGIN;
        it->sql = copy;
        enqueue(s, it);
        *buf = take_buffer(s, cap);
        failed = s->failed;
        pthread_mutex_unlock(&s->mu);
        if (!*buf)
                return failed ? sender_error(s, err)
                              : ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return 0;
}

/*
 * Queue the caller's buffer (*buf, *len bytes of *cap) and give the caller
 * a free one in its place (*buf NULL: no memory); -1: the sender failed,
 * -2: no memory to queue it.
 */
static int sender_put(struct ia_pg_sender *s, char **buf, size_t *len, size_t *cap)
{
        struct item *it = calloc(1, sizeof(*it));
        bool failed;

        if (!it)
                return -2; /* no memory: the caller's buffer stays its own */
        pthread_mutex_lock(&s->mu);
        if (s->failed) {
                pthread_mutex_unlock(&s->mu);
                free(it);
                return -1;
        }
        it->kind = IT_DATA;
        it->b = (struct sbuf){*buf, *len, *cap};
        enqueue(s, it);
        *buf = take_buffer(s, cap);
        failed = !*buf && s->failed;
        pthread_mutex_unlock(&s->mu);
        return failed ? -1 : 0;
}

/*
 * Queue the end of the COPY (ok false: abort it); the caller's buffer buf
 * becomes a spare.  -1: the sender failed already (the COPY's own result
 * is not waited for: the next ia_pg_sync says).
 */
static int sender_end(struct ia_pg_sender *s, bool ok, char *buf, size_t cap)
{
        struct item *it = calloc(1, sizeof(*it));
        bool failed;

        pthread_mutex_lock(&s->mu);
        if (buf) {
                s->spare[s->nspare++] = (struct sbuf){buf, 0, cap};
                pthread_cond_broadcast(&s->cv);
        }
        if (!it) { /* the COPY cannot be ended in order: the transaction fails */
                if (!s->failed)
                        ia_error_set(&s->err, IA_ERR_NOMEM, "out of memory");
                s->failed = true;
                pthread_mutex_unlock(&s->mu);
                return -1;
        }
        it->kind = IT_END;
        it->ok = ok;
        enqueue(s, it);
        failed = s->failed;
        pthread_mutex_unlock(&s->mu);
        return failed ? -1 : 0;
}

int ia_pg_sync(struct ia_pg *pg, struct ia_error *err)
{
        struct ia_pg_sender *s = pg->snd;
        bool failed;

        if (!s)
                return 0;
        pthread_mutex_lock(&s->mu);
        s->done = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        failed = s->failed;
        if (failed && err)
                *err = s->err;
        for (size_t i = 0; i < s->nspare; i++)
                free(s->spare[i].p);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        pg->snd = NULL;
        return failed ? -1 : 0;
}

/* ---- the binary format ---- */

/*
 * The binary format: a header, then per row a 16-bit field count and per
 * field a 32-bit length (-1: NULL) and its bytes (bigint: 8 bytes big
 * endian; uuid: 16 bytes; text: UTF-8; bytea: the bytes), then a trailer.
 * The server neither parses digits nor unescapes text: the COPY of the
 * layer runs costs it less than the text format did.
 */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static void put16(char *p, unsigned v)
{
        p[0] = (char)(v >> 8);
        p[1] = (char)v;
}

static void put32(char *p, uint32_t v)
{
        p[0] = (char)(v >> 24);
        p[1] = (char)(v >> 16);
        p[2] = (char)(v >> 8);
        p[3] = (char)v;
}

int ia_pg_copy_begin(struct ia_pg_copy *c, struct ia_pg *pg, const char *sql, struct ia_error *err)
{
        PGresult *res;
        const char *delay = getenv("IMGAUDIT_TEST_PUSH_DELAY_MS");

        memset(c, 0, sizeof(*c));
        c->pg = pg;
        c->first_col = true;
        c->flush_at = FLUSH_AT;
        if (delay && *delay) {
                c->delay_ms = (unsigned)strtoul(delay, NULL, 10);
                c->flush_at = 4096;
        }
        c->cap = c->flush_at + 65536;
        if (!pg->snd)
                pg->snd = sender_start(pg); /* NULL (no thread): the caller sends */
        if (pg->snd) {
                if (sender_begin(pg->snd, sql, &c->buf, &c->cap, err) < 0)
                        return -1;
        } else {
                res = PQexec(pg->conn, sql);
                if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
                        ia_pg_error(pg, res, "starting COPY", err);
                        PQclear(res);
                        return -1;
                }
                PQclear(res);
                c->buf = malloc(c->cap);
                if (!c->buf) {
                        PQputCopyEnd(pg->conn, "out of memory");
                        PQclear(PQgetResult(pg->conn));
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        memcpy(c->buf, copy_header, sizeof(copy_header));
        c->len = sizeof(copy_header);
        return 0;
}

static bool reserve(struct ia_pg_copy *c, size_t n)
{
        char *b;
        size_t nc;

        if (c->nomem)
                return false;
        n += 8; /* a row's field count, a field's length */
        if (c->len + n <= c->cap)
                return true;
        nc = (c->len + n) * 2;
        b = realloc(c->buf, nc);
        if (!b) {
                c->nomem = true;
                return false;
        }
        c->buf = b;
        c->cap = nc;
        return true;
}

/* Start a field (after reserve): the row's field count first, then the field's length. */
static void field(struct ia_pg_copy *c, int32_t len)
{
        if (c->first_col) {
                c->row_at = c->len;
                c->len += 2;
                c->nfields = 0;
                c->first_col = false;
        }
        c->nfields++;
        put32(c->buf + c->len, (uint32_t)len);
        c->len += 4;
}

void ia_pg_copy_int(struct ia_pg_copy *c, int64_t v)
{
        uint64_t u = (uint64_t)v;

        if (!reserve(c, 8))
                return;
        field(c, 8);
        for (int i = 7; i >= 0; i--)
                c->buf[c->len++] = (char)(u >> (8 * i));
}

void ia_pg_copy_null(struct ia_pg_copy *c)
{
        if (!reserve(c, 0))
                return;
        field(c, -1);
}

/*
 * A one-dimensional array of n elements (int8, or int2 when wide is false):
 * the header (dimensions, has-nulls flag, element type, size and lower
 * bound 1), then each element as a field of its own (length -1: NULL).
 */
static void copy_array(struct ia_pg_copy *c, const int64_t *v, const bool *null, size_t n,
                       bool wide)
{
        size_t esz = wide ? 8 : 2, at;
        bool any_null = false;

        if (n > 65536) {
                c->nomem = true;
                return;
        }
        for (size_t i = 0; null && i < n; i++)
                any_null |= null[i];
        if (!reserve(c, 20 + n * (4 + esz)))
                return;
        field(c, 0);
        at = c->len;
        put32(c->buf + c->len, 1);
        put32(c->buf + c->len + 4, any_null);
        put32(c->buf + c->len + 8, wide ? 20 : 21); /* int8, int2 */
        put32(c->buf + c->len + 12, (uint32_t)n);
        put32(c->buf + c->len + 16, 1);
        c->len += 20;
        for (size_t i = 0; i < n; i++) {
                uint64_t u = (uint64_t)v[i];

                if (null && null[i]) {
                        put32(c->buf + c->len, UINT32_MAX);
                        c->len += 4;
                        continue;
                }
                put32(c->buf + c->len, (uint32_t)esz);
                c->len += 4;
                for (int k = (int)esz - 1; k >= 0; k--)
                        c->buf[c->len++] = (char)(u >> (8 * k));
        }
        put32(c->buf + at - 4, (uint32_t)(c->len - at));
}

void ia_pg_copy_int_array(struct ia_pg_copy *c, const int64_t *v, const bool *null, size_t n)
{
        copy_array(c, v, null, n, true);
}

void ia_pg_copy_small_array(struct ia_pg_copy *c, const int64_t *v, size_t n)
{
        copy_array(c, v, NULL, n, false);
}

static int hexval(char ch)
{
        return ch >= '0' && ch <= '9'   ? ch - '0'
               : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
               : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                        : -1;
}

int ia_pg_copy_uuid(struct ia_pg_copy *c, const char *s)
{
        unsigned char u[16];
        size_t k = 0;

        for (const char *p = s; *p && k < 32; p++) {
                int h = hexval(*p);

                if (*p == '-')
                        continue;
                if (h < 0)
                        return -1;
                if (k % 2 == 0)
                        u[k / 2] = (unsigned char)(h << 4);
                else
                        u[k / 2] |= (unsigned char)h;
                k++;
        }
        if (k != 32)
                return -1;
        if (!reserve(c, 16))
                return 0;
        field(c, 16);
        memcpy(c->buf + c->len, u, 16);
        c->len += 16;
        return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
        size_t k = s[0] < 0x80                    ? 1
                   : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                   : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                   : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                                  : 0;

        if (k == 0 || k > n || s[0] == 0)
                return 0;
        return ia_utf8_valid((const char *)s, k) ? k : 0;
}

void ia_pg_copy_text(struct ia_pg_copy *c, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        size_t at;

        if (n > (size_t)INT32_MAX / 4 - 16) {
                c->nomem = true;
                return;
        }
        if (!reserve(c, 4 * n))
                return;
        field(c, 0);
        at = c->len;
        for (size_t i = 0; i < n;) {
                size_t k = utf8_len(p + i, n - i);

                if (k == 0) { /* the byte as the four characters \xNN */
                        c->buf[c->len++] = '\\';
                        c->buf[c->len++] = 'x';
                        c->buf[c->len++] = hex[p[i] >> 4];
                        c->buf[c->len++] = hex[p[i] & 15];
                        i++;
                        continue;
                }
                memcpy(c->buf + c->len, p + i, k);
                c->len += k;
                i += k;
        }
        put32(c->buf + at - 4, (uint32_t)(c->len - at));
}

void ia_pg_copy_bytea(struct ia_pg_copy *c, const void *p, size_t n)
{
        if (n > (size_t)INT32_MAX - 16) {
                c->nomem = true;
                return;
        }
        if (!reserve(c, n))
                return;
        field(c, (int32_t)n);
        memcpy(c->buf + c->len, p, n);
        c->len += n;
}

/* Hand the buffer to the sender (or send it); the next rows go to a free buffer. */
static int flush(struct ia_pg_copy *c, struct ia_error *err)
{
        if (c->len == 0)
                return 0;
        if (c->pg->snd) {
                int rc = sender_put(c->pg->snd, &c->buf, &c->len, &c->cap);

                if (rc == -2) {
                        c->nomem = true;
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
                if (rc < 0) {
                        c->failed = true;
                        return sender_error(c->pg->snd, err);
                }
        } else if (PQputCopyData(c->pg->conn, c->buf, (int)c->len) != 1) {
                c->failed = true;
                return ia_pg_error(c->pg, NULL, "sending COPY data", err);
        }
        c->bytes += c->len;
        c->len = 0;
        if (!c->buf) {
                c->nomem = true;
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        if (c->delay_ms) {
                struct timespec ts = {c->delay_ms / 1000, (long)(c->delay_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
        }
        return 0;
}

int ia_pg_copy_end_row(struct ia_pg_copy *c, struct ia_error *err)
{
        if (c->nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (c->first_col) /* a row without fields: none is ever sent */
                return 0;
        put16(c->buf + c->row_at, c->nfields);
        c->first_col = true;
        c->rows++;
        if (c->len >= c->flush_at)
                return flush(c, err);
        return 0;
}

int ia_pg_copy_end(struct ia_pg_copy *c, bool ok, struct ia_error *err)
{
        PGresult *res;
        int ret = 0;

        if (ok && !c->failed && reserve(c, 2)) {
                put16(c->buf + c->len, 0xffff); /* the trailer */
                c->len += 2;
        } else {
                ok = false;
        }
        if (ok && !c->failed && flush(c, err) < 0)
                ok = false;
        if (c->pg->snd) { /* the sender ends it; its result is checked by ia_pg_sync */
                struct ia_pg_sender *snd = c->pg->snd;

                ok = ok && !c->failed;
                ret = sender_end(snd, ok, c->buf, c->cap);
                c->buf = NULL;
                if (ret < 0 && ok)
                        sender_error(snd, err);
                return ok ? ret : -1;
        }
        if (PQputCopyEnd(c->pg->conn, ok && !c->failed ? NULL : "imgaudit push stopped") != 1 &&
            ok) {
                ia_pg_error(c->pg, NULL, "ending COPY", err);
                ok = false;
                ret = -1;
        }
        while ((res = PQgetResult(c->pg->conn)) != NULL) {
                if (PQresultStatus(res) != PGRES_COMMAND_OK && ok && ret == 0)
                        ret = ia_pg_error(c->pg, res, "COPY", err);
                PQclear(res);
        }
        free(c->buf);
        c->buf = NULL;
        return ok ? ret : -1;
}
