/*
 * A hash map from byte strings to pointers (see hmap.h): a word-at-a-time
 * multiplicative hash, open addressing with linear probing at a load factor
 * of at most one half, items carved out of blocks freed together.
 */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>
#include "banned.h"

#define BLOCK_BYTES ((size_t)64 << 10)

struct ia_hmap_block {
        struct ia_hmap_block *next;
        size_t used, size;
        _Alignas(max_align_t) unsigned char data[];
};

static uint64_t mix(uint64_t h)
{
        h ^= h >> 32;
        h *= 0xd6e8feb86659fd93ull;
        h ^= h >> 32;
        return h;
}

static uint64_t hash_bytes(const void *key, size_t len)
{
        const unsigned char *p = key;
        uint64_t h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
        uint64_t w;

        while (len >= 8) {
                memcpy(&w, p, 8);
                h = (h ^ w) * 0x9fb21c651e98df25ull;
                h ^= h >> 29;
                p += 8;
                len -= 8;
        }
        w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h = mix(h);
        return h ? h : 1;
}

void ia_hmap_init(struct ia_hmap *m)
{
        m->slots = NULL;
        m->nslots = 0;
        m->count = 0;
        m->blocks = NULL;
}

void ia_hmap_release(struct ia_hmap *m)
{
        struct ia_hmap_block *b = m->blocks;

        while (b) {
                struct ia_hmap_block *next = b->next;

                free(b);
                b = next;
        }
        free(m->slots);
        ia_hmap_init(m);
}

/* The slot of key: its own, or the empty one where it would go. */
static struct ia_hmap_slot *find(const struct ia_hmap *m, uint64_t h, const void *key, size_t klen)
{
        size_t mask = m->nslots - 1;

        for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
                struct ia_hmap_slot *sl = &m->slots[i];

                if (!sl->hash)
                        return sl;
                if (sl->hash == h && sl->item->klen == klen &&
                    memcmp(sl->item->key, key, klen) == 0)
                        return sl;
        }
}

void *ia_hmap_get(const struct ia_hmap *m, const void *key, size_t klen)
{
        struct ia_hmap_slot *sl;

        if (!m->nslots)
                return NULL;
        sl = find(m, hash_bytes(key, klen), key, klen);
        return sl->hash ? sl->item->value : NULL;
}

static int grow_to(struct ia_hmap *m, size_t n)
{
        struct ia_hmap_slot *s = calloc(n, sizeof(*s));

        if (!s)
                return -1;
        for (size_t i = 0; i < m->nslots; i++) {
                size_t k;

                if (!m->slots[i].hash)
                        continue;
                for (k = (size_t)m->slots[i].hash & (n - 1); s[k].hash; k = (k + 1) & (n - 1))
                        ;
                s[k] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->nslots = n;
        return 0;
}

static int grow(struct ia_hmap *m)
{
        return grow_to(m, m->nslots ? m->nslots * 2 : 64);
}

int ia_hmap_reserve(struct ia_hmap *m, size_t n)
{
        size_t want = m->nslots ? m->nslots : 64;

        while (want / 2 < n) {
                if (want > SIZE_MAX / 4)
                        return -1;
                want *= 2;
        }
        return want > m->nslots ? grow_to(m, want) : 0;
}

static struct ia_hmap_item *new_item(struct ia_hmap *m, size_t klen)
{
        size_t need =
            (sizeof(struct ia_hmap_item) + klen + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
        struct ia_hmap_block *b = m->blocks;
        struct ia_hmap_item *it;

        if (!b || b->size - b->used < need) {
                size_t size = need > BLOCK_BYTES / 4 ? need : BLOCK_BYTES;

                b = malloc(sizeof(*b) + size);
                if (!b)
                        return NULL;
                b->used = 0;
                b->size = size;
                if (size == need && m->blocks) {
                        /* a big key gets a block of its own, behind the one being filled */
                        b->next = m->blocks->next;
                        m->blocks->next = b;
                } else {
                        b->next = m->blocks;
                        m->blocks = b;
                }
        }
        it = (struct ia_hmap_item *)(void *)(b->data + b->used);
        b->used += need;
        return it;
}

int ia_hmap_put(struct ia_hmap *m, const void *key, size_t klen, void *value)
{
        uint64_t h = hash_bytes(key, klen);
        struct ia_hmap_slot *sl;
        struct ia_hmap_item *it;

        if (m->nslots) {
                sl = find(m, h, key, klen);
                if (sl->hash) {
                        sl->item->value = value;
                        return 0;
                }
        }
        if ((m->count + 1) * 2 > m->nslots) {
                if (grow(m) < 0)
                        return -1;
        }
        it = new_item(m, klen);
        if (!it)
                return -1;
        it->klen = klen;
        it->value = value;
        if (klen)
                memcpy(it->key, key, klen);
        sl = find(m, h, key, klen);
        sl->hash = h;
        sl->item = it;
        m->count++;
        return 0;
}

void ia_hmap_each(const struct ia_hmap *m, void (*fn)(void *value, void *opaque), void *opaque)
{
        for (size_t i = 0; i < m->nslots; i++)
                if (m->slots[i].hash)
                        fn(m->slots[i].item->value, opaque);
}
