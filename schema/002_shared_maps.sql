-- imgaudit store, schema version 2: an image carried over unchanged by an
-- incremental scan shares the map rows of the image row it was carried over
-- from instead of holding a copy of them, so a nightly rescan of an
-- unchanged store adds rows per image, not per map entry; and v_links shows
-- the references of layers that are not images of the scan (files reached
-- beneath an --allow-root directory) too.
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

-- Every reference and its outcome: those of each image (depth 0), and once
-- each those held by a layer the scan reached but did not walk (beneath an
-- --allow-root directory), under that layer's path.
DROP VIEW v_links;
CREATE VIEW v_links AS
        SELECT f.path, l.name AS backing, l.target_path, l.status, l.kind
          FROM links l JOIN images i ON i.id = l.image_id JOIN files f ON f.id = i.file_id
         WHERE l.depth = 0 AND l.scan_id = (SELECT id FROM v_latest_scan)
        UNION ALL
        SELECT DISTINCT f.path, l.name, l.target_path, l.status, l.kind
          FROM links l JOIN files f ON f.id = l.from_file_id
         WHERE l.depth > 0 AND l.scan_id = (SELECT id FROM v_latest_scan)
           AND NOT EXISTS (SELECT 1 FROM images j
                            WHERE j.scan_id = l.scan_id AND j.file_id = l.from_file_id);
