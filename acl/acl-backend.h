/* acl-backend.h - what an ACL backend implements (internal to acl/).
 *
 * acl/backend.c dispatches the public weft_acl_apply() / _remove() /
 * _backend_free() / _backend_name() through these operations. A backend
 * embeds struct weft_acl_backend as the first member of its own state.
 */
#ifndef WEFT_ACL_BACKEND_H
#define WEFT_ACL_BACKEND_H

#include "acl/acl.h"

struct weft_acl_backend_ops {
	const char *name; /* "nft", "ipt" */
	int (*apply)(struct weft_acl_backend *b, const struct weft_acl_program *p, struct weft_acl_stats *stats,
		     char **errmsg);
	/* Optional: weft_acl_update() (absent: -EOPNOTSUPP). */
	int (*update)(struct weft_acl_backend *b, const struct weft_acl_change *c, struct weft_acl_stats *stats,
		      char **errmsg);
	int (*remove)(struct weft_acl_backend *b, char **errmsg);
	/* Optional: is what the last apply programmed still in the kernel?
	 * 0, or -ENOENT (gone: the next apply must be a full one, which the
	 * backend arranges) or another negative errno. */
	int (*check)(struct weft_acl_backend *b);
	void (*free)(struct weft_acl_backend *b);
};

struct weft_acl_backend {
	const struct weft_acl_backend_ops *ops;
};

/* The namespace's nftables ruleset generation, bumped by every nftables
 * commit (iptables-nft's too), asked over a socket of its own (acl/nft.c).
 * Returns 0 or a negative errno. */
int weft_acl_nft_gen(uint32_t *gen);

#endif
