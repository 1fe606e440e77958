/* compiled with the report library's flags: the store and the engine are beneath it */
#include "rpt.h"
#include "store.h"
#include "escape.h"

int ia_boundary_probe(void);
int ia_boundary_probe(void)
{
        return 0;
}
