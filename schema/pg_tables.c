/*
 * The shared table list: see pg_tables.h.  Column order is the local
 * schema's (schema/NNN_*.sql); the central one (schema/pg/) follows it.
 */
#include "pg_tables.h"
#include "banned.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct ia_pg_col scans[] = {
    {"id", NULL, 'i'},
    {"started_at", NULL, 't'},
    {"finished_at", NULL, 't'},
    {"status", NULL, 't'},
    {"exit_status", NULL, 'i'},
    {"abort_reason", NULL, 't'},
    {"pid", NULL, 'i'},
    {"host", "scan_host", 't'},
    {"tool_version", NULL, 't'},
    {"files_seen", NULL, 'i'},
    {"files_read", NULL, 'i'},
    {"files_reused", NULL, 'i'},
    {"layers_mapped", NULL, 'i'},
    {"images", NULL, 'i'},
    {"map_rows", NULL, 'i'},
    {"problems", NULL, 'i'},
    {"started_ns", NULL, 'i'},
    {"db_path", NULL, 'p'},
};
static const struct ia_pg_col scan_roots[] = {
    {"scan_id", NULL, 'i'},
    {"role", NULL, 't'},
    {"path", NULL, 'p'},
};
static const struct ia_pg_col files[] = {
    {"id", NULL, 'i'},       {"path", NULL, 'p'},      {"archive_id", NULL, 'i'},
    {"member", NULL, 'p'},   {"dev", NULL, 'i'},       {"ino", NULL, 'i'},
    {"size", NULL, 'i'},     {"allocated", NULL, 'i'}, {"mtime_ns", NULL, 'i'},
    {"ctime_ns", NULL, 'i'},
};
static const struct ia_pg_col scan_files[] = {
    {"scan_id", NULL, 'i'},
    {"file_id", NULL, 'i'},
    {"kind", NULL, 't'},
    {"reused", NULL, 'i'},
};
static const struct ia_pg_col entries[] = {
    {"scan_id", NULL, 'i'}, {"path", NULL, 'p'},   {"kind", NULL, 't'},
    {"reason", NULL, 't'},  {"detail", NULL, 'p'}, {"file_id", NULL, 'i'},
};
static const struct ia_pg_col images[] = {
    {"id", NULL, 'i'},
    {"scan_id", NULL, 'i'},
    {"file_id", NULL, 'i'},
    {"format", NULL, 't'},
    {"format_probed", NULL, 'i'},
    {"virtual_size", NULL, 'i'},
    {"file_size", NULL, 'i'},
    {"allocated_bytes", NULL, 'i'},
    {"cluster_size", NULL, 'i'},
    {"dirty", NULL, 'i'},
    {"corrupt", NULL, 'i'},
    {"encrypted", NULL, 'i'},
    {"snapshots", NULL, 'i'},
    {"external_data", NULL, 'i'},
    {"pending_log", NULL, 'i'},
    {"backing", NULL, 'p'},
    {"backing_fmt", NULL, 't'},
    {"chain_depth", NULL, 'i'},
    {"status", NULL, 't'},
    {"error", NULL, 't'},
    {"reused_from", NULL, 'i'},
    {"map_image_id", NULL, 'i'},
    {"own_data_bytes", NULL, 'i'},
    {"backing_data_bytes", NULL, 'i'},
    {"zero_bytes", NULL, 'i'},
    {"unallocated_bytes", NULL, 'i'},
    {"compressed_bytes", NULL, 'i'},
    {"unknown_bytes", NULL, 'i'},
    {"mapped_bytes", NULL, 'i'},
    {"map_rows", NULL, 'i'},
    {"recognised_by", NULL, 't'},
};
static const struct ia_pg_col links[] = {
    {"scan_id", NULL, 'i'},        {"image_id", NULL, 'i'},    {"depth", NULL, 'i'},
    {"from_file_id", NULL, 'i'},   {"kind", NULL, 't'},        {"name", NULL, 'p'},
    {"target_file_id", NULL, 'i'}, {"target_path", NULL, 'p'}, {"status", NULL, 't'},
    {"error", NULL, 't'},
};
static const struct ia_pg_col map[] = {
    {"image_id", NULL, 'i'}, {"start", NULL, 'i'},      {"length", NULL, 'i'},
    {"depth", NULL, 'i'},    {"present", NULL, 'i'},    {"zero", NULL, 'i'},
    {"data", NULL, 'i'},     {"compressed", NULL, 'i'}, {"\"offset\"", NULL, 'i'},
    {"file_id", NULL, 'i'},
};
static const struct ia_pg_col findings[] = {
    {"scan_id", NULL, 'i'}, {"image_id", NULL, 'i'}, {"file_id", NULL, 'i'},
    {"code", NULL, 't'},    {"message", NULL, 't'},
};
static const struct ia_pg_col ovf_disks[] = {
    {"scan_id", NULL, 'i'},        {"archive_file_id", NULL, 'i'}, {"disk_id", NULL, 't'},
    {"href", NULL, 'p'},           {"capacity", NULL, 'i'},        {"format", NULL, 't'},
    {"member_file_id", NULL, 'i'},
};
static const struct ia_pg_col layers[] = {
    {"id", NULL, 'i'},     {"kind", NULL, 't'}, {"file_id", NULL, 'i'},
    {"format", NULL, 't'}, {"deps", NULL, 't'}, {"tool_version", NULL, 't'},
    {"size", NULL, 'i'},   {"runs", NULL, 'i'}, {"scan_id", NULL, 'i'},
};
static const struct ia_pg_col layer_runs[] = {
    {"layer_id", NULL, 'i'},   {"start", NULL, 'i'},      {"length", NULL, 'i'},
    {"present", NULL, 'i'},    {"zero", NULL, 'i'},       {"data", NULL, 'i'},
    {"compressed", NULL, 'i'}, {"\"offset\"", NULL, 'i'}, {"file_id", NULL, 'i'},
};
static const struct ia_pg_col pieces[] = {
    {"image_id", NULL, 'i'}, {"start", NULL, 'i'}, {"length", NULL, 'i'},
    {"depth", NULL, 'i'},    {"kind", NULL, 't'},  {"layer_id", NULL, 'i'},
};
static const struct ia_pg_col chain_layers[] = {
    {"image_id", NULL, 'i'}, {"depth", NULL, 'i'},      {"file_id", NULL, 'i'},
    {"layer_id", NULL, 'i'}, {"data_bytes", NULL, 'i'}, {"zero_bytes", NULL, 'i'},
};

const struct ia_pg_table ia_pg_tables[IA_PGT_COUNT] = {
    [IA_PGT_SCANS] = {"scans", scans, N(scans)},
    [IA_PGT_SCAN_ROOTS] = {"scan_roots", scan_roots, N(scan_roots)},
    [IA_PGT_FILES] = {"files", files, N(files)},
    [IA_PGT_SCAN_FILES] = {"scan_files", scan_files, N(scan_files)},
    [IA_PGT_ENTRIES] = {"entries", entries, N(entries)},
    [IA_PGT_IMAGES] = {"images", images, N(images)},
    [IA_PGT_LINKS] = {"links", links, N(links)},
    [IA_PGT_MAP] = {"map", map, N(map)},
    [IA_PGT_FINDINGS] = {"findings", findings, N(findings)},
    [IA_PGT_OVF_DISKS] = {"ovf_disks", ovf_disks, N(ovf_disks)},
    [IA_PGT_LAYERS] = {"layers", layers, N(layers)},
    [IA_PGT_LAYER_RUNS] = {"layer_runs", layer_runs, N(layer_runs)},
    [IA_PGT_PIECES] = {"pieces", pieces, N(pieces)},
    [IA_PGT_CHAIN_LAYERS] = {"chain_layers", chain_layers, N(chain_layers)},
};
