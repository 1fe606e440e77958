-- Backing files with the most direct children (latest complete scan), with
-- their size on disk: the images you can never delete.
SELECT l.target_path AS base, count(*) AS children, b.allocated_bytes
  FROM v_links l LEFT JOIN v_images b ON b.path = l.target_path
 WHERE l.kind = 'backing' AND l.status = 'ok'
 GROUP BY l.target_path
 ORDER BY children DESC, base
 LIMIT 20;
