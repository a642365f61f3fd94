/* store-etcd.c - placeholder until the etcd backend lands. */
#include "store/store-backend.h"

static int stub_open(const char *scheme, const char *spec, struct weft_store **out, char **errmsg)
{
	if (errmsg)
		*errmsg = wstrdup("the etcd store backend is not built yet");
	return -ENOSYS;
}

const struct weft_store_ops weft_store_etcd_ops = {
	.name = "etcd",
	.open = stub_open,
};
