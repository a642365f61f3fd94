/* weft - the CNI network plugin (routed veth endpoints, macvlan
 * attachments): a thin client of the node's weftd. See cni/plugin.h and
 * docs/weftd.md. */
#include "cni/plugin.h"

int main(void)
{
	return weft_plugin_main(WEFT_PLUGIN_MAIN);
}
