/* compiled with the store's flags: report/ is above schema/ */
#include "rpt.h"

int ia_boundary_probe(void);
int ia_boundary_probe(void)
{
        return 0;
}
