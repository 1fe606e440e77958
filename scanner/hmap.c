/*
 * A chained hash map from byte strings to pointers (see hmap.h); FNV-1a,
 * doubling at a load factor of one.
 */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>
#include "banned.h"

static uint64_t hash_bytes(const void *key, size_t len)
{
        const unsigned char *p = key;
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

void ia_hmap_init(struct ia_hmap *m)
{
        m->buckets = NULL;
        m->nbuckets = 0;
        m->count = 0;
}

void ia_hmap_release(struct ia_hmap *m)
{
        for (size_t i = 0; i < m->nbuckets; i++) {
                struct ia_hmap_item *it = m->buckets[i];

                while (it) {
                        struct ia_hmap_item *next = it->next;

                        free(it);
                        it = next;
                }
        }
        free(m->buckets);
        ia_hmap_init(m);
}

void *ia_hmap_get(const struct ia_hmap *m, const void *key, size_t klen)
{
        uint64_t h;

        if (!m->nbuckets)
                return NULL;
        h = hash_bytes(key, klen);
        for (struct ia_hmap_item *it = m->buckets[h & (m->nbuckets - 1)]; it; it = it->next)
                if (it->hash == h && it->klen == klen && memcmp(it->key, key, klen) == 0)
                        return it->value;
        return NULL;
}

static int grow(struct ia_hmap *m)
{
        size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
        struct ia_hmap_item **b = calloc(n, sizeof(*b));

        if (!b)
                return -1;
        for (size_t i = 0; i < m->nbuckets; i++) {
                struct ia_hmap_item *it = m->buckets[i];

                while (it) {
                        struct ia_hmap_item *next = it->next;

                        it->next = b[it->hash & (n - 1)];
                        b[it->hash & (n - 1)] = it;
                        it = next;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->nbuckets = n;
        return 0;
}

int ia_hmap_put(struct ia_hmap *m, const void *key, size_t klen, void *value)
{
        uint64_t h = hash_bytes(key, klen);
        struct ia_hmap_item *it;

        if (m->nbuckets) {
                for (it = m->buckets[h & (m->nbuckets - 1)]; it; it = it->next) {
                        if (it->hash == h && it->klen == klen && memcmp(it->key, key, klen) == 0) {
                                it->value = value;
                                return 0;
                        }
                }
        }
        if (m->count >= m->nbuckets && grow(m) < 0)
                return -1;
        it = malloc(sizeof(*it) + klen);
        if (!it)
                return -1;
        it->hash = h;
        it->klen = klen;
        it->value = value;
        memcpy(it->key, key, klen);
        it->next = m->buckets[h & (m->nbuckets - 1)];
        m->buckets[h & (m->nbuckets - 1)] = it;
        m->count++;
        return 0;
}

void ia_hmap_each(const struct ia_hmap *m, void (*fn)(void *value, void *opaque), void *opaque)
{
        for (size_t i = 0; i < m->nbuckets; i++)
                for (struct ia_hmap_item *it = m->buckets[i]; it; it = it->next)
                        fn(it->value, opaque);
}
