-- imgaudit store, schema version 2: an image carried over unchanged by an
-- incremental scan shares the map rows of the image row it was carried over
-- from instead of holding a copy of them, so a nightly rescan of an
-- unchanged store adds rows per image, not per map entry.
-- Documented in schema/README.md.

-- The image row whose map rows are this image's map; NULL: its own.
ALTER TABLE images ADD COLUMN map_image_id INTEGER REFERENCES images (id);
CREATE INDEX images_map_image ON images (map_image_id) WHERE map_image_id IS NOT NULL;

DROP VIEW v_map;
CREATE VIEW v_map AS
        SELECT f.path, m.start, m.length, m.depth, m.present, m.zero, m.data, m.compressed,
               m.offset, t.path AS file
          FROM images i JOIN files f ON f.id = i.file_id
               JOIN map m ON m.image_id = coalesce(i.map_image_id, i.id)
               LEFT JOIN files t ON t.id = m.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);
