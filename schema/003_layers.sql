-- imgaudit store, schema version 3: the store grows with files, not with
-- images times their chains.  Each distinct layer (a file's version, read
-- as one format) has its own runs, stored once and carried to later scans
-- without being written again; an image's map is a short list of pieces,
-- guest ranges each decided by one layer of its chain (or by none: the
-- chain's end, or a backing file that could not be opened, whose content is
-- unknown); v_map clips the runs to the pieces.  Each image row carries the
-- space figures reports use, so nothing ever sums composed rows.
-- Images of schema-2 scans keep their rows in map (v_map reads both).
-- Documented in schema/README.md.

CREATE TABLE layers (
        id           INTEGER PRIMARY KEY,
        -- 'layer': what one file says about itself; 'rows': the merged rows
        -- of one image mapped live (a layer failed part-way or was too big)
        kind         TEXT NOT NULL CHECK (kind IN ('layer', 'rows')),
        file_id      INTEGER NOT NULL REFERENCES files (id),
        format       TEXT NOT NULL,
        -- the other files the layer reads (data files, extents): their ids, ascending
        deps         TEXT NOT NULL DEFAULT '',
        tool_version TEXT NOT NULL,
        size         INTEGER NOT NULL,
        runs         INTEGER NOT NULL,
        scan_id      INTEGER NOT NULL REFERENCES scans (id)
);
-- a file's layers, for carrying them to the next scan (one scan never stores a
-- layer twice: the scanner keys them by file_id, format and deps)
CREATE INDEX layers_file ON layers (file_id);

CREATE TABLE layer_runs (
        layer_id   INTEGER NOT NULL REFERENCES layers (id),
        start      INTEGER NOT NULL,
        length     INTEGER NOT NULL,
        present    INTEGER NOT NULL,
        zero       INTEGER NOT NULL,
        data       INTEGER NOT NULL,
        compressed INTEGER NOT NULL,
        offset     INTEGER,
        file_id    INTEGER REFERENCES files (id),
        PRIMARY KEY (layer_id, start)
) WITHOUT ROWID;

CREATE TABLE pieces (
        image_id INTEGER NOT NULL REFERENCES images (id),
        start    INTEGER NOT NULL,
        length   INTEGER NOT NULL,
        depth    INTEGER NOT NULL,
        kind     TEXT NOT NULL CHECK (kind IN ('layer', 'end', 'unknown')),
        layer_id INTEGER REFERENCES layers (id),
        PRIMARY KEY (image_id, start)
) WITHOUT ROWID;

-- Per image and depth of its backing chain (depth >= 1; depth 0 is the image's
-- own_data_bytes): the layer, and what the image reads from it.
CREATE TABLE chain_layers (
        image_id   INTEGER NOT NULL REFERENCES images (id),
        depth      INTEGER NOT NULL,
        file_id    INTEGER REFERENCES files (id),
        layer_id   INTEGER REFERENCES layers (id),
        data_bytes INTEGER NOT NULL,
        zero_bytes INTEGER NOT NULL,
        PRIMARY KEY (image_id, depth)
) WITHOUT ROWID;
CREATE INDEX chain_layers_file ON chain_layers (file_id);

ALTER TABLE images ADD COLUMN own_data_bytes INTEGER;
ALTER TABLE images ADD COLUMN backing_data_bytes INTEGER;
ALTER TABLE images ADD COLUMN zero_bytes INTEGER;
ALTER TABLE images ADD COLUMN unallocated_bytes INTEGER;
ALTER TABLE images ADD COLUMN compressed_bytes INTEGER;
ALTER TABLE images ADD COLUMN unknown_bytes INTEGER;
ALTER TABLE images ADD COLUMN mapped_bytes INTEGER;
ALTER TABLE images ADD COLUMN map_rows INTEGER;
-- why the file is an image: 'content' (a format's probe, or a raw disk's
-- partition table, file system, ...), 'name' (a raw glob), 'reference'
-- (another image uses it as its raw backing file)
ALTER TABLE images ADD COLUMN recognised_by TEXT;
UPDATE images SET recognised_by = CASE WHEN format_probed THEN 'content' ELSE 'reference' END;

-- The scan's start in nanoseconds (started_at is to the second), and the
-- database's name as that scan opened it.
ALTER TABLE scans ADD COLUMN started_ns INTEGER;
ALTER TABLE scans ADD COLUMN db_path;

-- The figures of the images of schema-2 scans, from their map rows, once.
CREATE TEMP TABLE space2 AS
        SELECT image_id,
               sum(CASE WHEN depth = 0 AND data THEN length ELSE 0 END) AS own_data,
               sum(CASE WHEN depth > 0 AND data THEN length ELSE 0 END) AS backing_data,
               sum(CASE WHEN NOT data AND present THEN length ELSE 0 END) AS zero,
               sum(CASE WHEN NOT data AND NOT present THEN length ELSE 0 END) AS unallocated,
               sum(CASE WHEN data AND compressed THEN length ELSE 0 END) AS compressed,
               sum(length) AS mapped, count(*) AS rows
          FROM map GROUP BY image_id;
UPDATE images SET own_data_bytes = s.own_data, backing_data_bytes = s.backing_data,
       zero_bytes = s.zero, unallocated_bytes = s.unallocated, compressed_bytes = s.compressed,
       unknown_bytes = 0, mapped_bytes = s.mapped, map_rows = s.rows
  FROM space2 s WHERE s.image_id = coalesce(images.map_image_id, images.id);
DROP TABLE space2;
INSERT INTO chain_layers (image_id, depth, file_id, layer_id, data_bytes, zero_bytes)
        SELECT m.image_id, m.depth,
               CASE WHEN m.depth = 0 THEN (SELECT file_id FROM images WHERE id = m.image_id)
                    ELSE (SELECT l.target_file_id FROM links l
                           WHERE l.image_id = m.image_id AND l.depth = m.depth - 1
                             AND l.kind = 'backing' AND l.status = 'ok' LIMIT 1) END,
               NULL, sum(CASE WHEN m.data THEN m.length ELSE 0 END),
               sum(CASE WHEN m.zero AND NOT m.data THEN m.length ELSE 0 END)
          FROM map m WHERE m.depth > 0 GROUP BY m.image_id, m.depth;

-- The map rows of each image of the latest complete scan: its pieces
-- clipped to the runs of the layers that decide them (through the indexes:
-- the rows of one image cost in proportion to them), and the rows of
-- images of schema-2 scans as they were stored.  CROSS JOIN keeps files
-- first, so `WHERE path = ?` is a search of files_path, whatever the number
-- of images (schema/README.md shows the plan).
DROP VIEW v_map;
CREATE VIEW v_map AS
        SELECT f.path, max(p.start, r.start) AS start,
               min(p.start + p.length, r.start + r.length) - max(p.start, r.start) AS length,
               p.depth, r.present, r.zero OR NOT r.data AS zero, r.data, r.compressed,
               r.offset + (max(p.start, r.start) - r.start) AS offset, t.path AS file
          FROM files f CROSS JOIN images i ON i.file_id = f.id
               JOIN pieces p ON p.image_id = coalesce(i.map_image_id, i.id) AND p.kind = 'layer'
               JOIN layer_runs r ON r.layer_id = p.layer_id
                    AND r.start >= (SELECT max(q.start) FROM layer_runs q
                                     WHERE q.layer_id = p.layer_id AND q.start <= p.start)
                    AND r.start < p.start + p.length
               LEFT JOIN files t ON t.id = r.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan)
        UNION ALL
        SELECT f.path, p.start, p.length, p.depth, 0,
               CASE WHEN p.kind = 'end' THEN 0 END, CASE WHEN p.kind = 'end' THEN 0 END, 0,
               NULL, NULL
          FROM files f CROSS JOIN images i ON i.file_id = f.id
               JOIN pieces p ON p.image_id = coalesce(i.map_image_id, i.id) AND p.kind <> 'layer'
         WHERE i.scan_id = (SELECT id FROM v_latest_scan)
        UNION ALL
        SELECT f.path, m.start, m.length, m.depth, m.present, m.zero, m.data, m.compressed,
               m.offset, t.path
          FROM files f CROSS JOIN images i ON i.file_id = f.id
               JOIN map m ON m.image_id = coalesce(i.map_image_id, i.id)
               LEFT JOIN files t ON t.id = m.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);

-- How each image's virtual size splits (bytes).
CREATE VIEW v_space AS
        SELECT f.path, i.format, i.virtual_size, i.allocated_bytes, i.own_data_bytes,
               i.backing_data_bytes, i.zero_bytes, i.unallocated_bytes, i.compressed_bytes,
               i.unknown_bytes, i.mapped_bytes
          FROM images i JOIN files f ON f.id = i.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);

-- Per backing file, the images that read from it, at which depth and how much data.
CREATE VIEW v_base_readers AS
        SELECT b.path AS base, f.path AS image, c.depth, c.data_bytes, c.zero_bytes
          FROM images i JOIN files f ON f.id = i.file_id
               JOIN chain_layers c ON c.image_id = coalesce(i.map_image_id, i.id) AND c.depth > 0
               JOIN files b ON b.id = c.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);
