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
