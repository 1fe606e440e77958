-- imgaudit central (fleet) schema, version 1, for PostgreSQL.
--
-- Every host keeps its own SQLite store (schema/*.sql) and pushes its
-- complete scans here with `imgaudit push`.  The tables are the local ones
-- with the store's identity (store_identity.store_id of the local store) in
-- front of every key, so the local ids are kept as they are and a scan
-- pushed twice is stored once.  A path column of the local store holds TEXT
-- or, for a name that is not valid UTF-8, a BLOB of its bytes: here it is
-- two columns, `path` (text: the name, with each byte that is not UTF-8
-- written \xNN) and `path_raw` (bytea: the exact bytes, only when the local
-- value was a BLOB; NULL otherwise).  No foreign keys: a scan arrives whole in
-- one transaction, and the keys are checked where they are made (the local
-- store).  Documented in schema/README.md ("The central database").

CREATE TABLE imgaudit_schema (
        version    integer NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per local store: its identity and the host it pushes for.
CREATE TABLE stores (
        store_id        uuid PRIMARY KEY,
        host            text NOT NULL,
        first_pushed_at timestamptz NOT NULL DEFAULT now(),
        last_pushed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stores_host ON stores (host);

CREATE TABLE scans (
        store_id      uuid NOT NULL,
        id            bigint NOT NULL,
        host          text NOT NULL,  -- the fleet host name given to push
        started_at    text NOT NULL,
        finished_at   text,
        status        text NOT NULL,
        exit_status   bigint,
        abort_reason  text,
        pid           bigint NOT NULL,
        scan_host     text NOT NULL,  -- scans.host of the local store: the scanner's hostname
        tool_version  text NOT NULL,
        files_seen    bigint NOT NULL,
        files_read    bigint NOT NULL,
        files_reused  bigint NOT NULL,
        layers_mapped bigint NOT NULL,
        images        bigint NOT NULL,
        map_rows      bigint NOT NULL,
        problems      bigint NOT NULL,
        started_ns    bigint,
        db_path       text,
        db_path_raw   bytea,
        pushed_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (store_id, id)
);
CREATE INDEX scans_host ON scans (host, id);

CREATE TABLE scan_roots (
        store_id uuid NOT NULL,
        scan_id  bigint NOT NULL,
        role     text NOT NULL,
        path     text NOT NULL,
        path_raw bytea
);
CREATE INDEX scan_roots_scan ON scan_roots (store_id, scan_id);

CREATE TABLE files (
        store_id   uuid NOT NULL,
        id         bigint NOT NULL,
        path       text NOT NULL,
        path_raw   bytea,
        archive_id bigint,
        member     text,
        member_raw bytea,
        dev        bigint,
        ino        bigint,
        size       bigint NOT NULL,
        allocated  bigint,
        mtime_ns   bigint,
        ctime_ns   bigint,
        PRIMARY KEY (store_id, id)
);
CREATE INDEX files_path ON files (store_id, path);

CREATE TABLE scan_files (
        store_id uuid NOT NULL,
        scan_id  bigint NOT NULL,
        file_id  bigint NOT NULL,
        kind     text NOT NULL,
        reused   bigint NOT NULL,
        PRIMARY KEY (store_id, scan_id, file_id)
);

CREATE TABLE entries (
        store_id   uuid NOT NULL,
        scan_id    bigint NOT NULL,
        path       text NOT NULL,
        path_raw   bytea,
        kind       text NOT NULL,
        reason     text,
        detail     text,
        detail_raw bytea,
        file_id    bigint
);
CREATE INDEX entries_scan ON entries (store_id, scan_id);

CREATE TABLE images (
        store_id           uuid NOT NULL,
        id                 bigint NOT NULL,
        scan_id            bigint NOT NULL,
        file_id            bigint NOT NULL,
        format             text,
        format_probed      bigint NOT NULL,
        virtual_size       bigint,
        file_size          bigint NOT NULL,
        allocated_bytes    bigint,
        cluster_size       bigint,
        dirty              bigint NOT NULL,
        corrupt            bigint NOT NULL,
        encrypted          bigint NOT NULL,
        snapshots          bigint NOT NULL,
        external_data      bigint NOT NULL,
        pending_log        bigint NOT NULL,
        backing            text,
        backing_raw        bytea,
        backing_fmt        text,
        chain_depth        bigint NOT NULL,
        status             text NOT NULL,
        error              text,
        reused_from        bigint,
        map_image_id       bigint,
        own_data_bytes     bigint,
        backing_data_bytes bigint,
        zero_bytes         bigint,
        unallocated_bytes  bigint,
        compressed_bytes   bigint,
        unknown_bytes      bigint,
        mapped_bytes       bigint,
        map_rows           bigint,
        recognised_by      text,
        PRIMARY KEY (store_id, id)
);
CREATE INDEX images_scan ON images (store_id, scan_id, file_id);

CREATE TABLE links (
        store_id        uuid NOT NULL,
        scan_id         bigint NOT NULL,
        image_id        bigint NOT NULL,
        depth           bigint NOT NULL,
        from_file_id    bigint,
        kind            text NOT NULL,
        name            text NOT NULL,
        name_raw        bytea,
        target_file_id  bigint,
        target_path     text,
        target_path_raw bytea,
        status          text NOT NULL,
        error           text
);
CREATE INDEX links_image ON links (store_id, image_id);
CREATE INDEX links_scan ON links (store_id, scan_id);

-- Schema-2 map rows of the local store (history), as they were.
CREATE TABLE map (
        store_id   uuid NOT NULL,
        image_id   bigint NOT NULL,
        start      bigint NOT NULL,
        length     bigint NOT NULL,
        depth      bigint NOT NULL,
        present    bigint NOT NULL,
        zero       bigint NOT NULL,
        data       bigint NOT NULL,
        compressed bigint NOT NULL,
        "offset"   bigint,
        file_id    bigint,
        PRIMARY KEY (store_id, image_id, start)
);

CREATE TABLE findings (
        store_id uuid NOT NULL,
        scan_id  bigint NOT NULL,
        image_id bigint,
        file_id  bigint,
        code     text NOT NULL,
        message  text NOT NULL
);
CREATE INDEX findings_scan ON findings (store_id, scan_id);

CREATE TABLE ovf_disks (
        store_id        uuid NOT NULL,
        scan_id         bigint NOT NULL,
        archive_file_id bigint NOT NULL,
        disk_id         text,
        href            text,
        href_raw        bytea,
        capacity        bigint,
        format          text,
        member_file_id  bigint
);
CREATE INDEX ovf_disks_scan ON ovf_disks (store_id, scan_id);

-- A layer's fingerprint: the content identity fleet views match bases by,
-- together with format and size.  The lowercase hex of the 64-bit FNV-1a
-- hash of its runs in order, each run as the seven little-endian 64-bit
-- words start, length, present, zero, data, compressed, offset (-1 when
-- NULL), computed by imgaudit push from the stored runs (never from the
-- file).  Two copies of one image file have the same runs, hence the same
-- fingerprint; a copy that changed any allocation differs.
CREATE TABLE layers (
        store_id     uuid NOT NULL,
        id           bigint NOT NULL,
        kind         text NOT NULL,
        file_id      bigint NOT NULL,
        format       text NOT NULL,
        deps         text NOT NULL,
        tool_version text NOT NULL,
        size         bigint NOT NULL,
        runs         bigint NOT NULL,
        scan_id      bigint NOT NULL,
        fingerprint  text NOT NULL,
        PRIMARY KEY (store_id, id)
);
CREATE INDEX layers_content ON layers (format, size, fingerprint);

CREATE TABLE layer_runs (
        store_id   uuid NOT NULL,
        layer_id   bigint NOT NULL,
        start      bigint NOT NULL,
        length     bigint NOT NULL,
        present    bigint NOT NULL,
        zero       bigint NOT NULL,
        data       bigint NOT NULL,
        compressed bigint NOT NULL,
        "offset"   bigint,
        file_id    bigint,
        PRIMARY KEY (store_id, layer_id, start)
);

CREATE TABLE pieces (
        store_id uuid NOT NULL,
        image_id bigint NOT NULL,
        start    bigint NOT NULL,
        length   bigint NOT NULL,
        depth    bigint NOT NULL,
        kind     text NOT NULL,
        layer_id bigint,
        PRIMARY KEY (store_id, image_id, start)
);

CREATE TABLE chain_layers (
        store_id   uuid NOT NULL,
        image_id   bigint NOT NULL,
        depth      bigint NOT NULL,
        file_id    bigint,
        layer_id   bigint,
        data_bytes bigint NOT NULL,
        zero_bytes bigint NOT NULL,
        PRIMARY KEY (store_id, image_id, depth)
);
CREATE INDEX chain_layers_file ON chain_layers (store_id, file_id);

-- ---- the views: the latest complete scan of every store, host first ----

CREATE VIEW v_latest_scan AS
        SELECT t.host, s.store_id, max(s.id) AS id
          FROM scans s JOIN stores t ON t.store_id = s.store_id
         WHERE s.status = 'complete'
         GROUP BY t.host, s.store_id;

CREATE VIEW v_images AS
        SELECT v.host, f.path, i.format, i.virtual_size, i.file_size, i.allocated_bytes, i.backing,
               (SELECT l.target_path FROM links l
                 WHERE l.store_id = i.store_id AND l.image_id = i.id AND l.depth = 0
                   AND l.kind = 'backing' LIMIT 1) AS backing_path,
               i.chain_depth, i.status, i.error, i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id;

CREATE VIEW v_map AS
        SELECT v.host, f.path, greatest(p.start, r.start) AS start,
               least(p.start + p.length, r.start + r.length) - greatest(p.start, r.start) AS length,
               p.depth, r.present, CASE WHEN r.zero <> 0 OR r.data = 0 THEN 1 ELSE 0 END AS zero,
               r.data, r.compressed,
               r."offset" + (greatest(p.start, r.start) - r.start) AS "offset", t.path AS file,
               i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN pieces p ON p.store_id = i.store_id
                    AND p.image_id = coalesce(i.map_image_id, i.id) AND p.kind = 'layer'
               JOIN layer_runs r ON r.store_id = p.store_id AND r.layer_id = p.layer_id
                    AND r.start >= (SELECT max(q.start) FROM layer_runs q
                                     WHERE q.store_id = p.store_id AND q.layer_id = p.layer_id
                                       AND q.start <= p.start)
                    AND r.start < p.start + p.length
               LEFT JOIN files t ON t.store_id = r.store_id AND t.id = r.file_id
        UNION ALL
        SELECT v.host, f.path, p.start, p.length, p.depth, 0,
               CASE WHEN p.kind = 'end' THEN 0 END, CASE WHEN p.kind = 'end' THEN 0 END, 0,
               NULL, NULL, i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN pieces p ON p.store_id = i.store_id
                    AND p.image_id = coalesce(i.map_image_id, i.id) AND p.kind <> 'layer'
        UNION ALL
        SELECT v.host, f.path, m.start, m.length, m.depth, m.present, m.zero, m.data,
               m.compressed, m."offset", t.path, i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN map m ON m.store_id = i.store_id AND m.image_id = coalesce(i.map_image_id, i.id)
               LEFT JOIN files t ON t.store_id = m.store_id AND t.id = m.file_id;

CREATE VIEW v_links AS
        SELECT v.host, f.path, l.name AS backing, l.target_path, l.status, l.kind, l.store_id
          FROM v_latest_scan v
               JOIN links l ON l.store_id = v.store_id AND l.scan_id = v.id
               JOIN images i ON i.store_id = l.store_id AND i.id = l.image_id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
         WHERE l.depth = 0
        UNION ALL
        SELECT DISTINCT v.host, f.path, l.name, l.target_path, l.status, l.kind, l.store_id
          FROM v_latest_scan v
               JOIN links l ON l.store_id = v.store_id AND l.scan_id = v.id
               JOIN files f ON f.store_id = l.store_id AND f.id = l.from_file_id
         WHERE l.depth > 0
           AND NOT EXISTS (SELECT 1 FROM images j
                            WHERE j.store_id = l.store_id AND j.scan_id = l.scan_id
                              AND j.file_id = l.from_file_id);

CREATE VIEW v_entries AS
        SELECT v.host, e.path, e.kind, e.reason, e.detail, e.store_id
          FROM v_latest_scan v JOIN entries e ON e.store_id = v.store_id AND e.scan_id = v.id;

CREATE VIEW v_findings AS
        SELECT v.host, f.path, x.code, x.message, x.store_id
          FROM v_latest_scan v
               JOIN findings x ON x.store_id = v.store_id AND x.scan_id = v.id
               LEFT JOIN files f ON f.store_id = x.store_id AND f.id = x.file_id;

CREATE VIEW v_space AS
        SELECT v.host, f.path, i.format, i.virtual_size, i.allocated_bytes, i.own_data_bytes,
               i.backing_data_bytes, i.zero_bytes, i.unallocated_bytes, i.compressed_bytes,
               i.unknown_bytes, i.mapped_bytes, i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id;

CREATE VIEW v_base_readers AS
        SELECT v.host, b.path AS base, f.path AS image, c.depth, c.data_bytes, c.zero_bytes,
               i.store_id
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN files f ON f.store_id = i.store_id AND f.id = i.file_id
               JOIN chain_layers c ON c.store_id = i.store_id
                    AND c.image_id = coalesce(i.map_image_id, i.id) AND c.depth > 0
               JOIN files b ON b.store_id = c.store_id AND b.id = c.file_id;

-- ---- fleet views ----

-- Per host (and store): its latest complete scan and the store's totals.
CREATE VIEW v_fleet_hosts AS
        SELECT v.host, v.store_id, v.id AS scan_id, s.started_at, s.finished_at,
               count(i.id) AS images,
               coalesce(sum(i.virtual_size), 0) AS virtual_size,
               coalesce(sum(i.file_size), 0) AS file_size,
               coalesce(sum(i.allocated_bytes), 0) AS allocated_bytes,
               coalesce(sum(i.own_data_bytes), 0) AS own_data_bytes,
               coalesce(sum(i.backing_data_bytes), 0) AS backing_data_bytes,
               coalesce(sum(i.unknown_bytes), 0) AS unknown_bytes,
               count(i.id) FILTER (WHERE i.status <> 'ok') AS broken_images,
               s.problems
          FROM v_latest_scan v
               JOIN scans s ON s.store_id = v.store_id AND s.id = v.id
               LEFT JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
         GROUP BY v.host, v.store_id, v.id, s.started_at, s.finished_at, s.problems;

-- Every backing file some image reads from (a layer at depth > 0 of a
-- chain) in the latest scans, by content identity: format, virtual size and
-- the layer's fingerprint.  Identities present on two hosts or more are
-- copies of one base.
CREATE VIEW v_fleet_base_layers AS
        SELECT DISTINCT v.host, l.store_id, l.format, l.size AS virtual_size, l.fingerprint,
               b.path, b.allocated
          FROM v_latest_scan v
               JOIN images i ON i.store_id = v.store_id AND i.scan_id = v.id
               JOIN chain_layers c ON c.store_id = i.store_id
                    AND c.image_id = coalesce(i.map_image_id, i.id) AND c.depth > 0
               JOIN layers l ON l.store_id = c.store_id AND l.id = c.layer_id AND l.kind = 'layer'
               JOIN files b ON b.store_id = l.store_id AND b.id = l.file_id;

CREATE VIEW v_fleet_bases AS
        SELECT format, virtual_size, fingerprint, count(DISTINCT host) AS hosts,
               string_agg(DISTINCT host, ',' ORDER BY host) AS host_list,
               count(*) AS copies, coalesce(sum(allocated), 0) AS allocated_bytes,
               min(path) AS example_path
          FROM v_fleet_base_layers
         GROUP BY format, virtual_size, fingerprint
        HAVING count(DISTINCT host) > 1;

-- Per host and complete scan: the totals and the growth since the host's
-- previous complete scan.
CREATE VIEW v_fleet_growth AS
        SELECT host, store_id, scan_id, started_at, images, allocated_bytes, virtual_size,
               allocated_bytes - lag(allocated_bytes) OVER w AS allocated_growth,
               images - lag(images) OVER w AS images_growth
          FROM (SELECT s.host, s.store_id, s.id AS scan_id, s.started_at,
                       count(i.id) AS images,
                       coalesce(sum(i.allocated_bytes), 0) AS allocated_bytes,
                       coalesce(sum(i.virtual_size), 0) AS virtual_size
                  FROM scans s LEFT JOIN images i ON i.store_id = s.store_id AND i.scan_id = s.id
                 WHERE s.status = 'complete'
                 GROUP BY s.host, s.store_id, s.id, s.started_at) g
        WINDOW w AS (PARTITION BY host, store_id ORDER BY scan_id);
