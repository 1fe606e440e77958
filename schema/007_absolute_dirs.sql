-- Schema 7: v_dir_usage over absolute paths.
--
-- Scan roots are canonical (absolute) from this version on, so every stored
-- path starts with '/'.  v_dir_usage (schema 6) climbed from a path to its
-- directories only while a '/' came after the first byte, which stops an
-- absolute path at once: every directory showed its own blocks only.  It
-- now climbs while the path has a '/' at all ("/a/b" gives "/a", then "/"),
-- relative paths of older scans as before ("a/b" gives "a").  No table
-- changes.
DROP VIEW v_dir_usage;
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
                SELECT CASE WHEN instr(substr(anc, 2), '/') = 0 AND substr(anc, 1, 1) = '/'
                            THEN '/'
                            ELSE substr(anc, 1, length(rtrim(anc, replace(anc, '/', ''))) - 1)
                       END, allocated, files
                  FROM up WHERE instr(anc, '/') > 0 AND anc <> '/')
SELECT d.path, sum(u.allocated) AS allocated_bytes, sum(u.files) AS files
  FROM dirs d JOIN up u ON u.anc = d.path
 WHERE d.scan_id = (SELECT id FROM latest)
 GROUP BY d.path;
