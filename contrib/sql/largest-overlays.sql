-- The 20 overlays (images with a backing file) taking most space on disk,
-- in the latest complete scan.  sqlite3 -header -column imgaudit.db < largest-overlays.sql
SELECT path, format, allocated_bytes, virtual_size, backing_path
  FROM v_images
 WHERE backing IS NOT NULL
 ORDER BY allocated_bytes DESC
 LIMIT 20;
