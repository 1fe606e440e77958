-- Images nothing references (latest complete scan): no image uses them as a
-- backing file, extent or data file, and no OVF descriptor names them.  The
-- orphan candidates of `imgaudit report --section=orphans`, oldest first.
-- The modification time is that of the file the scan read.
WITH s AS (SELECT id FROM v_latest_scan)
SELECT f.path, i.format, i.allocated_bytes, i.backing,
       datetime(f.mtime_ns / 1000000000, 'unixepoch') AS modified
  FROM images i JOIN files f ON f.id = i.file_id
 WHERE i.scan_id = (SELECT id FROM s)
   AND NOT EXISTS (SELECT 1 FROM links l JOIN images j ON j.id = l.image_id
                    WHERE l.scan_id = i.scan_id AND l.target_file_id = i.file_id
                      AND l.status = 'ok' AND j.file_id <> i.file_id)
   AND NOT EXISTS (SELECT 1 FROM ovf_disks o
                    WHERE o.scan_id = i.scan_id AND o.member_file_id = i.file_id)
 ORDER BY f.mtime_ns, f.path;
