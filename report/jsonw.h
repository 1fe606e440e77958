/*
 * A streaming JSON writer with json-c's pretty layout, for the report.
 *
 * The report's per-image arrays (capacity, sharing, chains, orphans,
 * trend) are written element by element as they are made instead of being
 * held as one json-c tree: an element, or any small part, is still built
 * with json-c, then serialized at the depth it has in the document and
 * freed at once.  The bytes are exactly those json_object_to_json_string_ext
 * gives for the whole document with IA_JSON_FLAGS (pretty, spaced, no slash
 * escapes): "[" or "{" and a newline; members ",\n" apart, each indented by
 * two spaces per level; a newline and the indentation before the closing
 * bracket, when there was a member.
 *
 * A writer whose out is NULL writes nothing (a layout without JSON), so
 * sections call it whatever the layout.
 */
#ifndef IA_JSONW_H
#define IA_JSONW_H

#include <stdbool.h>

#include <json-c/json.h>

#include "out.h"

#define IA_JW_MAXDEPTH 64

struct ia_jw {
        struct ia_sink *out; /* NULL: write nothing */
        int depth;
        bool had[IA_JW_MAXDEPTH]; /* a member was written at this depth */
        bool after_key;
        bool nomem;
};

void ia_jw_init(struct ia_jw *w, struct ia_sink *out);
/* Open "{" or "[" (as a member of the current container, or the document). */
void ia_jw_open(struct ia_jw *w, char bracket);
void ia_jw_close(struct ia_jw *w, char bracket);
/* A member's key in an object; its value follows (ia_jw_value or ia_jw_open). */
void ia_jw_key(struct ia_jw *w, const char *key);
/* A value (json-c; NULL is null), serialized at the current depth, then freed. */
void ia_jw_value(struct ia_jw *w, json_object *v);
/* key and value */
void ia_jw_kv(struct ia_jw *w, const char *key, json_object *v);

#endif
