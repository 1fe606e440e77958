/*
 * VHDX metadata: the region table (where the BAT and the metadata region
 * lie), the metadata table and the items the driver needs (file parameters,
 * virtual disk size, sector sizes), and the parent locator of a
 * differencing disk (the parent's path and its data write GUID).  See vhdx.c
 * for the layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "vhdxlog.h"
#include "vhdx_int.h"
#include "banned.h"

struct vhdx_guid {
        uint32_t d1;
        uint16_t d2, d3;
        uint8_t d4[8];
};

static const struct vhdx_guid vhdx_bat_guid = {
    0x2dc27766, 0xf623, 0x4200, {0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08}};
static const struct vhdx_guid vhdx_meta_guid = {
    0x8b7ca206, 0x4790, 0x4b9a, {0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e}};
static const struct vhdx_guid vhdx_params_guid = {
    0xcaa16737, 0xfa36, 0x4d43, {0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b}};
static const struct vhdx_guid vhdx_size_guid = {
    0x2fa54224, 0xcd1b, 0x4876, {0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8}};
static const struct vhdx_guid vhdx_lss_guid = {
    0x8141bf1d, 0xa96f, 0x4709, {0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f}};
static const struct vhdx_guid vhdx_pss_guid = {
    0xcda348c7, 0x445d, 0x4471, {0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56}};
static const struct vhdx_guid vhdx_diskid_guid = {
    0xbeca12ab, 0xb2e6, 0x4523, {0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46}};
static const struct vhdx_guid vhdx_locator_guid = {
    0xa8d35f2d, 0xb30b, 0x454d, {0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c}};
static const struct vhdx_guid vhdx_loctype_guid = {
    0xb04aefb7, 0xd19e, 0x4a81, {0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13}};

/* The checksum of buf with its 4-byte checksum field at 4 taken as zero. */
bool vhdx_crc_ok(uint8_t *buf, size_t len)
{
        uint32_t want = ia_le32(buf + 4);
        bool ok;

        memset(buf + 4, 0, 4);
        ok = ia_vhdx_crc32c(buf, len) == want;
        buf[4] = (uint8_t)want;
        buf[5] = (uint8_t)(want >> 8);
        buf[6] = (uint8_t)(want >> 16);
        buf[7] = (uint8_t)(want >> 24);
        return ok;
}

static bool vhdx_guid_eq(const uint8_t *p, const struct vhdx_guid *g)
{
        return ia_le32(p) == g->d1 && ia_le16(p + 4) == g->d2 && ia_le16(p + 6) == g->d3 &&
               memcmp(p + 8, g->d4, 8) == 0;
}

/* Is the UTF-16LE key k[0..klen) the ASCII string s? */
static bool vhdx_key_is(const uint8_t *k, size_t klen, const char *s)
{
        size_t n = strlen(s);

        if (klen != 2 * n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (ia_le16(k + 2 * i) != (uint8_t)s[i])
                        return false;
        return true;
}

/* The parent's name from a parent locator item loc[0..len). */
int vhdx_parse_locator(struct ia_image *img, const uint8_t *loc, uint32_t len, struct ia_error *err)
{
        static const char *const keys[] = {"relative_path", "absolute_win32_path", "volume_path"};
        unsigned count;
        char *name;
        int ret = 0;

        if (len < 20)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: parent locator of %u bytes is shorter than its header",
                                    len);
        if (!vhdx_guid_eq(loc, &vhdx_loctype_guid))
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vhdx: parent locator type is not the VHDX locator type");
        count = ia_le16(loc + 18);
        if (20 + (uint64_t)count * 12 > len)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: parent locator key/value count %u overruns the "
                                    "locator (%u bytes)",
                                    count, len);
        name = malloc(VHDX_MAX_LOCATOR * 2 + 1);
        if (!name)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for a parent name");
        /* parent_linkage (and parent_linkage2): the parent's data write GUID. */
        for (unsigned i = 0; i < count; i++) {
                const uint8_t *e = loc + 20 + 12 * i;
                uint32_t ko = ia_le32(e), vo = ia_le32(e + 4);
                uint16_t kl = ia_le16(e + 8), vl = ia_le16(e + 10);
                int which;
                char v[IA_IDENT_LEN - 5];
                long n;

                if (!ia_range_in(ko, kl, len) || !ia_range_in(vo, vl, len))
                        continue; /* reported below */
                if (vhdx_key_is(loc + ko, kl, "parent_linkage"))
                        which = 0;
                else if (vhdx_key_is(loc + ko, kl, "parent_linkage2"))
                        which = 1;
                else
                        continue;
                n = ia_utf16_to_utf8(loc + vo, vl, false, v, sizeof(v));
                if (n <= 0)
                        continue;
                for (long c = 0; c < n; c++)
                        if (v[c] >= 'A' && v[c] <= 'Z')
                                v[c] = (char)(v[c] - 'A' + 'a');
                snprintf(img->parent_ident[which], IA_IDENT_LEN, "guid %.*s", (int)n, v);
        }
        if (!img->parent_ident[0][0] && img->parent_ident[1][0]) {
                memcpy(img->parent_ident[0], img->parent_ident[1], IA_IDENT_LEN);
                img->parent_ident[1][0] = '\0';
        }
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                for (unsigned i = 0; i < count; i++) {
                        const uint8_t *e = loc + 20 + 12 * i;
                        uint32_t ko = ia_le32(e), vo = ia_le32(e + 4);
                        uint16_t kl = ia_le16(e + 8), vl = ia_le16(e + 10);
                        long n;

                        if (!ia_range_in(ko, kl, len) || !ia_range_in(vo, vl, len)) {
                                ret = ia_error_set(err, IA_ERR_CORRUPT,
                                                   "vhdx: parent locator entry %u lies outside the "
                                                   "locator (%u bytes)",
                                                   i, len);
                                goto out;
                        }
                        if (!vhdx_key_is(loc + ko, kl, keys[k]))
                                continue;
                        n = ia_utf16_to_utf8(loc + vo, vl, false, name, VHDX_MAX_LOCATOR * 2 + 1);
                        if (n <= 0)
                                continue;
                        if (k == 0) /* a Windows relative path: ".\dir\name" */
                                n = (long)ia_windows_relative_path(name, (size_t)n);
                        if (n <= 0)
                                continue;
                        ret = ia_image_set_backing(img, name, (size_t)n, "vhdx", err);
                        goto out;
                }
        }
        ret = ia_error_set(err, IA_ERR_CORRUPT, "vhdx: parent locator names no parent path");
out:
        free(name);
        return ret;
}

/* Find the BAT and the metadata region in a valid region table. */
int vhdx_read_regions(struct ia_source *src, uint64_t *bat_off, uint64_t *bat_len,
                      uint64_t *meta_off, uint64_t *meta_len, struct ia_error *err)
{
        uint8_t *rt;
        uint32_t count;
        int ret = -1, which;
        bool have_bat = false, have_meta = false;

        rt = malloc(VHDX_REGION_SIZE);
        if (!rt)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the region table");
        /* Table 1, or table 2 if table 1 is damaged. */
        for (which = 0; which < 2; which++) {
                if (ia_read(src, rt, VHDX_REGION_SIZE, which ? VHDX_REGION2_OFF : VHDX_REGION1_OFF,
                            "vhdx region table", err) < 0)
                        goto out;
                if (memcmp(rt, "regi", 4) == 0 && vhdx_crc_ok(rt, VHDX_REGION_SIZE))
                        break;
        }
        if (which == 2) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: neither region table has a valid signature and checksum");
                goto out;
        }
        count = ia_le32(rt + 8);
        if (count > VHDX_MAX_REGIONS) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: region table entry count %u exceeds the limit of %u", count,
                             VHDX_MAX_REGIONS);
                goto out;
        }
        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *e = rt + 16 + 32 * i;
                uint64_t off = ia_le64(e + 16), len = ia_le32(e + 24);
                bool required = ia_le32(e + 28) & VHDX_REGION_REQUIRED;

                if (vhdx_guid_eq(e, &vhdx_bat_guid) || vhdx_guid_eq(e, &vhdx_meta_guid)) {
                        bool bat = vhdx_guid_eq(e, &vhdx_bat_guid);

                        if (bat ? have_bat : have_meta) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: the %s region appears twice",
                                             bat ? "BAT" : "metadata");
                                goto out;
                        }
                        if (off < MIB || off % MIB || len % MIB || len == 0) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: %s region at %llu (%llu bytes) is not aligned "
                                             "to 1 MiB",
                                             bat ? "BAT" : "metadata", (unsigned long long)off,
                                             (unsigned long long)len);
                                goto out;
                        }
                        if (bat) {
                                *bat_off = off;
                                *bat_len = len;
                                have_bat = true;
                        } else {
                                *meta_off = off;
                                *meta_len = len;
                                have_meta = true;
                        }
                } else if (required) {
                        ia_error_set(err, IA_ERR_UNSUPPORTED,
                                     "vhdx: region table entry %u is an unknown required region",
                                     i);
                        goto out;
                }
        }
        if (!have_bat || !have_meta) {
                ia_error_set(err, IA_ERR_CORRUPT, "vhdx: the region table lacks the %s region",
                             have_bat ? "metadata" : "BAT");
                goto out;
        }
        ret = 0;
out:
        free(rt);
        return ret;
}

/* Read metadata item bytes [off, off+len) of the region at meta_off. */
int vhdx_read_item(struct ia_source *src, uint64_t meta_off, uint64_t meta_len, uint32_t off,
                   uint32_t len, void *buf, const char *what, struct ia_error *err)
{
        if (off < VHDX_META_TBL_SIZE || !ia_range_in(off, len, meta_len))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: metadata item %s at %u (%u bytes) lies outside the "
                                    "metadata region (%llu bytes)",
                                    what, off, len, (unsigned long long)meta_len);
        return ia_read(src, buf, len, meta_off + off, what, err);
}

int vhdx_read_metadata(struct ia_source *src, uint64_t meta_off, uint64_t meta_len,
                       struct vhdx_meta *m, struct ia_error *err)
{
        uint8_t *tbl, b[8];
        unsigned count, seen = 0;
        int ret = -1;

        tbl = malloc(VHDX_META_TBL_SIZE);
        if (!tbl)
                return ia_error_set(err, IA_ERR_NOMEM,
                                    "vhdx: out of memory for the metadata table");
        if (ia_read(src, tbl, VHDX_META_TBL_SIZE, meta_off, "vhdx metadata table", err) < 0)
                goto out;
        if (memcmp(tbl, "metadata", 8) != 0) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: metadata table at %llu lacks the 'metadata' signature",
                             (unsigned long long)meta_off);
                goto out;
        }
        count = ia_le16(tbl + 10);
        if (count > VHDX_MAX_META) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: metadata entry count %u exceeds the limit of %u", count,
                             VHDX_MAX_META);
                goto out;
        }
        for (unsigned i = 0; i < count; i++) {
                const uint8_t *e = tbl + 32 + 32 * i;
                uint32_t off = ia_le32(e + 16), len = ia_le32(e + 20), fl = ia_le32(e + 24);
                unsigned bit;
                uint32_t need;
                const char *what;

                if (vhdx_guid_eq(e, &vhdx_params_guid)) {
                        bit = VHDX_M_PARAMS, need = 8, what = "file parameters";
                } else if (vhdx_guid_eq(e, &vhdx_size_guid)) {
                        bit = VHDX_M_SIZE, need = 8, what = "virtual disk size";
                } else if (vhdx_guid_eq(e, &vhdx_lss_guid)) {
                        bit = VHDX_M_LSS, need = 4, what = "logical sector size";
                } else if (vhdx_guid_eq(e, &vhdx_pss_guid)) {
                        bit = VHDX_M_PSS, need = 4, what = "physical sector size";
                } else if (vhdx_guid_eq(e, &vhdx_locator_guid)) {
                        bit = VHDX_M_LOCATOR, need = 0, what = "parent locator";
                } else if (vhdx_guid_eq(e, &vhdx_diskid_guid)) {
                        bit = VHDX_M_DISKID, need = 16, what = "virtual disk id";
                } else {
                        if (fl & VHDX_META_REQUIRED) {
                                ia_error_set(err, IA_ERR_UNSUPPORTED,
                                             "vhdx: metadata entry %u is an unknown required item",
                                             i);
                                goto out;
                        }
                        continue;
                }
                if (seen & bit) {
                        ia_error_set(err, IA_ERR_CORRUPT, "vhdx: metadata item %s appears twice",
                                     what);
                        goto out;
                }
                seen |= bit;
                if (len < need) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "vhdx: metadata item %s is %u bytes, less than %u", what, len,
                                     need);
                        goto out;
                }
                if (bit == VHDX_M_LOCATOR) {
                        if (off < VHDX_META_TBL_SIZE || !ia_range_in(off, len, meta_len)) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: parent locator at %u (%u bytes) lies outside "
                                             "the metadata region (%llu bytes)",
                                             off, len, (unsigned long long)meta_len);
                                goto out;
                        }
                        m->loc_off = off;
                        m->loc_len = len;
                        m->have_loc = true;
                        continue;
                }
                if (bit == VHDX_M_DISKID)
                        continue;
                if (vhdx_read_item(src, meta_off, meta_len, off, need, b, what, err) < 0)
                        goto out;
                if (bit == VHDX_M_PARAMS) {
                        m->block_size = ia_le32(b);
                        m->flags = ia_le32(b + 4);
                } else if (bit == VHDX_M_SIZE) {
                        m->size = ia_le64(b);
                } else if (bit == VHDX_M_LSS) {
                        m->lss = ia_le32(b);
                } else {
                        m->pss = ia_le32(b);
                }
        }
        if ((seen & VHDX_M_REQUIRED) != VHDX_M_REQUIRED) {
                ia_error_set(err, IA_ERR_CORRUPT, "vhdx: the metadata lacks the %s item",
                             !(seen & VHDX_M_PARAMS) ? "file parameters"
                             : !(seen & VHDX_M_SIZE) ? "virtual disk size"
                             : !(seen & VHDX_M_LSS)  ? "logical sector size"
                                                     : "physical sector size");
                goto out;
        }
        ret = 0;
out:
        free(tbl);
        return ret;
}
