-- Growth of bytes allocated on disk per image since the last complete scan
-- started before the beginning of this week (Monday 00:00 UTC, today on a
-- Monday); new images count from 0.  `imgaudit report --section=trend
-- --since DATE` says the same (with data files and removed images too).
WITH now AS (SELECT id FROM v_latest_scan),
     past AS (SELECT coalesce(
                (SELECT max(id) FROM scans WHERE status = 'complete'
                   AND julianday(started_at) < julianday(date('now', '-6 days', 'weekday 1'))),
                (SELECT min(id) FROM scans WHERE status = 'complete')) AS id),
     a AS (SELECT f.path, i.allocated_bytes FROM images i JOIN files f ON f.id = i.file_id
            WHERE i.scan_id = (SELECT id FROM past)),
     b AS (SELECT f.path, i.allocated_bytes FROM images i JOIN files f ON f.id = i.file_id
            WHERE i.scan_id = (SELECT id FROM now))
SELECT b.path, coalesce(a.allocated_bytes, 0) AS before_bytes, b.allocated_bytes AS after_bytes,
       b.allocated_bytes - coalesce(a.allocated_bytes, 0) AS growth_bytes
  FROM b LEFT JOIN a ON a.path = b.path
 ORDER BY growth_bytes DESC
 LIMIT 20;
