/*
 * A small hash map from byte strings to pointers, for the scanner's
 * bookkeeping: file identities (dev, ino) visited, paths of the previous
 * scan, layers mapped.  Not thread-safe; callers lock.
 */
#ifndef IA_HMAP_H
#define IA_HMAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Open addressing (linear probing) over slots holding each key's hash and its
 * item; the items (key bytes and value) are carved out of large blocks, so a
 * map of 200,000 paths costs a few allocations, not 200,000.
 */
struct ia_hmap_item {
        size_t klen;
        void *value;
        unsigned char key[]; /* klen bytes */
};

struct ia_hmap_slot {
        uint64_t hash; /* 0: empty (a key hashing to 0 is stored as 1) */
        struct ia_hmap_item *item;
};

struct ia_hmap_block; /* the blocks items are carved from (hmap.c) */

struct ia_hmap {
        struct ia_hmap_slot *slots;
        size_t nslots, count; /* nslots a power of two (or 0) */
        struct ia_hmap_block *blocks;
};

void ia_hmap_init(struct ia_hmap *m);
/* Free the items (not the values; see ia_hmap_release_values). */
void ia_hmap_release(struct ia_hmap *m);
/* The value for key, or NULL. */
void *ia_hmap_get(const struct ia_hmap *m, const void *key, size_t klen);
/* Set key to value (replacing); 0, or -1 on ENOMEM. */
int ia_hmap_put(struct ia_hmap *m, const void *key, size_t klen, void *value);
/* Make room for n keys in all without growing again; 0, or -1 on ENOMEM. */
int ia_hmap_reserve(struct ia_hmap *m, size_t n);
/* Call fn on every value. */
void ia_hmap_each(const struct ia_hmap *m, void (*fn)(void *value, void *opaque), void *opaque);

/* The 16-byte key of a file identity. */
struct ia_fid_key {
        uint64_t dev, ino;
};

#endif
