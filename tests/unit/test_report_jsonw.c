/*
 * Unit test of the report's streaming JSON writer (report/jsonw.c): a
 * document written member by member is byte for byte what json-c prints for
 * the same tree with IA_JSON_FLAGS (nested and empty arrays and objects,
 * null, strings with controls, slashes and UTF-8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jsonw.h"
#include "sections.h"

static json_object *leaf(int i)
{
        json_object *e = json_object_new_object();

        json_object_object_add(e, "name", json_object_new_string("a/b\n\x01\"\\\xc3\xa9"));
        json_object_object_add(e, "n", json_object_new_int64(i));
        json_object_object_add(e, "none", NULL);
        json_object_object_add(e, "empty", json_object_new_array());
        json_object_object_add(e, "obj", json_object_new_object());
        return e;
}

static void test_same_as_json_c(void **state)
{
        json_object *doc = json_object_new_object(), *arr = json_object_new_array();
        json_object *inner = json_object_new_object(), *ia = json_object_new_array();
        struct ia_sink sink;
        struct ia_jw w;
        const char *want;
        char *got;
        size_t n;

        (void)state;
        /* json-c: the whole tree */
        json_object_object_add(doc, "schema_version", json_object_new_int64(1));
        for (int i = 0; i < 3; i++)
                json_object_array_add(arr, leaf(i));
        json_object_object_add(doc, "images", arr);
        json_object_object_add(doc, "none", json_object_new_array());
        json_object_array_add(ia, leaf(7));
        json_object_array_add(ia, NULL);
        json_object_object_add(inner, "items", ia);
        json_object_object_add(inner, "count", json_object_new_int64(2));
        json_object_object_add(doc, "inner", inner);
        json_object_object_add(doc, "last", NULL);
        want = json_object_to_json_string_ext(doc, IA_JSON_FLAGS);

        /* the writer: the same member by member */
        ia_sink_init(&sink, -1);
        ia_jw_init(&w, &sink);
        ia_jw_open(&w, '{');
        ia_jw_kv(&w, "schema_version", json_object_new_int64(1));
        ia_jw_key(&w, "images");
        ia_jw_open(&w, '[');
        for (int i = 0; i < 3; i++)
                ia_jw_value(&w, leaf(i));
        ia_jw_close(&w, ']');
        ia_jw_key(&w, "none");
        ia_jw_open(&w, '[');
        ia_jw_close(&w, ']');
        ia_jw_key(&w, "inner");
        ia_jw_open(&w, '{');
        ia_jw_key(&w, "items");
        ia_jw_open(&w, '[');
        ia_jw_value(&w, leaf(7));
        ia_jw_value(&w, NULL);
        ia_jw_close(&w, ']');
        ia_jw_kv(&w, "count", json_object_new_int64(2));
        ia_jw_close(&w, '}');
        ia_jw_kv(&w, "last", NULL);
        ia_jw_close(&w, '}');
        assert_false(w.nomem);
        got = ia_rbuf_detach(&sink.b, &n);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
        json_object_put(doc);
}

/* A writer without output writes nothing and frees what it is given. */
static void test_no_output(void **state)
{
        struct ia_jw w;

        (void)state;
        ia_jw_init(&w, NULL);
        ia_jw_open(&w, '{');
        ia_jw_kv(&w, "x", leaf(1));
        ia_jw_value(&w, leaf(2));
        ia_jw_close(&w, '}');
        assert_int_equal(w.depth, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_same_as_json_c),
            cmocka_unit_test(test_no_output),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
