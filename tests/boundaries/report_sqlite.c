/*
 * compiled with the report library's flags: report/ issues no SQL (its
 * queries are the store's, schema/store_report.h), so <sqlite3.h> declares
 * nothing there and an SQLite type or call does not compile
 */
#include <sqlite3.h>

#include "rpt.h"

int ia_boundary_probe(void);
int ia_boundary_probe(void)
{
        sqlite3 *db = 0;

        return db != 0;
}
