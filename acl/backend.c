/* backend.c - the public backend calls, dispatched to nft or ipt. */
#include "acl/acl-backend.h"

int weft_acl_apply(struct weft_acl_backend *b, const struct weft_acl_program *p, struct weft_acl_stats *stats,
		   char **errmsg)
{
	struct weft_acl_stats local;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	return b->ops->apply(b, p, stats, errmsg);
}

int weft_acl_update(struct weft_acl_backend *b, const struct weft_acl_change *c, struct weft_acl_stats *stats,
		    char **errmsg)
{
	struct weft_acl_stats local;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	if (!c)
		return -EINVAL;
	if (!b->ops->update)
		return -EOPNOTSUPP;
	return b->ops->update(b, c, stats, errmsg);
}

int weft_acl_remove(struct weft_acl_backend *b, char **errmsg)
{
	return b->ops->remove(b, errmsg);
}

int weft_acl_check(struct weft_acl_backend *b)
{
	return b->ops->check ? b->ops->check(b) : 0;
}

void weft_acl_backend_free(struct weft_acl_backend *b)
{
	if (b)
		b->ops->free(b);
}

const char *weft_acl_backend_name(const struct weft_acl_backend *b)
{
	return b->ops->name;
}
