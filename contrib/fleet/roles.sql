-- The two roles of a fleet database, with only the rights each needs.
-- Run as the owner of the imgaudit tables (the role that ran
-- `imgaudit pg-migrate`), in the fleet database, after pg-migrate:
--
--   psql -d fleet -f /usr/share/doc/imgaudit/contrib/fleet/roles.sql
--   psql -d fleet -c "\password imgaudit_push"    (or use certificates, see README)
--
-- imgaudit_push: what `imgaudit push` does and nothing else: read the ids
--   it compares, append rows, and update its own store's row (host name,
--   last push).  No UPDATE or DELETE of scan rows, no DDL: the schema is
--   upgraded by `imgaudit pg-migrate` run as the owner.
-- imgaudit_read: read every table and view (`imgaudit report --db`, psql,
--   dashboards), write nothing.
-- A later schema/pg/ migration that adds tables lists its own GRANTs.

CREATE ROLE imgaudit_push LOGIN;
CREATE ROLE imgaudit_read LOGIN;

GRANT USAGE ON SCHEMA public TO imgaudit_push, imgaudit_read;

GRANT SELECT ON imgaudit_schema TO imgaudit_push;
GRANT SELECT, INSERT ON stores, scans, scan_roots, files, scan_files, entries, images, links,
        map, findings, ovf_disks, layers, layer_runs_packed, pieces, chain_layers TO imgaudit_push;
GRANT SELECT ON layer_runs TO imgaudit_push;
GRANT UPDATE (host, last_pushed_at) ON stores TO imgaudit_push;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO imgaudit_read;
