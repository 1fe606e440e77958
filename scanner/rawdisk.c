/*
 * Raw disks by content and by name (see rawdisk.h).  Signatures and their
 * offsets are those of the on-disk formats: a signature is a few bytes at a
 * fixed offset, so a text file or a log cannot carry one by chance where it
 * matters (an MBR also needs plausible partition entries).
 */
#include "rawdisk.h"

#include <fnmatch.h>
#include <string.h>
#include "banned.h"

const char *const ia_raw_globs_default[] = {"*.img", "*.raw", "*.iso", NULL};

static int at(const uint8_t *head, size_t len, size_t off, const char *sig)
{
        size_t n = strlen(sig);

        return off + n <= len && memcmp(head + off, sig, n) == 0;
}

/* Four partition entries with boot flags 0 or 0x80, at least one in use. */
static int mbr_table(const uint8_t *b)
{
        int used = 0;

        for (int i = 0; i < 4; i++) {
                const uint8_t *e = b + 446 + 16 * i;

                if (e[0] != 0 && e[0] != 0x80)
                        return 0;
                used |= e[4] != 0;
        }
        return used;
}

/* Bytes at off of src (beyond the probed head), compared with sig. */
static int far(struct ia_source *src, uint64_t off, const char *sig)
{
        uint8_t buf[16];
        size_t n = strlen(sig);
        struct ia_error err;

        if (n > sizeof(buf) || off + n > src->size)
                return 0;
        if (ia_read_upto(src, buf, n, off, &err) != (int64_t)n)
                return 0;
        return memcmp(buf, sig, n) == 0;
}

const char *ia_rawdisk_signature(struct ia_source *src, const uint8_t *head, size_t len)
{
        if (at(head, len, 512, "EFI PART"))
                return "gpt";
        if (at(head, len, 3, "NTFS    "))
                return "ntfs";
        if (at(head, len, 0, "XFSB"))
                return "xfs";
        if (len >= 1082 && head[1080] == 0x53 && head[1081] == 0xef)
                return "ext";
        if (at(head, len, 512, "LABELONE") || at(head, len, 0, "LABELONE"))
                return "lvm";
        if (at(head, len, 4086, "SWAPSPACE2") || at(head, len, 4086, "SWAP-SPACE"))
                return "swap";
        if (len >= 512 && head[510] == 0x55 && head[511] == 0xaa) {
                if (at(head, len, 54, "FAT") || at(head, len, 82, "FAT32"))
                        return "fat";
                if (mbr_table(head))
                        return "mbr";
        }
        if (far(src, 32769, "CD001"))
                return "iso9660";
        if (far(src, 65536 + 64, "_BHRfS_M"))
                return "btrfs";
        return NULL;
}

/*
 * A glob "*SUFFIX" whose suffix holds no other special character (the
 * defaults *.img *.raw *.iso) matches exactly the names ending in SUFFIX
 * (fnmatch without flags: '*' takes a leading dot too, and a base name has no
 * '/'): compared as bytes, which costs a store of small files far less than
 * fnmatch on every name.  Other globs go to fnmatch.
 */
static bool plain_suffix(const char *glob)
{
        return glob[0] == '*' && !strpbrk(glob + 1, "*?[\\");
}

int ia_rawdisk_name_matches(const char *path, const char *const *globs)
{
        const char *base = strrchr(path, '/');
        size_t n;

        base = base ? base + 1 : path;
        n = strlen(base);
        for (size_t i = 0; globs && globs[i]; i++) {
                if (plain_suffix(globs[i])) {
                        size_t k = strlen(globs[i] + 1);

                        if (k <= n && memcmp(base + n - k, globs[i] + 1, k) == 0)
                                return 1;
                } else if (fnmatch(globs[i], base, 0) == 0) {
                        return 1;
                }
        }
        return 0;
}

const char *ia_rawdisk_recognised_by(struct ia_source *src, const uint8_t *head, size_t head_len,
                                     const char *name, const char *const *globs)
{
        if (src->size == 0)
                return NULL;
        if (ia_rawdisk_signature(src, head, head_len))
                return "content";
        if (ia_rawdisk_name_matches(name, globs))
                return "name";
        return NULL;
}
