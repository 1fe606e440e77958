-- imgaudit store, schema version 8: what the writer pays per row.
--
-- pieces.kind's CHECK (kind IN ('layer', 'end', 'unknown')) made SQLite
-- (3.40) open, fill and close a temporary b-tree of the three names for
-- every row inserted: 44 % of the writer's instructions on a store of
-- 2,000 small overlays.  The same rule written as comparisons costs a few
-- instructions.  A CHECK cannot be altered in place: pieces is rebuilt, its
-- rows copied (they grow with the images that changed, not with the scans).
-- The views name pieces, so the table keeps its name: its rows wait in a
-- temporary table while it is made again (no rename: SQLite would reparse
-- every view of the schema for it, which a new store pays too).
--
-- chain_layers_file (chain_layers by file_id) is dropped: no query uses it
-- (v_base_readers reaches chain_layers by its primary key), and each row
-- paid its insertion.  Documented in schema/README.md.

CREATE TEMP TABLE pieces6 AS SELECT image_id, start, length, depth, kind, layer_id FROM pieces;
DROP TABLE pieces;
CREATE TABLE pieces (
        image_id INTEGER NOT NULL REFERENCES images (id),
        start    INTEGER NOT NULL,
        length   INTEGER NOT NULL,
        depth    INTEGER NOT NULL,
        kind     TEXT NOT NULL CHECK (kind = 'layer' OR kind = 'end' OR kind = 'unknown'),
        layer_id INTEGER REFERENCES layers (id),
        PRIMARY KEY (image_id, start)
) WITHOUT ROWID;
INSERT INTO pieces (image_id, start, length, depth, kind, layer_id)
        SELECT image_id, start, length, depth, kind, layer_id FROM temp.pieces6
         ORDER BY image_id, start;
DROP TABLE temp.pieces6;

DROP INDEX chain_layers_file;
