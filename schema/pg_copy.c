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
 * The sender is the only user of the connection from the start of the
 * thread to its join (in ia_pg_copy_end, or on a failed send); every
 * other libpq call (PQputCopyEnd, the result, errors) is the caller's,
 * after the join.  A failed PQputCopyData stops the sending; the caller
 * sees it at its next flush or at the end.
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

struct ia_pg_sender {
        PGconn *conn;
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct sbuf queue[NBUF]; /* to send, in order: [head, head + nq) */
        size_t head, nq;
        struct sbuf spare[NBUF]; /* sent, free for the caller */
        size_t nspare, nbufs;    /* nbufs: buffers that exist */
        bool done, failed;
};

static void *sender_main(void *arg)
{
        struct ia_pg_sender *s = arg;

        pthread_mutex_lock(&s->mu);
        for (;;) {
                struct sbuf b;
                bool failed;

                while (s->nq == 0 && !s->done)
                        pthread_cond_wait(&s->cv, &s->mu);
                if (s->nq == 0)
                        break;
                b = s->queue[s->head];
                failed = s->failed;
                pthread_mutex_unlock(&s->mu);
                /* after a failure, what is queued is only given back */
                if (!failed && PQputCopyData(s->conn, b.p, (int)b.len) != 1)
                        failed = true;
                pthread_mutex_lock(&s->mu);
                s->failed |= failed;
                s->head = (s->head + 1) % NBUF;
                s->nq--;
                b.len = 0;
                s->spare[s->nspare++] = b;
                pthread_cond_broadcast(&s->cv);
        }
        pthread_mutex_unlock(&s->mu);
        return NULL;
}

/* A sender for conn, its thread started; NULL: none (the caller sends). */
static struct ia_pg_sender *sender_start(PGconn *conn)
{
        struct ia_pg_sender *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->conn = conn;
        s->nbufs = 1; /* the caller's */
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

/*
 * Queue the caller's buffer (*buf, *len bytes of *cap) and give the caller
 * a free one in its place (*buf NULL: no memory); -1: a send failed.
 */
static int sender_put(struct ia_pg_sender *s, char **buf, size_t *len, size_t *cap)
{
        struct sbuf b = {*buf, *len, *cap};
        int ret = 0;

        pthread_mutex_lock(&s->mu);
        while (s->nq == NBUF && !s->failed)
                pthread_cond_wait(&s->cv, &s->mu);
        if (s->failed) {
                ret = -1;
                goto out;
        }
        s->queue[(s->head + s->nq) % NBUF] = b;
        s->nq++;
        pthread_cond_broadcast(&s->cv);
        *buf = NULL;
        /* a new buffer while fewer than NBUF exist, else wait for a sent one */
        if (s->nspare == 0 && s->nbufs < NBUF) {
                s->nbufs++;
                pthread_mutex_unlock(&s->mu);
                *buf = malloc(*cap);
                return 0;
        }
        while (s->nspare == 0 && !s->failed)
                pthread_cond_wait(&s->cv, &s->mu);
        if (s->nspare == 0) {
                ret = -1;
                goto out;
        }
        b = s->spare[--s->nspare];
        *buf = b.p;
        *cap = b.cap;
out:
        pthread_mutex_unlock(&s->mu);
        return ret;
}

/*
 * Let the sender send what is queued, join it and free it; the caller's
 * buffer stays.  -1: a send failed (the connection's error says why).
 */
static int sender_stop(struct ia_pg_copy *c)
{
        struct ia_pg_sender *s = c->snd;
        bool failed;

        if (!s)
                return 0;
        pthread_mutex_lock(&s->mu);
        s->done = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        failed = s->failed;
        for (size_t i = 0; i < s->nspare; i++)
                free(s->spare[i].p);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        c->snd = NULL;
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
        res = PQexec(pg->conn, sql);
        if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
                ia_pg_error(pg, res, "starting COPY", err);
                PQclear(res);
                return -1;
        }
        PQclear(res);
        c->cap = c->flush_at + 65536;
        c->buf = malloc(c->cap);
        if (!c->buf) {
                PQputCopyEnd(pg->conn, "out of memory");
                PQclear(PQgetResult(pg->conn));
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        memcpy(c->buf, copy_header, sizeof(copy_header));
        c->len = sizeof(copy_header);
        c->snd = sender_start(pg->conn); /* NULL (no thread): the caller sends */
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
        if (c->snd) {
                if (sender_put(c->snd, &c->buf, &c->len, &c->cap) < 0) {
                        c->failed = true;
                        sender_stop(c);
                        return ia_pg_error(c->pg, NULL, "sending COPY data", err);
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
        /* the connection is the caller's again once everything queued went out */
        if (c->snd && sender_stop(c) < 0 && ok) {
                c->failed = true;
                ok = false;
                ret = ia_pg_error(c->pg, NULL, "sending COPY data", err);
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
