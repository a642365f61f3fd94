/* node.c - weftctl node status: the node's BGP sessions, from BIRD.
 *
 * BIRD runs on the node as weftd's child; its control socket (weftd's run
 * dir, /run/weft/bird.ctl by default) answers `show protocols`. The rows
 * whose names are the renderer's session names (weft_bgp_proto_parse) are
 * the BGP peers; the fixed protocols (device, kernel, static) are not.
 */
#include "bgpconf/bgpconf.h"
#include "ctl/ctl.h"

#include <getopt.h>

#define DEFAULT_BIRD_SOCKET "/run/weft/bird.ctl"

static const char *const node_usage =
	"Usage: weftctl node status [--node NAME] [--bird-socket PATH]\n"
	"\n"
	"Show the node's BGP peers as BIRD sees them: peer address, type (mesh,\n"
	"reflector, client, global, node), state, since, info. Run it on the node\n"
	"(in its network namespace): it talks to BIRD's control socket.\n"
	"\n"
	"  -n, --node NAME          the node's name, for the heading\n"
	"  -b, --bird-socket PATH   BIRD's control socket (default " DEFAULT_BIRD_SOCKET ")\n"
	"\n"
	"Exit codes: 0 success, 1 BIRD cannot be reached, 2 usage error.\n";

static int node_status(const char *node, const char *sock)
{
	struct weft_birdc *c = NULL;
	struct weft_bird_proto *p = NULL;
	size_t n = 0, peers = 0;
	int r;

	r = weft_birdc_connect(sock, 5000, &c);
	if (r < 0)
		return ctl_fail("cannot reach BIRD at %s: %s (is weftd running on this node with this run dir?)",
				sock, strerror(-r));
	r = weft_birdc_show_protocols(c, &p, &n);
	weft_birdc_close(c);
	if (r < 0)
		return ctl_fail("BIRD at %s: show protocols: %s", sock, strerror(-r));

	if (node)
		printf("Node %s, BIRD at %s\n\n", node, sock);
	printf("%-18s %-10s %-6s %-20s %s\n", "PEER ADDRESS", "TYPE", "STATE", "SINCE", "INFO");
	for (size_t i = 0; i < n; i++) {
		enum weft_bgp_peer_type t;
		struct weft_ip ip;
		char abuf[WEFT_IP_STRLEN];

		if (weft_bgp_proto_parse(p[i].name, &t, &ip) < 0)
			continue;
		printf("%-18s %-10s %-6s %-20s %s\n", weft_ip_str(&ip, abuf, sizeof(abuf)), weft_bgp_peer_type_name(t),
		       p[i].state ? p[i].state : "", p[i].since ? p[i].since : "", p[i].info ? p[i].info : "");
		peers++;
	}
	if (!peers)
		printf("(no BGP peers configured)\n");
	weft_bird_protos_free(p, n);
	return 0;
}

int ctl_cmd_node(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"node", required_argument, NULL, 'n'},
		{"bird-socket", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *node = NULL, *sock = DEFAULT_BIRD_SOCKET;
	int c;

	(void)ctl;
	while ((c = getopt_long(argc, argv, "n:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			node = optarg;
			break;
		case 'b':
			sock = optarg;
			break;
		case 'h':
			fputs(node_usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind >= argc) {
		fputs("weftctl: node: no subcommand given (see weftctl node --help)\n", stderr);
		return 2;
	}
	if (!streq(argv[optind], "status")) {
		fprintf(stderr, "weftctl: node: unknown subcommand \"%s\" (see weftctl node --help)\n", argv[optind]);
		return 2;
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "weftctl: node status: unexpected argument \"%s\"\n", argv[optind + 1]);
		return 2;
	}
	return node_status(node, sock);
}
