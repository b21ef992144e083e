/* st_adapter_base.c — the process-wide --base override for adapter folders. Apart from
 * st_adapter.c so that a tool linking the option parser does not pull in the readers. */
#include "st_internal.h"
#include <stdlib.h>
#include <string.h>

static char *g_base;

void st_adapter_set_base(const char *path) {
    free(g_base);
    g_base = path ? strdup(path) : NULL;
}

const char *st_adapter_base(void) { return g_base; }
