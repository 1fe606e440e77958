/* compiled with the scanner library's flags: report/ is not beneath scanner/ */
#include "rpt.h"

int ia_boundary_probe(void);
int ia_boundary_probe(void)
{
        return 0;
}
