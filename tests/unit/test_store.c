/*
 * The store: creation and migration (user_version), refusal of damaged and
 * foreign databases, the writer (records in, rows out, map chunks), the
 * carry-over of an image with its map, the scan row's visibility rule, and
 * byte-exact paths (TEXT when UTF-8, BLOB otherwise).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schema.h"
#include "store.h"
#include "store_sql.h"

/* The version the store migrates to: its last embedded schema file. */
static int latest_schema(void)
{
        int v = 0;

        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++)
                v = atoi(f->name);
        return v;
}

static char dir[] = "/tmp/imgaudit-test-store.XXXXXX";
static char path[256];

static int64_t q(struct ia_store *s, const char *sql)
{
        sqlite3_stmt *st;
        int64_t v = -1;

        assert_int_equal(sqlite3_prepare_v2(ia_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return v;
}

static void test_utf8(void **state)
{
        (void)state;
        assert_true(ia_utf8_valid("plain", 5));
        assert_true(ia_utf8_valid("caf\xc3\xa9", 5));
        assert_true(ia_utf8_valid("new\nline", 8));
        assert_false(ia_utf8_valid("bad\xff", 4));
        assert_false(ia_utf8_valid("\xc3", 1));             /* truncated */
        assert_false(ia_utf8_valid("\xc0\xaf", 2));         /* overlong */
        assert_false(ia_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
        assert_false(ia_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static struct ia_rec *file_rec(int64_t id, const char *p)
{
        struct ia_rec *r = ia_rec_new(IA_REC_FILE);

        r->u.file.id = id;
        r->u.file.path = strdup(p);
        r->u.file.size = 1;
        return r;
}

static void test_scan_cycle(void **state)
{
        struct ia_store *s;
        struct ia_error err;
        struct ia_scan_stats st = {0};
        const char *roots[] = {"root"};
        int64_t scan1, scan2;
        uint64_t rows;
        int dead;

        (void)state;
        assert_int_equal(ia_store_open(path, &s, &err), 0);
        assert_int_equal(q(s, "PRAGMA user_version"), latest_schema());
        assert_int_equal(ia_store_begin_scan(s, roots, 1, NULL, 0, &scan1, &err), 0);
        assert_int_equal(ia_store_writer_start(s, scan1, 4, &err), 0);
        assert_int_equal(ia_store_put(s, file_rec(1, "root/a.qcow2")), 0);
        assert_int_equal(ia_store_put(s, file_rec(2, "root/bad\xff")), 0);
        {
                struct ia_rec *r = ia_rec_new(IA_REC_IMAGE);

                r->u.image.id = 10;
                r->u.image.file_id = 1;
                r->u.image.format = strdup("qcow2");
                r->u.image.status = strdup("ok");
                r->u.image.has_space = true;
                r->u.image.map_rows = 5 * IA_MAP_CHUNK;
                r->u.image.sp.own_data = 5 * IA_MAP_CHUNK / 2 * 65536;
                ia_store_put(s, r);
        }
        {
                /* its one layer: runs in chunks, and one piece that the layer decides */
                struct ia_rec *r = ia_rec_new(IA_REC_LAYER);

                r->u.layer.id = 1;
                r->u.layer.kind = "layer";
                r->u.layer.file_id = 1;
                r->u.layer.format = strdup("qcow2");
                r->u.layer.size = 5 * IA_MAP_CHUNK * 65536;
                r->u.layer.runs = 5 * IA_MAP_CHUNK;
                ia_store_put(s, r);
                r = ia_rec_new(IA_REC_PIECES);
                r->u.pieces.image_id = 10;
                r->u.pieces.pieces[r->u.pieces.n++] =
                    (struct ia_piece_row){0, 5 * IA_MAP_CHUNK * 65536, 1, 0, "layer"};
                ia_store_put(s, r);
        }
        for (int c = 0; c < 5; c++) {
                struct ia_rec *r = ia_rec_new(IA_REC_RUNS);

                r->u.runs.layer_id = 1;
                for (size_t i = 0; i < IA_MAP_CHUNK; i++) {
                        struct ia_map_row *m = &r->u.runs.rows[r->u.runs.n++];

                        memset(m, 0, sizeof(*m));
                        m->start = ((uint64_t)c * IA_MAP_CHUNK + i) * 65536;
                        m->length = 65536;
                        m->data = m->present = m->has_offset = (i % 2) == 0;
                        m->offset = m->start;
                        m->file_id = m->has_offset ? 1 : 0;
                }
                ia_store_put(s, r);
        }
        assert_int_equal(ia_store_writer_stop(s, &rows, &err), 0);
        assert_int_equal(rows, 5 * IA_MAP_CHUNK);
        /* not visible before the scan completes */
        assert_int_equal(q(s, "SELECT count(*) FROM v_map"), 0);
        assert_int_equal(ia_store_end_scan(s, scan1, true, NULL, 0, &st, &err), 0);
        assert_int_equal(q(s, "SELECT count(*) FROM v_map"), 5 * IA_MAP_CHUNK);
        assert_int_equal(q(s, "SELECT count(*) FROM v_map WHERE offset IS NULL AND file IS NULL"),
                         5 * IA_MAP_CHUNK / 2);
        assert_int_equal(q(s, "SELECT typeof(path) = 'blob' FROM files WHERE id = 2"), 1);

        /* a second scan carries the image over */
        assert_int_equal(ia_store_begin_scan(s, roots, 1, NULL, 0, &scan2, &err), 0);
        assert_int_equal(ia_store_writer_start(s, scan2, 4, &err), 0);
        {
                struct ia_rec *r = ia_rec_new(IA_REC_REUSE);

                r->u.reuse.old_image_id = 10;
                r->u.reuse.new_image_id = 11;
                ia_store_put(s, r);
        }
        assert_int_equal(ia_store_writer_stop(s, &rows, &err), 0);
        assert_int_equal(rows, 5 * IA_MAP_CHUNK);
        assert_int_equal(ia_store_end_scan(s, scan2, true, NULL, 0, &st, &err), 0);
        assert_int_equal(q(s, "SELECT count(*) FROM v_map"), 5 * IA_MAP_CHUNK);
        assert_int_equal(q(s, "SELECT reused_from FROM images WHERE id = 11"), 10);
        /* shared with the row it came from, not copied */
        assert_int_equal(q(s, "SELECT count(*) FROM layer_runs"), 5 * IA_MAP_CHUNK);
        assert_int_equal(q(s, "SELECT count(*) FROM pieces"), 1);
        assert_int_equal(q(s, "SELECT own_data_bytes FROM images WHERE id = 11"),
                         5 * IA_MAP_CHUNK / 2 * 65536);
        assert_int_equal(q(s, "SELECT map_image_id FROM images WHERE id = 11"), 10);

        /* carried over again: still the first row's map */
        assert_int_equal(ia_store_begin_scan(s, roots, 1, NULL, 0, &scan2, &err), 0);
        assert_int_equal(ia_store_writer_start(s, scan2, 4, &err), 0);
        {
                struct ia_rec *r = ia_rec_new(IA_REC_REUSE);

                r->u.reuse.old_image_id = 11;
                r->u.reuse.new_image_id = 12;
                ia_store_put(s, r);
        }
        assert_int_equal(ia_store_writer_stop(s, &rows, &err), 0);
        assert_int_equal(rows, 5 * IA_MAP_CHUNK);
        assert_int_equal(ia_store_end_scan(s, scan2, true, NULL, 0, &st, &err), 0);
        assert_int_equal(q(s, "SELECT map_image_id FROM images WHERE id = 12"), 10);
        assert_int_equal(q(s, "SELECT count(*) FROM v_map"), 5 * IA_MAP_CHUNK);
        assert_int_equal(q(s, "SELECT count(*) FROM layer_runs"), 5 * IA_MAP_CHUNK);
        assert_int_equal(q(s, "SELECT sum(length) FROM v_map WHERE zero"),
                         (int64_t)(5 * IA_MAP_CHUNK / 2) * 65536);
        assert_int_equal(q(s, "SELECT sum(length) FROM v_map WHERE data"),
                         (int64_t)(5 * IA_MAP_CHUNK / 2) * 65536);

        /* a running scan left behind is marked aborted */
        assert_int_equal(ia_store_begin_scan(s, roots, 1, NULL, 0, &scan2, &err), 0);
        assert_int_equal(ia_store_mark_dead_scans(s, &dead, &err), 0);
        assert_int_equal(dead, 1);
        assert_int_equal(q(s, "SELECT count(*) FROM scans WHERE status = 'aborted'"), 1);
        ia_store_close(s);

        /* reopening does not migrate again */
        assert_int_equal(ia_store_open(path, &s, &err), 0);
        assert_int_equal(q(s, "SELECT count(*) FROM scans"), 4);
        ia_store_close(s);
}

/*
 * A database written by an imgaudit of schema 1 is brought to the latest
 * version in order, its rows kept: its maps stay visible through v_map,
 * and the next carry-over shares them.
 */
static void test_migrate_from_v1(void **state)
{
        struct ia_store *s;
        struct ia_error err;
        char p[300];
        sqlite3 *db;

        (void)state;
        snprintf(p, sizeof(p), "%s/v1.db", dir);
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_string_equal(ia_schema_files[0].name, "001_initial.sql");
        assert_int_equal(sqlite3_exec(db, ia_schema_files[0].sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db,
                         "PRAGMA user_version = 1; PRAGMA application_id = 1229014100;"
                         "INSERT INTO scans (id, started_at, finished_at, status, pid, host, "
                         " tool_version) VALUES (1, 'x', 'y', 'complete', 1, 'h', 'v');"
                         "INSERT INTO files (id, path, size) VALUES (1, 'a.qcow2', 1);"
                         "INSERT INTO images (id, scan_id, file_id, file_size, status)"
                         " VALUES (1, 1, 1, 1, 'ok');"
                         "INSERT INTO map VALUES (1, 0, 512, 0, 1, 0, 1, 0, 0, 1);"
                         "INSERT INTO map VALUES (1, 512, 512, 0, 0, 1, 0, 0, NULL, NULL);",
                         NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(ia_store_open(p, &s, &err), 0);
        assert_int_equal(q(s, "PRAGMA user_version"), latest_schema());
        assert_int_equal(q(s, "SELECT count(*) FROM v_map WHERE path = 'a.qcow2'"), 2);
        assert_int_equal(q(s, "SELECT count(*) FROM v_map WHERE file = 'a.qcow2'"), 1);
        assert_int_equal(q(s, "SELECT count(*) FROM images WHERE map_image_id IS NULL"), 1);
        /* schema 3 keeps those rows and gives the image its figures from them */
        assert_int_equal(q(s, "SELECT own_data_bytes + 10 * unallocated_bytes FROM images"),
                         512 + 10 * 512);
        assert_int_equal(q(s, "SELECT map_rows FROM images"), 2);
        assert_int_equal(q(s, "SELECT count(*) FROM chain_layers"), 0); /* no backing layer */
        ia_store_close(s);
}

static void test_refusals(void **state)
{
        char junk[300], foreign[300];
        struct ia_store *s;
        struct ia_error err;
        sqlite3 *db;
        FILE *f;

        (void)state;
        snprintf(junk, sizeof(junk), "%s/junk.db", dir);
        f = fopen(junk, "wb");
        for (int i = 0; i < 4096; i++)
                fputc(i * 7, f);
        fclose(f);
        assert_int_equal(ia_store_open(junk, &s, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);

        snprintf(foreign, sizeof(foreign), "%s/foreign.db", dir);
        assert_int_equal(sqlite3_open(foreign, &db), SQLITE_OK);
        sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL);
        sqlite3_close(db);
        assert_int_equal(ia_store_open(foreign, &s, &err), -1);
        assert_non_null(strstr(err.msg, "another application"));

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL);
        sqlite3_close(db);
        assert_int_equal(ia_store_open(path, &s, &err), -1);
        assert_int_equal(err.cat, IA_ERR_UNSUPPORTED);
}

/* Rows a killed scan left for an image whose images row it never wrote keep their id taken. */
static void test_max_ids_after_kill(void **state)
{
        struct ia_store *s;
        struct ia_error err;
        char p[300];
        int64_t fid, iid, lid;

        (void)state;
        snprintf(p, sizeof(p), "%s/ids.db", dir);
        assert_int_equal(ia_store_open(p, &s, &err), 0);
        assert_int_equal(ia_store_max_ids(s, &fid, &iid, &lid, &err), 0);
        assert_int_equal(iid, 0);
        assert_int_equal(sqlite3_exec(ia_store_db(s),
                                      "INSERT INTO files (id, path, size) VALUES (4, 'f', 1);"
                                      "INSERT INTO images (id, scan_id, file_id, file_size, status)"
                                      " VALUES (3, 1, 4, 1, 'ok');",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(ia_store_max_ids(s, &fid, &iid, &lid, &err), 0);
        assert_int_equal(fid, 4);
        assert_int_equal(iid, 3);
        assert_int_equal(sqlite3_exec(ia_store_db(s),
                                      "INSERT INTO map VALUES (7, 0, 512, 0, 1, 0, 1, 0, 0, 4)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(ia_store_max_ids(s, &fid, &iid, &lid, &err), 0);
        assert_int_equal(iid, 7);
        assert_int_equal(sqlite3_exec(ia_store_db(s),
                                      "INSERT INTO links (scan_id, image_id, depth, kind, name, "
                                      "status) VALUES (1, 9, 0, 'backing', 'b', 'ok')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(ia_store_max_ids(s, &fid, &iid, &lid, &err), 0);
        assert_int_equal(iid, 9);
        assert_int_equal(sqlite3_exec(ia_store_db(s),
                                      "INSERT INTO findings (scan_id, image_id, code, message) "
                                      "VALUES (1, 11, 'c', 'm')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(ia_store_max_ids(s, &fid, &iid, &lid, &err), 0);
        assert_int_equal(iid, 11);
        /* schema 3: pieces of an unrecorded image, runs of an unrecorded layer */
        assert_int_equal(lid, 0);
        assert_int_equal(sqlite3_exec(ia_store_db(s),
                                      "INSERT INTO pieces VALUES (13, 0, 512, 0, 'end', NULL);"
                                      "INSERT INTO layer_runs VALUES (5, 0, 512, 1, 0, 1, 0, 0, 4)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(ia_store_max_ids(s, &fid, &iid, &lid, &err), 0);
        assert_int_equal(iid, 13);
        assert_int_equal(lid, 5);
        ia_store_close(s);
}

static int setup(void **state)
{
        (void)state;
        if (!mkdtemp(dir))
                return -1;
        snprintf(path, sizeof(path), "%s/t.db", dir);
        return 0;
}

static int teardown(void **state)
{
        char cmd[400];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_utf8),
            cmocka_unit_test(test_scan_cycle),
            cmocka_unit_test(test_max_ids_after_kill),
            cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_migrate_from_v1),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
