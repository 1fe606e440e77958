/*
 * libarchive as the archive reader sees it: our read, seek and skip
 * callbacks, the readers (one stage, or two with a compression filter), how a
 * libarchive failure is told apart (I/O, truncation, corruption), and the
 * caps on one walk.
 *
 * Reading: libarchive reads the archive source through our read, seek and
 * skip callbacks, so an uncompressed archive is never read where it is only
 * skipped, and a truncated or failing source is told apart from a corrupt one.
 * Only tar (ustar, pax, GNU) and zip are enabled, and only the gzip, xz, zstd
 * and bzip2 filters libarchive has built in (never an external program).
 *
 * Bounds: every regular member of a compressed stream costs decompression even
 * when it is skipped, so skipping reads through the data with the same checks
 * as spooling: total decompressed bytes and the ratio of decompressed bytes to
 * archive bytes read (after a small slack, since tiny members compress well).
 * A member's headers are capped too (arc_header_over_cap()): a compressed
 * stream is read in two stages, a raw reader that decompresses feeding the
 * format reader, so that the cap counts decompressed bytes.
 */
#define _GNU_SOURCE
#include "archive_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "banned.h"

/*
 * libarchive holds the whole sparse map of a GNU sparse member in memory (48
 * bytes per entry, from 4 bytes of map text), with no cap of its own, before
 * it returns the header.  What the format has consumed since the header
 * began bounds that: checked whenever the format asks for more bytes, that is
 * every READ_BLOCK bytes of a plain archive and every block the decompressor
 * gives out (64 to 128 KiB) of a compressed one.  This is why a compressed
 * archive is read in two stages: the decompressor's output is what the
 * format reads, so what it consumes is counted in decompressed bytes.  Only
 * a format that reads its headers in sequence (tar) is counted: zip seeks to
 * its central directory and to each member, and its headers are small.
 */
bool arc_header_over_cap(struct walk *w)
{
        if (!w->in_header || w->header_seeks ||
            (uint64_t)archive_filter_bytes(w->ar, 0) - w->header_start <= w->lim.max_header)
                return false;
        w->header_capped = true;
        archive_set_error(w->ar, ERANGE, "a member's headers are over the cap");
        return true;
}

static la_ssize_t cb_read(struct archive *ar, void *data, const void **out)
{
        struct walk *w = data;
        size_t want =
            READ_BLOCK - (size_t)(w->pos % READ_BLOCK); /* aligned: headers rarely straddle */
        int64_t n;

        if (ar == w->ar && arc_header_over_cap(w))
                return ARCHIVE_FATAL;
        *out = w->buf;
        n = ia_read_upto(w->a->src, w->buf, want, w->pos, &w->io_err);
        if (n < 0) {
                w->io_failed = true;
                archive_set_error(ar, EIO, "%s", ia_error_msg(&w->io_err));
                return ARCHIVE_FATAL;
        }
        if ((size_t)n < want)
                w->eof_hit = true;
        w->pos += (uint64_t)n;
        w->raw_read += (uint64_t)n;
        return (la_ssize_t)n;
}

static la_int64_t cb_seek(struct archive *ar, void *data, la_int64_t off, int whence)
{
        struct walk *w = data;

        if (w->in_header)
                w->header_seeks = true;
        int64_t base = whence == SEEK_SET   ? 0
                       : whence == SEEK_CUR ? (int64_t)w->pos
                                            : (int64_t)w->a->src->size;

        if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off)) {
                archive_set_error(ar, EINVAL, "seek to an impossible offset");
                return ARCHIVE_FATAL;
        }
        w->pos = (uint64_t)(base + off);
        return (la_int64_t)w->pos;
}

static la_int64_t cb_skip(struct archive *ar, void *data, la_int64_t request)
{
        struct walk *w = data;
        uint64_t left = w->pos < w->a->src->size ? w->a->src->size - w->pos : 0;
        uint64_t n;

        (void)ar;
        if (request <= 0)
                return 0;
        n = ia_min_u64((uint64_t)request, left);
        if (n < (uint64_t)request)
                w->eof_hit = true;
        w->pos += n;
        return (la_int64_t)n;
}

/* A libarchive status that is neither success nor a mere warning (EOF is handled first). */
bool arc_la_failed(int r)
{
        return r != ARCHIVE_OK && r != ARCHIVE_WARN;
}

/* The format reader's input when there is a compression filter: the decompressed stream. */
static la_ssize_t cb_read_decompressed(struct archive *ar, void *data, const void **out)
{
        struct walk *w = data;
        const void *buf;
        size_t len;
        la_int64_t off;
        int r;

        if (arc_header_over_cap(w))
                return ARCHIVE_FATAL;
        r = archive_read_data_block(w->dec, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
                return 0;
        if (arc_la_failed(r)) {
                const char *m = archive_error_string(w->dec);

                archive_set_error(ar, archive_errno(w->dec), "%s",
                                  m ? m : "unknown decompression error");
                return ARCHIVE_FATAL;
        }
        *out = buf;
        return (la_ssize_t)len;
}

const char *arc_la_msg(struct walk *w)
{
        const char *m = archive_error_string(w->ar);

        return m ? m : "unknown libarchive error";
}

/* What a libarchive failure most likely was. */
enum ia_errcat arc_la_cat(const struct walk *w)
{
        if (w->io_failed)
                return IA_ERR_IO;
        if (w->eof_hit)
                return IA_ERR_TRUNCATED;
        return IA_ERR_CORRUPT;
}

int arc_check_bomb(struct walk *w, struct ia_archive_member *m, struct ia_error *err)
{
        uint64_t raw = w->raw_read ? w->raw_read : 1;

        if (w->produced > w->lim.max_decompressed)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "member '%s': %llu bytes decompressed exceed the cap of %llu "
                                    "bytes",
                                    m->name, (unsigned long long)w->produced,
                                    (unsigned long long)w->lim.max_decompressed);
        if (w->produced > RATIO_SLACK && w->produced / raw > w->lim.max_ratio)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "member '%s': decompression ratio %llu:1 (%llu bytes from "
                                    "%llu) exceeds the cap of %llu:1",
                                    m->name, (unsigned long long)(w->produced / raw),
                                    (unsigned long long)w->produced, (unsigned long long)raw,
                                    (unsigned long long)w->lim.max_ratio);
        return 0;
}

void arc_limits_resolve(const struct ia_archive_limits *in, struct ia_archive_limits *out)
{
        memset(out, 0, sizeof(*out));
        if (in)
                *out = *in;
        if (!out->max_members)
                out->max_members = DEFAULT_MAX_MEMBERS;
        if (!out->spool_budget)
                out->spool_budget = DEFAULT_SPOOL_BUDGET;
        if (!out->spool_memory)
                out->spool_memory = DEFAULT_SPOOL_MEMORY;
        if (!out->max_ratio)
                out->max_ratio = DEFAULT_MAX_RATIO;
        if (!out->max_nesting)
                out->max_nesting = DEFAULT_MAX_NESTING;
        if (!out->max_name)
                out->max_name = DEFAULT_MAX_NAME;
        if (!out->name_budget)
                out->name_budget = DEFAULT_NAME_BUDGET;
        if (!out->max_header)
                out->max_header = DEFAULT_MAX_HEADER;
        if (!out->max_decompressed && !ia_mul_ok(out->spool_budget, 4, &out->max_decompressed))
                out->max_decompressed = UINT64_MAX;
}

static void la_formats(struct archive *ar)
{
        archive_read_support_format_tar(ar);
        archive_read_support_format_gnutar(ar);
        archive_read_support_format_zip(ar);
}

/*
 * A reader of the archive source: the formats and filters wanted, or (raw)
 * only the filters, giving the decompressed stream as one entry.
 */
struct archive *arc_la_new(struct walk *w, bool raw)
{
        struct archive *ar = archive_read_new();

        if (!ar)
                return NULL;
        if (raw)
                archive_read_support_format_raw(ar);
        else
                la_formats(ar);
        /* Only the decompressors built in: never an external program. */
        if (archive_zlib_version())
                archive_read_support_filter_gzip(ar);
        if (archive_liblzma_version())
                archive_read_support_filter_xz(ar);
        if (archive_libzstd_version())
                archive_read_support_filter_zstd(ar);
        if (archive_bzlib_version())
                archive_read_support_filter_bzip2(ar);
        archive_read_set_read_callback(ar, cb_read);
        archive_read_set_seek_callback(ar, cb_seek);
        archive_read_set_skip_callback(ar, cb_skip);
        archive_read_set_callback_data(ar, w);
        return ar;
}

void arc_la_free(struct walk *w)
{
        archive_read_free(w->ar);
        archive_read_free(w->dec);
        w->ar = w->dec = NULL;
}

/*
 * With a compression filter, read again from the start in two stages: a raw
 * reader decompresses, and the format reader (no filter) reads its output.
 * 0; -1 with libarchive's message in w->ar, else in w->dec; -2 out of memory.
 */
int arc_la_reopen_in_stages(struct walk *w)
{
        struct archive_entry *entry;

        arc_la_free(w);
        w->pos = 0;
        w->raw_read = 0;
        w->eof_hit = false;
        w->dec = arc_la_new(w, true);
        if (!w->dec)
                return -2;
        if (archive_read_open1(w->dec) != ARCHIVE_OK ||
            archive_read_next_header(w->dec, &entry) != ARCHIVE_OK)
                return -1;
        w->ar = archive_read_new();
        if (!w->ar)
                return -2;
        la_formats(w->ar);
        archive_read_set_read_callback(w->ar, cb_read_decompressed);
        archive_read_set_callback_data(w->ar, w);
        return archive_read_open1(w->ar) == ARCHIVE_OK ? 0 : -1;
}

/* ---- the API ---- */

bool ia_archive_probe(const uint8_t *h, size_t len)
{
        static const uint8_t bz_block[] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
        static const uint8_t bz_eos[] = {0x17, 0x72, 0x45, 0x38, 0x50, 0x90};
        uint64_t want = 0, sum = 0;
        int64_t ssum = 0;
        size_t i;

        if (len >= 3 && h[0] == 0x1f && h[1] == 0x8b && h[2] == 8)
                return true; /* gzip, deflate */
        if (len >= 6 && memcmp(h,
                               "\xfd"
                               "7zXZ\0",
                               6) == 0)
                return true;
        if (len >= 4 && memcmp(h, "\x28\xb5\x2f\xfd", 4) == 0)
                return true;
        if (len >= 10 && memcmp(h, "BZh", 3) == 0 && h[3] >= '1' && h[3] <= '9' &&
            (memcmp(h + 4, bz_block, 6) == 0 || memcmp(h + 4, bz_eos, 6) == 0))
                return true;
        if (len >= 4 && h[0] == 'P' && h[1] == 'K' &&
            ((h[2] == 3 && h[3] == 4) || (h[2] == 5 && h[3] == 6)))
                return true;
        if (len < 512)
                return false;
        /* tar: the header checksum (octal, NUL- or space-terminated) must hold. */
        for (i = 148; i < 156 && h[i] == ' '; i++)
                ;
        if (i == 156 || h[i] < '0' || h[i] > '7')
                return false;
        for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
                want = want * 8 + (uint64_t)(h[i] - '0');
        if (i < 156 && h[i] != ' ' && h[i] != '\0')
                return false;
        for (i = 0; i < 512; i++) {
                uint8_t c = i >= 148 && i < 156 ? ' ' : h[i];

                sum += c;
                ssum += (int8_t)c;
        }
        if (sum != want && (ssum < 0 || (uint64_t)ssum != want))
                return false;
        if (memcmp(h + 257, "ustar", 5) == 0)
                return true;
        /* A pre-POSIX header: a name and a known type. */
        return h[0] != '\0' && (h[156] == '\0' || (h[156] >= '0' && h[156] <= '7'));
}
