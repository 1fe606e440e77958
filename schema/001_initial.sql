-- imgaudit store, schema version 1: scans, the files they saw, the images,
-- links, maps and findings they recorded, and the stable views.
-- Documented column by column in schema/README.md.  Path columns have no
-- declared type: they hold TEXT when the name is valid UTF-8 and a BLOB of
-- the exact bytes otherwise, so every name round-trips byte for byte.

CREATE TABLE scans (
        id            INTEGER PRIMARY KEY,
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        status        TEXT NOT NULL CHECK (status IN ('running', 'complete', 'aborted')),
        exit_status   INTEGER,
        abort_reason  TEXT,
        pid           INTEGER NOT NULL,
        host          TEXT NOT NULL,
        tool_version  TEXT NOT NULL,
        files_seen    INTEGER NOT NULL DEFAULT 0,
        files_read    INTEGER NOT NULL DEFAULT 0,
        files_reused  INTEGER NOT NULL DEFAULT 0,
        layers_mapped INTEGER NOT NULL DEFAULT 0,
        images        INTEGER NOT NULL DEFAULT 0,
        map_rows      INTEGER NOT NULL DEFAULT 0,
        problems      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE scan_roots (
        scan_id INTEGER NOT NULL REFERENCES scans (id),
        role    TEXT NOT NULL CHECK (role IN ('scan', 'allow')),
        path    NOT NULL
);
CREATE INDEX scan_roots_scan ON scan_roots (scan_id);

CREATE TABLE files (
        id         INTEGER PRIMARY KEY,
        path       NOT NULL,
        archive_id INTEGER REFERENCES files (id),
        member,
        dev        INTEGER,
        ino        INTEGER,
        size       INTEGER NOT NULL,
        allocated  INTEGER,
        mtime_ns   INTEGER,
        ctime_ns   INTEGER
);
CREATE INDEX files_path ON files (path);

CREATE TABLE scan_files (
        scan_id INTEGER NOT NULL REFERENCES scans (id),
        file_id INTEGER NOT NULL REFERENCES files (id),
        kind    TEXT NOT NULL,
        reused  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scan_id, file_id)
) WITHOUT ROWID;

CREATE TABLE entries (
        scan_id INTEGER NOT NULL REFERENCES scans (id),
        path    NOT NULL,
        kind    TEXT NOT NULL,
        reason  TEXT,
        detail,
        file_id INTEGER REFERENCES files (id)
);
CREATE INDEX entries_scan ON entries (scan_id);

CREATE TABLE images (
        id              INTEGER PRIMARY KEY,
        scan_id         INTEGER NOT NULL REFERENCES scans (id),
        file_id         INTEGER NOT NULL REFERENCES files (id),
        format          TEXT,
        format_probed   INTEGER NOT NULL DEFAULT 1,
        virtual_size    INTEGER,
        file_size       INTEGER NOT NULL,
        allocated_bytes INTEGER,
        cluster_size    INTEGER,
        dirty           INTEGER NOT NULL DEFAULT 0,
        corrupt         INTEGER NOT NULL DEFAULT 0,
        encrypted       INTEGER NOT NULL DEFAULT 0,
        snapshots       INTEGER NOT NULL DEFAULT 0,
        external_data   INTEGER NOT NULL DEFAULT 0,
        pending_log     INTEGER NOT NULL DEFAULT 0,
        backing,
        backing_fmt     TEXT,
        chain_depth     INTEGER NOT NULL DEFAULT 0,
        status          TEXT NOT NULL,
        error           TEXT,
        reused_from     INTEGER
);
CREATE INDEX images_scan ON images (scan_id, file_id);

CREATE TABLE links (
        scan_id        INTEGER NOT NULL REFERENCES scans (id),
        image_id       INTEGER NOT NULL REFERENCES images (id),
        depth          INTEGER NOT NULL,
        from_file_id   INTEGER REFERENCES files (id),
        kind           TEXT NOT NULL,
        name           NOT NULL,
        target_file_id INTEGER REFERENCES files (id),
        target_path,
        status         TEXT NOT NULL,
        error          TEXT
);
CREATE INDEX links_image ON links (image_id);
CREATE INDEX links_scan ON links (scan_id);

CREATE TABLE map (
        image_id   INTEGER NOT NULL REFERENCES images (id),
        start      INTEGER NOT NULL,
        length     INTEGER NOT NULL,
        depth      INTEGER NOT NULL,
        present    INTEGER NOT NULL,
        zero       INTEGER NOT NULL,
        data       INTEGER NOT NULL,
        compressed INTEGER NOT NULL,
        offset     INTEGER,
        file_id    INTEGER REFERENCES files (id),
        PRIMARY KEY (image_id, start)
) WITHOUT ROWID;

CREATE TABLE findings (
        scan_id  INTEGER NOT NULL REFERENCES scans (id),
        image_id INTEGER REFERENCES images (id),
        file_id  INTEGER REFERENCES files (id),
        code     TEXT NOT NULL,
        message  TEXT NOT NULL
);
CREATE INDEX findings_scan ON findings (scan_id);
CREATE INDEX findings_image ON findings (image_id);

CREATE TABLE ovf_disks (
        scan_id         INTEGER NOT NULL REFERENCES scans (id),
        archive_file_id INTEGER NOT NULL REFERENCES files (id),
        disk_id         TEXT,
        href,
        capacity        INTEGER,
        format          TEXT,
        member_file_id  INTEGER REFERENCES files (id)
);
CREATE INDEX ovf_disks_scan ON ovf_disks (scan_id);

-- The stable views: the latest complete scan.
CREATE VIEW v_latest_scan AS
        SELECT max(id) AS id FROM scans WHERE status = 'complete';

CREATE VIEW v_images AS
        SELECT f.path, i.format, i.virtual_size, i.file_size, i.allocated_bytes, i.backing,
               (SELECT l.target_path FROM links l
                 WHERE l.image_id = i.id AND l.depth = 0 AND l.kind = 'backing') AS backing_path,
               i.chain_depth, i.status, i.error
          FROM images i JOIN files f ON f.id = i.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);

CREATE VIEW v_map AS
        SELECT f.path, m.start, m.length, m.depth, m.present, m.zero, m.data, m.compressed,
               m.offset, t.path AS file
          FROM images i JOIN files f ON f.id = i.file_id
               JOIN map m ON m.image_id = i.id
               LEFT JOIN files t ON t.id = m.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);

CREATE VIEW v_links AS
        SELECT f.path, l.name AS backing, l.target_path, l.status, l.kind
          FROM links l JOIN images i ON i.id = l.image_id JOIN files f ON f.id = i.file_id
         WHERE l.depth = 0 AND l.scan_id = (SELECT id FROM v_latest_scan);

CREATE VIEW v_entries AS
        SELECT path, kind, reason, detail FROM entries
         WHERE scan_id = (SELECT id FROM v_latest_scan);

CREATE VIEW v_findings AS
        SELECT f.path, x.code, x.message
          FROM findings x LEFT JOIN files f ON f.id = x.file_id
         WHERE x.scan_id = (SELECT id FROM v_latest_scan);
