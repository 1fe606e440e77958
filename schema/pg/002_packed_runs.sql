-- imgaudit central (fleet) schema, version 2: a layer's runs stored packed.
--
-- Version 1 stored one layer_runs row per run under a primary key: a
-- fragmented base of 20,000 clusters is 40,000 rows, and the server spent
-- half of a push on heap tuples and key entries for them.  Here a layer's
-- runs are stored in blocks of up to 48 consecutive runs, one row of arrays
-- per block (element k of every array is run k of the block), small enough
-- to stay in the row (no TOAST, no compression).  `layer_runs` becomes a
-- view with the columns and rows of the version-1 table, so every query of
-- it reads what it read before; v_map reads the blocks directly (only those
-- that overlap a piece).  Documented in schema/README.md ("The central
-- database").

DROP VIEW v_map;

-- One block of a layer's runs: start is its first run's start, stop its
-- last run's end (start + length); flags holds per run present (1), zero
-- (2), data (4) and compressed (8), each set when the local value is not 0;
-- an offset or file id that is NULL is a NULL element.
CREATE TABLE layer_runs_packed (
        store_id uuid NOT NULL,
        layer_id bigint NOT NULL,
        start    bigint NOT NULL,
        stop     bigint NOT NULL,
        starts   bigint[] NOT NULL,
        lengths  bigint[] NOT NULL,
        flags    smallint[] NOT NULL,
        offsets  bigint[] NOT NULL,
        file_ids bigint[] NOT NULL,
        PRIMARY KEY (store_id, layer_id, start)
);

INSERT INTO layer_runs_packed
        SELECT store_id, layer_id, min(start), max(start + length),
               array_agg(start ORDER BY start), array_agg(length ORDER BY start),
               array_agg(((CASE WHEN present <> 0 THEN 1 ELSE 0 END) |
                          (CASE WHEN zero <> 0 THEN 2 ELSE 0 END) |
                          (CASE WHEN data <> 0 THEN 4 ELSE 0 END) |
                          (CASE WHEN compressed <> 0 THEN 8 ELSE 0 END))::smallint
                         ORDER BY start),
               array_agg("offset" ORDER BY start), array_agg(file_id ORDER BY start)
          FROM (SELECT r.*, (row_number() OVER (PARTITION BY store_id, layer_id
                                                ORDER BY start) - 1) / 48 AS block
                  FROM layer_runs r) b
         GROUP BY store_id, layer_id, block;

DROP TABLE layer_runs;

CREATE VIEW layer_runs AS
        SELECT b.store_id, b.layer_id, r.start, r.length,
               (r.flags & 1)::bigint AS present, ((r.flags >> 1) & 1)::bigint AS zero,
               ((r.flags >> 2) & 1)::bigint AS data, ((r.flags >> 3) & 1)::bigint AS compressed,
               r."offset", r.file_id
          FROM layer_runs_packed b,
               unnest(b.starts, b.lengths, b.flags, b.offsets, b.file_ids)
                   AS r(start, length, flags, "offset", file_id);

-- As in version 1; a layer's runs tile it, so the runs a piece reads are
-- those that overlap it, found through the blocks that overlap it.
CREATE VIEW v_map AS
        SELECT v.host, f.path, greatest(p.start, r.start) AS start,
               least(p.start + p.length, r.start + r.length) - greatest(p.start, r.start) AS length,
               p.depth, (r.flags & 1)::bigint AS present,
               CASE WHEN r.flags & 2 <> 0 OR r.flags & 4 = 0 THEN 1 ELSE 0 END AS zero,
               ((r.flags >> 2) & 1)::bigint AS data, ((r.flags >> 3) & 1)::bigint AS compressed,
               r."offset" + (greatest(p.start, r.start) - r.start) AS "offset", t.path AS file,
               i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN pieces p ON p.store_id = i.store_id
                    AND p.image_id = coalesce(i.map_image_id, i.id) AND p.kind = 'layer'
               JOIN layer_runs_packed b ON b.store_id = p.store_id AND b.layer_id = p.layer_id
                    AND b.start < p.start + p.length AND b.stop > p.start
               CROSS JOIN LATERAL unnest(b.starts, b.lengths, b.flags, b.offsets, b.file_ids)
                    AS r(start, length, flags, "offset", file_id)
               LEFT JOIN files t ON t.store_id = b.store_id AND t.id = r.file_id
         WHERE r.start < p.start + p.length AND r.start + r.length > p.start
        UNION ALL
        SELECT v.host, f.path, p.start, p.length, p.depth, 0,
               CASE WHEN p.kind = 'end' THEN 0 END, CASE WHEN p.kind = 'end' THEN 0 END, 0,
               NULL, NULL, i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN pieces p ON p.store_id = i.store_id
                    AND p.image_id = coalesce(i.map_image_id, i.id) AND p.kind <> 'layer'
        UNION ALL
        SELECT v.host, f.path, m.start, m.length, m.depth, m.present, m.zero, m.data,
               m.compressed, m."offset", t.path, i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN map m ON m.store_id = i.store_id AND m.image_id = coalesce(i.map_image_id, i.id)
               LEFT JOIN files t ON t.store_id = m.store_id AND t.id = m.file_id;

-- The rights of contrib/fleet/roles.sql on what this version replaced, when
-- those roles exist already (roles.sql run after this version grants them
-- itself).
DO $$
BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imgaudit_push') THEN
                GRANT SELECT, INSERT ON layer_runs_packed TO imgaudit_push;
                GRANT SELECT ON layer_runs TO imgaudit_push;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'imgaudit_read') THEN
                GRANT SELECT ON layer_runs_packed, layer_runs, v_map TO imgaudit_read;
        END IF;
END
$$;
