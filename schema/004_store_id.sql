-- imgaudit store, schema version 4: the store's identity, a random UUID made
-- once when the store is created or migrated and never changed, so that a
-- central PostgreSQL database (imgaudit push) can key every row it receives
-- by (store, local id): a scan pushed twice is stored once, and two stores
-- of one host (or a store copied to another host) never mix.
-- Documented in schema/README.md.

CREATE TABLE store_identity (
        one        INTEGER PRIMARY KEY CHECK (one = 1),
        store_id   TEXT NOT NULL,
        created_at TEXT NOT NULL
);
INSERT INTO store_identity (one, store_id, created_at)
        SELECT 1, substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' ||
                  substr('89ab', 1 + (unicode(substr(h, 17, 1)) % 4), 1) || substr(h, 18, 3) ||
                  '-' || substr(h, 21, 12),
               strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
          FROM (SELECT lower(hex(randomblob(16))) AS h);
