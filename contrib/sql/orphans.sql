-- Images nothing references as a backing file (latest complete scan): the
-- orphan candidates of `imgaudit report --section=orphans`, oldest first.
SELECT i.path, i.format, i.allocated_bytes, i.backing,
       datetime(f.mtime_ns / 1000000000, 'unixepoch') AS modified
  FROM v_images i
  JOIN files f ON f.path = i.path
 WHERE NOT EXISTS (SELECT 1 FROM v_links l WHERE l.target_path = i.path AND l.status = 'ok')
 GROUP BY i.path
 ORDER BY f.mtime_ns;
