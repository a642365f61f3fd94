/* stubs.c - stand-ins while a part of acl/ is not in the tree yet (CMake
 * compiles each group only when its real source file is missing). Each
 * returns -EOPNOTSUPP and says why. */
#include "acl/acl.h"

#ifdef WEFT_ACL_STUB_COMPILE
int weft_acl_compile(const struct weft_resource *res, size_t n, const struct weft_acl_options *opt,
		     struct weft_acl_program **out, char **errmsg)
{
	(void)res;
	(void)n;
	(void)opt;
	(void)out;
	if (errmsg)
		*errmsg = wstrdup("the ACL compiler is not built in");
	return -EOPNOTSUPP;
}

int weft_acl_trace(const struct weft_acl_program *p, const struct weft_acl_packet *pkt, struct weft_acl_verdict *v)
{
	(void)p;
	(void)pkt;
	(void)v;
	return -EOPNOTSUPP;
}

void weft_acl_verdict_clear(struct weft_acl_verdict *v)
{
	(void)v;
}
#endif

#ifdef WEFT_ACL_STUB_NFT
int weft_acl_nft_open(struct weft_acl_backend **out, char **errmsg)
{
	(void)out;
	if (errmsg)
		*errmsg = wstrdup("the nftables backend is not built in");
	return -EOPNOTSUPP;
}
#endif

#ifdef WEFT_ACL_STUB_IPT
int weft_acl_ipt_open(const char *iptables, struct weft_acl_backend **out, char **errmsg)
{
	(void)iptables;
	(void)out;
	if (errmsg)
		*errmsg = wstrdup("the ipset/iptables backend is not built in");
	return -EOPNOTSUPP;
}
#endif
