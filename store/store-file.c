/* store-file.c - placeholder until the file backend lands. */
#include "store/store-backend.h"

static int stub_open(const char *scheme, const char *spec, struct weft_store **out, char **errmsg)
{
	if (errmsg)
		*errmsg = wstrdup("the file store backend is not built yet");
	return -ENOSYS;
}

const struct weft_store_ops weft_store_file_ops = {
	.name = "file",
	.open = stub_open,
};
