/* weft-ipam - the CNI IPAM plugin (pool, range and static addresses), for
 * weft itself and for other main plugins (the reference macvlan or bridge
 * plugins): a thin client of the node's weftd. See cni/plugin.h and
 * docs/weftd.md. */
#include "cni/plugin.h"

int main(void)
{
	return weft_plugin_main(WEFT_PLUGIN_IPAM);
}
