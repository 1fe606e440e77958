/* compiled with the scanner library's flags: the store and the engine are beneath it */
#include "scan.h"
#include "store.h"
#include "escape.h"

int ia_boundary_probe(void);
int ia_boundary_probe(void)
{
        return 0;
}
