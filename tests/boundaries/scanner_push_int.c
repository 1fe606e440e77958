/* compiled with the scanner library's flags: push's private header in the store refuses it */
#include "pg_push_int.h"

int ia_boundary_probe(void);
int ia_boundary_probe(void)
{
        return 0;
}
