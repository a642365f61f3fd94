/* weftd-status.c - health, status and metrics (stub: being written). */
#include "felix/weftd.h"

int weftd_status_start(struct weftd *d, struct weft_loop *loop, const char *listen, struct weftd_status **out)
{
	(void)d;
	(void)loop;
	(void)listen;
	*out = NULL;
	return 0;
}

void weftd_status_stop(struct weftd_status *s)
{
	(void)s;
}
