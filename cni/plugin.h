/* plugin.h - the shared main of the `weft` and `weft-ipam` CNI plugins.
 *
 * Both are thin clients of the node's weftd (docs/weftd.md): VERSION is
 * answered locally; every other command is checked locally first (the
 * config and the environment are parsed with cni/ so that bad input gives
 * a proper CNI error even when weftd is down), then forwarded to weftd's
 * socket, and weftd's answer is printed as is.
 *
 * When weftd cannot be reached: ADD, CHECK and GC fail with code 11 (try
 * again later) naming the socket; STATUS fails with code 50; DEL does
 * what it can locally (removes the kernel objects by their computed
 * names) and succeeds: weftd's start-up reconciliation and CNI GC reclaim
 * the addresses and the records later.
 */
#ifndef WEFT_CNI_PLUGIN_H
#define WEFT_CNI_PLUGIN_H

enum weft_plugin_kind {
	WEFT_PLUGIN_MAIN, /* weft */
	WEFT_PLUGIN_IPAM, /* weft-ipam */
};

/* Seconds the plugin waits for weftd's answer. */
#define WEFT_PLUGIN_TIMEOUT_S 120
/* Largest answer accepted from weftd. */
#define WEFT_PLUGIN_MAX_ANSWER (4u << 20)

/* Run the plugin; returns the process exit code. */
int weft_plugin_main(enum weft_plugin_kind kind);

#endif
