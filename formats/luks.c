/*
 * luks: a raw LUKS container (an encrypted disk with no image format
 * inside), mapped as qemu's luks driver maps it: qemu has no block status
 * for it, so the whole payload is one run of data without a host offset
 * (and human output refuses it).  Only the header is parsed; no key is
 * ever derived and nothing is decrypted.
 *
 * Layout: LUKS1 (big-endian, the LUKS1 on-disk format specification): a
 * 592-byte header (magic "LUKS\xba\xbe", version 1, cipher name and mode,
 * hash, payload offset in 512-byte sectors, key length, master key digest,
 * UUID) with 8 key slots of 48 bytes (state, iterations, salt, key material
 * offset in sectors, stripes).  LUKS2 (the LUKS2 on-disk format
 * specification): a 4096-byte binary header (magic, version 2, header size,
 * ...) followed by a JSON area whose "segments" object gives the payload
 * offset and size in bytes (as decimal strings; "dynamic" size = to EOF).
 *
 * Virtual size: the file's length (rounded up to 512) minus the payload
 * offset, rounded up to 512, as qemu computes it.
 *
 * Not supported / different from qemu: qemu 7.2 knows only LUKS1: it does
 * not probe a LUKS2 header (it takes such a file for raw) and refuses it
 * with -f luks.  We do not probe LUKS2 either, but map it with -f luks.
 * qemu needs the passphrase to open the container at all; we do not.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "banned.h"

#define LUKS_MAGIC         "LUKS\xba\xbe"
#define LUKS_MAGIC_LEN     6u
#define LUKS1_HEADER_LEN   592u
#define LUKS_SECTOR        512u
#define LUKS_SLOTS         8u
#define LUKS_SLOT_ENABLED  0x00ac71f3u
#define LUKS_SLOT_DISABLED 0x0000deadu
#define LUKS_STRIPES       4000u
#define LUKS_SLOT_ALIGN    8u /* key material is aligned to 4096 bytes */
#define LUKS2_BIN_LEN      4096u
#define LUKS2_HDR_MAX      (4u << 20)
#define LUKS_JSON_DEPTH    32

static int luks_probe(const struct ia_probe *p)
{
        /* qemu probes a zero-padded buffer: only magic and version must be there. */
        if (p->head_len < 8)
                return 0;
        if (memcmp(p->head, LUKS_MAGIC, LUKS_MAGIC_LEN))
                return 0;
        /* qemu recognises LUKS1 only: a LUKS2 container is raw to it. */
        return ia_be16(p->head + 6) == 1 ? 100 : 0;
}

static int luks1_payload(const uint8_t *h, uint64_t *payload, struct ia_error *err)
{
        static const char *const names[] = {"cipher name", "cipher mode", "hash spec"};
        uint64_t payload_sectors = ia_be32(h + 104);
        uint64_t key_bytes = ia_be32(h + 108);
        uint64_t start[LUKS_SLOTS], len[LUKS_SLOTS];
        unsigned i, j;

        for (i = 0; i < 3; i++)
                if (!memchr(h + 8 + 32 * i, '\0', 32))
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "luks: header %s is not NUL terminated", names[i]);
        for (i = 0; i < LUKS_SLOTS; i++) {
                const uint8_t *k = h + 208 + 48 * i;
                uint32_t active = ia_be32(k), stripes = ia_be32(k + 44);

                if (stripes != LUKS_STRIPES)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "luks: key slot %u has %u stripes (expected %u)", i,
                                            stripes, LUKS_STRIPES);
                if (active != LUKS_SLOT_ENABLED && active != LUKS_SLOT_DISABLED)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "luks: key slot %u state 0x%08x is invalid", i, active);
                start[i] = ia_be32(k + 40);
                len[i] = (key_bytes * stripes + LUKS_SECTOR - 1) / LUKS_SECTOR;
                len[i] = ia_round_up(len[i], LUKS_SLOT_ALIGN);
                if (start[i] < (LUKS1_HEADER_LEN + LUKS_SECTOR - 1) / LUKS_SECTOR)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "luks: key slot %u (sector %llu) overlaps the header",
                                            i, (unsigned long long)start[i]);
                if (start[i] + len[i] > payload_sectors)
                        return ia_error_set(
                            err, IA_ERR_CORRUPT,
                            "luks: key slot %u (sectors %llu+%llu) overlaps the payload "
                            "at sector %llu",
                            i, (unsigned long long)start[i], (unsigned long long)len[i],
                            (unsigned long long)payload_sectors);
        }
        for (i = 0; i < LUKS_SLOTS; i++)
                for (j = i + 1; j < LUKS_SLOTS; j++)
                        if (start[i] < start[j] + len[j] && start[j] < start[i] + len[i])
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "luks: key slots %u and %u overlap", i, j);
        *payload = payload_sectors * LUKS_SECTOR;
        return 0;
}

/* A bounded reader of just enough JSON to find the LUKS2 segments. */
struct json {
        const char *p, *end;
};

static void js_ws(struct json *j)
{
        while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
                j->p++;
}

static bool js_lit(struct json *j, char c)
{
        js_ws(j);
        if (j->p < j->end && *j->p == c) {
                j->p++;
                return true;
        }
        return false;
}

/* A string's raw contents (escapes left as they are). */
static bool js_string(struct json *j, const char **s, size_t *len)
{
        if (!js_lit(j, '"'))
                return false;
        *s = j->p;
        while (j->p < j->end && *j->p != '"') {
                if (*j->p == '\\' && ++j->p == j->end)
                        return false;
                j->p++;
        }
        if (j->p == j->end)
                return false;
        *len = (size_t)(j->p - *s);
        j->p++;
        return true;
}

static bool js_skip(struct json *j, int depth)
{
        const char *s;
        size_t n;

        if (depth > LUKS_JSON_DEPTH)
                return false;
        js_ws(j);
        if (j->p == j->end)
                return false;
        if (*j->p == '"')
                return js_string(j, &s, &n);
        if (*j->p == '{' || *j->p == '[') {
                char close = *j->p == '{' ? '}' : ']';
                bool obj = close == '}';

                j->p++;
                if (js_lit(j, close))
                        return true;
                do {
                        if (obj && (!js_string(j, &s, &n) || !js_lit(j, ':')))
                                return false;
                        if (!js_skip(j, depth + 1))
                                return false;
                } while (js_lit(j, ','));
                return js_lit(j, close);
        }
        /* A number or a literal. */
        s = j->p;
        while (j->p < j->end && strchr("+-.0123456789eEtrufalsn", *j->p))
                j->p++;
        return j->p > s;
}

static bool js_key_is(const char *s, size_t n, const char *key)
{
        return n == strlen(key) && !memcmp(s, key, n);
}

/* A decimal string of at most 19 digits. */
static bool js_decimal(const char *s, size_t n, uint64_t *v)
{
        if (n == 0 || n > 19)
                return false;
        *v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                *v = *v * 10 + (uint64_t)(s[i] - '0');
        }
        return true;
}

/*
 * One segment object: its "offset" and "size" ("dynamic": *size =
 * UINT64_MAX).  Other members are skipped.
 */
static bool js_segment(struct json *j, uint64_t *off, uint64_t *size)
{
        bool have_off = false, have_size = false;
        const char *k, *v;
        size_t kn, vn;

        if (!js_lit(j, '{'))
                return false;
        if (!js_lit(j, '}')) {
                do {
                        if (!js_string(j, &k, &kn) || !js_lit(j, ':'))
                                return false;
                        if (js_key_is(k, kn, "offset") || js_key_is(k, kn, "size")) {
                                bool is_off = kn == 6 && k[0] == 'o';

                                if (!js_string(j, &v, &vn))
                                        return false;
                                if (is_off) {
                                        have_off = js_decimal(v, vn, off);
                                } else if (js_key_is(v, vn, "dynamic")) {
                                        *size = UINT64_MAX;
                                        have_size = true;
                                } else {
                                        have_size = js_decimal(v, vn, size);
                                }
                        } else if (!js_skip(j, 2)) {
                                return false;
                        }
                } while (js_lit(j, ','));
                if (!js_lit(j, '}'))
                        return false;
        }
        return have_off && have_size;
}

/* The segment with the lowest numeric id. */
static int luks2_segments(struct json *j, uint64_t *off, uint64_t *size, struct ia_error *err)
{
        uint64_t best = UINT64_MAX, id = 0, so = 0, ss = 0;
        const char *k;
        size_t kn;
        bool found = false;

        if (!js_lit(j, '{'))
                goto bad;
        if (js_lit(j, '}'))
                goto none;
        do {
                if (!js_string(j, &k, &kn) || !js_lit(j, ':') || !js_decimal(k, kn, &id) ||
                    !js_segment(j, &so, &ss))
                        goto bad;
                if (!found || id < best) {
                        found = true;
                        best = id;
                        *off = so;
                        *size = ss;
                }
        } while (js_lit(j, ','));
        if (!js_lit(j, '}'))
                goto bad;
        if (found)
                return 0;
none:
        return ia_error_set(err, IA_ERR_CORRUPT, "luks: the LUKS2 metadata has no segment");
bad:
        return ia_error_set(err, IA_ERR_CORRUPT, "luks: malformed LUKS2 segments object");
}

static int luks2_payload(struct ia_source *src, const uint8_t *h, uint64_t *off, uint64_t *size,
                         struct ia_error *err)
{
        uint64_t hdr_size = ia_be64(h + 8);
        struct json j;
        const char *k;
        size_t kn, jlen;
        char *buf;
        int r = -1;

        if (hdr_size <= LUKS2_BIN_LEN || hdr_size > LUKS2_HDR_MAX)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "luks: LUKS2 header size %llu is not in (%u, %u]",
                                    (unsigned long long)hdr_size, LUKS2_BIN_LEN, LUKS2_HDR_MAX);
        jlen = (size_t)(hdr_size - LUKS2_BIN_LEN);
        buf = malloc(jlen);
        if (!buf)
                return ia_error_set(err, IA_ERR_NOMEM, "luks: out of memory");
        if (ia_read(src, buf, jlen, LUKS2_BIN_LEN, "luks2 json area", err) < 0)
                goto free_buf;
        j.p = buf;
        j.end = buf + jlen;
        /* The area is NUL-padded after the JSON text. */
        {
                const char *nul = memchr(buf, '\0', jlen);

                if (nul)
                        j.end = nul;
        }
        if (!js_lit(&j, '{'))
                goto bad;
        do {
                if (!js_string(&j, &k, &kn) || !js_lit(&j, ':'))
                        goto bad;
                if (js_key_is(k, kn, "segments")) {
                        r = luks2_segments(&j, off, size, err);
                        goto free_buf;
                }
                if (!js_skip(&j, 1))
                        goto bad;
        } while (js_lit(&j, ','));
        ia_error_set(err, IA_ERR_CORRUPT, "luks: the LUKS2 metadata has no segments");
        goto free_buf;
bad:
        ia_error_set(err, IA_ERR_CORRUPT, "luks: malformed LUKS2 JSON metadata");
free_buf:
        free(buf);
        return r;
}

static int luks_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint8_t h[LUKS1_HEADER_LEN];
        uint64_t payload = 0, size = UINT64_MAX, avail;
        unsigned version;

        if (ia_read(src, h, sizeof(h), 0, "luks header", err) < 0)
                return -1;
        if (memcmp(h, LUKS_MAGIC, LUKS_MAGIC_LEN))
                return ia_error_set(err, IA_ERR_CORRUPT, "luks: bad magic");
        version = ia_be16(h + 6);
        if (version == 1) {
                if (luks1_payload(h, &payload, err) < 0)
                        return -1;
        } else if (version == 2) {
                if (luks2_payload(src, h, &payload, &size, err) < 0)
                        return -1;
        } else {
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "luks: version %u is not supported",
                                    version);
        }
        if (payload > img->file->len)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "luks: payload offset %llu lies past the end of the file (%llu "
                                    "bytes)",
                                    (unsigned long long)payload,
                                    (unsigned long long)img->file->len);
        avail = img->file->len - payload;
        if (size != UINT64_MAX && size < avail)
                avail = size;
        img->size = ia_round_up(avail, 512);
        img->flags |= IA_IMG_ENCRYPTED;
        img->cow = false;
        return 0;
}

const struct ia_driver ia_drv_luks = {
    .name = "luks",
    .flags = 0,
    .probe = luks_probe,
    .open = luks_open,
    .block_status = NULL, /* qemu has none: all data, no offset */
    .close = ia_close_priv,
};
