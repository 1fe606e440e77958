-- imgaudit store, schema version 5: the VMs that use each disk.  A scan reads
-- the VM definitions found in its roots and in the directories given with
-- --vm-config (libvirt domain XML, Proxmox qemu-server/<vmid>.conf, VMware
-- .vmx, VirtualBox .vbox) and records each VM, each of its disks (the name as
-- written, and the file it resolves to or why not) and, for VirtualBox, the
-- media registry (uuid -> location -> parent).  Documented in schema/README.md.

CREATE TABLE vms (
        id             INTEGER PRIMARY KEY,
        scan_id        INTEGER NOT NULL REFERENCES scans (id),
        kind           TEXT NOT NULL
                       CHECK (kind IN ('libvirt', 'proxmox', 'vmware', 'virtualbox')),
        name           TEXT,
        uuid           TEXT,
        config_path    NOT NULL,
        config_file_id INTEGER REFERENCES files (id)
);
CREATE INDEX vms_scan ON vms (scan_id);

CREATE TABLE vm_disks (
        scan_id  INTEGER NOT NULL REFERENCES scans (id),
        vm_id    INTEGER NOT NULL REFERENCES vms (id),
        target   TEXT,
        bus      TEXT,
        device   TEXT,
        source,
        format   TEXT,
        uuid     TEXT,
        path,
        file_id  INTEGER REFERENCES files (id),
        status   TEXT NOT NULL CHECK (status IN ('ok', 'missing', 'outside-roots', 'not-a-file',
                                                 'empty', 'network', 'pool', 'storage',
                                                 'not-in-registry')),
        detail   TEXT
);
CREATE INDEX vm_disks_scan ON vm_disks (scan_id, file_id);
CREATE INDEX vm_disks_vm ON vm_disks (vm_id);

CREATE TABLE vm_media (
        scan_id     INTEGER NOT NULL REFERENCES scans (id),
        vm_id       INTEGER NOT NULL REFERENCES vms (id),
        uuid        TEXT,
        parent_uuid TEXT,
        location,
        format      TEXT,
        type        TEXT,
        path,
        file_id     INTEGER REFERENCES files (id)
);
CREATE INDEX vm_media_scan ON vm_media (scan_id, uuid);

-- The latest complete scan's VM disks, with the VM and the image they resolve to.
CREATE VIEW v_vm_disks AS
        SELECT v.kind, v.name AS vm, v.uuid AS vm_uuid, v.config_path, d.target, d.bus,
               d.device, d.source, d.format, d.path, d.status, d.file_id,
               (SELECT i.id FROM images i WHERE i.scan_id = d.scan_id
                  AND i.file_id = d.file_id) AS image_id
          FROM vm_disks d JOIN vms v ON v.id = d.vm_id
         WHERE d.scan_id = (SELECT id FROM v_latest_scan);

-- The latest complete scan's images, each with what uses it and its orphan class:
-- 'in-use' (a VM, an image, an OVF or a data reference uses it), 'base' (it was a
-- backing file in an earlier scan or lies in a base directory, and nothing uses it:
-- a true orphan), 'standalone' / 'leaf' (no image uses it and, when VM definitions
-- were read, no VM does; 'presumed-in-use' when no VM definition was read).
CREATE VIEW v_image_users AS
        SELECT i.id AS image_id, f.path, i.format, f.mtime_ns,
               (SELECT count(*) FROM links l JOIN images c ON c.id = l.image_id
                 WHERE l.scan_id = i.scan_id AND l.depth = 0 AND l.kind = 'backing'
                   AND l.status = 'ok' AND l.target_file_id = i.file_id
                   AND c.file_id <> i.file_id) AS children,
               (SELECT count(DISTINCT d.vm_id) FROM vm_disks d
                 WHERE d.scan_id = i.scan_id AND d.file_id = i.file_id) AS vms,
               (SELECT count(*) FROM ovf_disks o
                 WHERE o.scan_id = i.scan_id AND o.member_file_id = i.file_id) AS ovf_refs,
               (SELECT count(*) FROM links l JOIN images c ON c.id = l.image_id
                 WHERE l.scan_id = i.scan_id AND l.status = 'ok'
                   AND l.kind IN ('extent', 'data-file') AND l.target_file_id = i.file_id
                   AND c.file_id <> i.file_id) AS data_refs,
               EXISTS (SELECT 1 FROM links l WHERE l.scan_id = i.scan_id AND l.image_id = i.id
                         AND l.depth = 0 AND l.kind = 'backing') AS has_backing,
               (EXISTS (SELECT 1 FROM links l WHERE l.scan_id < i.scan_id AND l.depth = 0
                          AND l.kind = 'backing' AND l.status = 'ok'
                          AND l.target_file_id = i.file_id)
                OR f.path LIKE '%/\_base/%' ESCAPE '\'
                OR f.path LIKE '%/base-%') AS was_base,
               (SELECT count(*) FROM vms v WHERE v.scan_id = i.scan_id) > 0 AS vm_defs_read
          FROM images i JOIN files f ON f.id = i.file_id
         WHERE i.scan_id = (SELECT id FROM v_latest_scan);

CREATE VIEW v_orphans AS
        SELECT image_id, path, format, mtime_ns,
               CASE WHEN children + vms + ovf_refs + data_refs > 0 THEN 'in-use'
                    WHEN was_base THEN 'base'
                    WHEN NOT vm_defs_read THEN 'presumed-in-use'
                    WHEN has_backing THEN 'leaf'
                    ELSE 'standalone' END AS class
          FROM v_image_users;
