/* weftd-fabric.c - the node's routes and encapsulation (stub: being
 * written). */
#include "felix/weftd.h"

int weftd_fabric_start(struct weftd *d, struct weft_loop *loop, struct weftd_fabric **out)
{
	(void)d;
	(void)loop;
	*out = NULL;
	return 0;
}

void weftd_fabric_stop(struct weftd_fabric *f)
{
	(void)f;
}
