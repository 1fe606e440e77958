-- imgaudit store, schema version 6: a file that is not an image costs its
-- files row and its scan_files row (kind 'not-an-image' or 'archive-skipped')
-- and no entries row of its own any more (a store of 200,000 small files made
-- 600,000 rows a scan, now 400,000).  v_entries shows such files as before,
-- from scan_files; the entries rows earlier scans wrote for them are removed
-- (they said nothing scan_files does not).  Documented in schema/README.md.

DELETE FROM entries
 WHERE kind = 'not-an-image' AND detail IS NULL AND file_id IS NOT NULL
   AND reason IN ('no driver recognises it', 'an archive, not opened (--no-archives)')
   AND EXISTS (SELECT 1 FROM scan_files sf
                WHERE sf.scan_id = entries.scan_id AND sf.file_id = entries.file_id
                  AND sf.kind = CASE entries.reason WHEN 'no driver recognises it'
                                THEN 'not-an-image' ELSE 'archive-skipped' END);

-- What is not an image, per scan (any scan, not only the latest).
CREATE VIEW v_not_images AS
        SELECT sf.scan_id, sf.file_id, f.path, 'not-an-image' AS kind,
               CASE sf.kind WHEN 'archive-skipped' THEN 'an archive, not opened (--no-archives)'
                            ELSE 'no driver recognises it' END AS reason,
               NULL AS detail
          FROM scan_files sf JOIN files f ON f.id = sf.file_id
         WHERE sf.kind IN ('not-an-image', 'archive-skipped');

DROP VIEW v_entries;
CREATE VIEW v_entries AS
        SELECT path, kind, reason, detail FROM entries
         WHERE scan_id = (SELECT id FROM v_latest_scan)
        UNION ALL
        SELECT path, kind, reason, detail FROM v_not_images
         WHERE scan_id = (SELECT id FROM v_latest_scan);

-- The directories each scan walked (the roots too) with their own blocks, so
-- that per-directory totals reconcile with du.
CREATE TABLE dirs (
        scan_id   INTEGER NOT NULL REFERENCES scans (id),
        path      NOT NULL,
        allocated INTEGER NOT NULL
);
CREATE INDEX dirs_scan ON dirs (scan_id, path);

-- Per directory of the latest scan: the bytes on disk beneath it (itself, its
-- directories and every regular file walked there; an archive by its own
-- blocks, its members adding nothing; a hard link counted once, at the first
-- name the walk met), and the regular files.  Without hard links leading out
-- of it, a directory's allocated_bytes is `du -B1 DIR`.
CREATE VIEW v_dir_usage AS
WITH RECURSIVE
        latest(id) AS (SELECT id FROM v_latest_scan),
        items(path, allocated, files) AS (
                SELECT f.path, coalesce(f.allocated, 0), 1
                  FROM scan_files sf JOIN files f ON f.id = sf.file_id
                 WHERE sf.scan_id = (SELECT id FROM latest) AND f.archive_id IS NULL
                   AND sf.kind <> 'external'
                UNION ALL
                SELECT path, allocated, 0 FROM dirs WHERE scan_id = (SELECT id FROM latest)),
        up(anc, allocated, files) AS (
                SELECT path, allocated, files FROM items
                UNION ALL
                SELECT substr(anc, 1, length(rtrim(anc, replace(anc, '/', ''))) - 1), allocated,
                       files
                  FROM up WHERE instr(anc, '/') > 1)
SELECT d.path, sum(u.allocated) AS allocated_bytes, sum(u.files) AS files
  FROM dirs d JOIN up u ON u.anc = d.path
 WHERE d.scan_id = (SELECT id FROM latest)
 GROUP BY d.path;
