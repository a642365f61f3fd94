/* test-schema.c - every kind's canonical form, and for every field at least
 * one bad value rejected with the exact message. */
#include "lib/test.h"
#include "model/resource.h"

/* Parse a one-resource manifest; returns NULL and prints the error when it
 * fails. The caller frees with weft_resources_free(rs, 1). */
static struct weft_resource *parse1(const char *text, char **err)
{
	struct weft_resource *rs = NULL;
	size_t n = 0;

	if (weft_manifest_parse(text, strlen(text), &rs, &n, err) < 0)
		return NULL;
	CHECK_EQ_INT(n, 1);
	return rs;
}

/* encode -> decode gives the same document; YAML emit -> parse too. */
static void check_round_trip(const struct weft_resource *r)
{
	_cleanup_free_ char *json = weft_resource_encode(r, false);
	_cleanup_free_ char *pretty = weft_resource_encode(r, true);
	_cleanup_free_ char *yaml = weft_yaml_emit(r->doc);
	_cleanup_free_ char *err = NULL;
	struct weft_resource back = {0}, *rs = NULL;
	size_t n = 0;

	CHECK_EQ_INT(weft_resource_decode(json, strlen(json), &back, &err), 0);
	CHECK(back.doc && cJSON_Compare(back.doc, r->doc, true));
	CHECK_EQ_INT(back.kind, r->kind);
	CHECK_STREQ(back.name, r->name);
	weft_resource_clear(&back);

	CHECK_EQ_INT(weft_resource_decode(pretty, strlen(pretty), &back, &err), 0);
	CHECK(back.doc && cJSON_Compare(back.doc, r->doc, true));
	weft_resource_clear(&back);

	CHECK_EQ_INT(weft_manifest_parse(yaml, strlen(yaml), &rs, &n, &err), 0);
	CHECK_EQ_INT(n, 1);
	if (rs) {
		CHECK(cJSON_Compare(rs[0].doc, r->doc, true));
		weft_resources_free(rs, n);
	}
	if (err)
		fprintf(stderr, "round trip: %s\n", err);
}

struct good {
	const char *manifest;
	const char *canonical;
	const char *key;
};

static const struct good goods[] = {
	{"kind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.65.0.0/16, blockSize: 26, natOutgoing: false, vxlanMode: Never}\n",
	 "{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"pool1\"},\"spec\":{\"cidr\":\"10.65.0.0/16\",\"blockSize\":26,\"natOutgoing\":false,\"vxlanMode\":\"Never\",\"disabled\":false,\"nodeSelector\":\"all()\"}}",
	 "/weft/v1/ippools/pool1"},
	/* Defaults for IPv6, CIDR normalised, labels sorted, apiVersion dropped. */
	{"apiVersion: weft/v1\nkind: IPPool\nmetadata: {name: pool6, labels: {zone: a, app.example.com/tier: \"1\"}}\nspec: {cidr: \"FD00:0::/48\"}\n",
	 "{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"pool6\",\"labels\":{\"app.example.com/tier\":\"1\",\"zone\":\"a\"}},\"spec\":{\"cidr\":\"fd00::/48\",\"blockSize\":122,\"natOutgoing\":false,\"vxlanMode\":\"Never\",\"disabled\":false,\"nodeSelector\":\"all()\"}}",
	 "/weft/v1/ippools/pool6"},
	{"kind: IPPool\nmetadata: {name: p2}\nspec: {cidr: 10.66.0.0/24, blockSize: 28, natOutgoing: true, vxlanMode: crosssubnet, disabled: true, nodeSelector: \"rack == 'r1'\"}\n",
	 "{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"p2\"},\"spec\":{\"cidr\":\"10.66.0.0/24\",\"blockSize\":28,\"natOutgoing\":true,\"vxlanMode\":\"CrossSubnet\",\"disabled\":true,\"nodeSelector\":\"rack == 'r1'\"}}",
	 "/weft/v1/ippools/p2"},
	/* A profile with nothing: its own tag, allow from it, allow out. */
	{"kind: Profile\nmetadata: {name: WEB}\n",
	 "{\"kind\":\"Profile\",\"metadata\":{\"name\":\"WEB\"},\"spec\":{\"tags\":[\"WEB\"],\"inboundRules\":[{\"action\":\"allow\",\"source\":{\"tag\":\"WEB\"}}],\"outboundRules\":[{\"action\":\"allow\"}]}}",
	 "/weft/v1/profiles/WEB"},
	{"kind: Profile\nmetadata: {name: db}\nspec:\n  tags: [db, backend]\n  labelsToApply: {role: db}\n  inboundRules:\n"
	 "  - action: allow\n    protocol: TCP\n    source: {tag: WEB, notTag: evil, nets: [10.0.0.1, 10.1.0.0/16], notNets: [10.1.2.0/24], selector: \"role == 'web'\", notSelector: has(x)}\n"
	 "    destination: {ports: [5432, \"8000:8080\", \"90\"], notPorts: [\"22:22\"]}\n"
	 "  - action: Allow\n    protocol: icmp\n    ipVersion: 4\n    icmp: {type: 8, code: 0}\n    notICMP: {type: 3}\n"
	 "  - {action: log, notProtocol: udp}\n  outboundRules: []\n",
	 "{\"kind\":\"Profile\",\"metadata\":{\"name\":\"db\"},\"spec\":{\"tags\":[\"db\",\"backend\"],\"labelsToApply\":{\"role\":\"db\"},\"inboundRules\":["
	 "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"tag\":\"WEB\",\"notTag\":\"evil\",\"nets\":[\"10.0.0.1/32\",\"10.1.0.0/16\"],\"notNets\":[\"10.1.2.0/24\"],\"selector\":\"role == 'web'\",\"notSelector\":\"has(x)\"},"
	 "\"destination\":{\"ports\":[5432,\"8000:8080\",90],\"notPorts\":[22]}},"
	 "{\"action\":\"allow\",\"protocol\":\"icmp\",\"ipVersion\":4,\"icmp\":{\"type\":8,\"code\":0},\"notICMP\":{\"type\":3}},"
	 "{\"action\":\"log\",\"notProtocol\":\"udp\"}],\"outboundRules\":[]}}",
	 "/weft/v1/profiles/db"},
	{"kind: Policy\nmetadata: {name: allow-web}\nspec:\n  order: 10.5\n  selector: role == 'web'\n  ingress:\n  - action: pass\n    source: {selector: \"has(app)\"}\n"
	 "  egress:\n  - action: deny\n    protocol: 17\n    destination: {notPorts: [53]}\n",
	 "{\"kind\":\"Policy\",\"metadata\":{\"name\":\"allow-web\"},\"spec\":{\"order\":10.5,\"selector\":\"role == 'web'\",\"ingress\":[{\"action\":\"pass\",\"source\":{\"selector\":\"has(app)\"}}],"
	 "\"egress\":[{\"action\":\"deny\",\"protocol\":17,\"destination\":{\"notPorts\":[53]}}],\"types\":[\"Ingress\",\"Egress\"]}}",
	 "/weft/v1/policies/allow-web"},
	{"kind: Policy\nmetadata: {name: p}\n",
	 "{\"kind\":\"Policy\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"selector\":\"all()\",\"ingress\":[],\"egress\":[],\"types\":[\"Ingress\"]}}",
	 "/weft/v1/policies/p"},
	{"kind: Policy\nmetadata: {name: eg}\nspec: {types: [egress], egress: [{action: allow, protocol: udp, ipVersion: 6, destination: {nets: [\"fd00::/8\"], ports: [53]}}]}\n",
	 "{\"kind\":\"Policy\",\"metadata\":{\"name\":\"eg\"},\"spec\":{\"selector\":\"all()\",\"ingress\":[],\"egress\":[{\"action\":\"allow\",\"protocol\":\"udp\",\"ipVersion\":6,\"destination\":{\"nets\":[\"fd00::/8\"],\"ports\":[53]}}],\"types\":[\"Egress\"]}}",
	 "/weft/v1/policies/eg"},
	{"kind: Node\nmetadata: {name: Node-1, labels: {rack: r1}}\nspec: {bgp: {ipv4Address: 198.18.0.11/24, ipv6Address: \"fd00::11/64\", asNumber: 64512, routeReflectorClusterID: 224.0.0.1}}\n",
	 "{\"kind\":\"Node\",\"metadata\":{\"name\":\"Node-1\",\"labels\":{\"rack\":\"r1\"}},\"spec\":{\"bgp\":{\"ipv4Address\":\"198.18.0.11/24\",\"ipv6Address\":\"fd00::11/64\",\"asNumber\":64512,\"routeReflectorClusterID\":\"224.0.0.1\"}}}",
	 "/weft/v1/nodes/Node-1"},
	{"kind: Node\nmetadata: {name: n2}\n", "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n2\"},\"spec\":{}}", "/weft/v1/nodes/n2"},
	{"kind: BGPPeer\nmetadata: {name: tor1}\nspec: {peerIP: 198.18.0.1, asNumber: 65001, node: node-1, password: secret}\n",
	 "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"tor1\"},\"spec\":{\"node\":\"node-1\",\"peerIP\":\"198.18.0.1\",\"asNumber\":65001,\"password\":\"secret\"}}",
	 "/weft/v1/bgppeers/tor1"},
	{"kind: BGPPeer\nmetadata: {name: rr}\nspec: {peerIP: \"FD00::1\", asNumber: 4294967295, nodeSelector: \"has(rr)\"}\n",
	 "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"rr\"},\"spec\":{\"nodeSelector\":\"has(rr)\",\"peerIP\":\"fd00::1\",\"asNumber\":4294967295}}",
	 "/weft/v1/bgppeers/rr"},
	/* Loopback peers stay (a BGP speaker on the node itself), and so do
	 * the unicast neighbours of the refused ranges. */
	{"kind: BGPPeer\nmetadata: {name: lo4}\nspec: {peerIP: 127.0.0.1, asNumber: 65001}\n",
	 "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"lo4\"},\"spec\":{\"peerIP\":\"127.0.0.1\",\"asNumber\":65001}}",
	 "/weft/v1/bgppeers/lo4"},
	{"kind: BGPPeer\nmetadata: {name: lo6}\nspec: {peerIP: \"::1\", asNumber: 65001}\n",
	 "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"lo6\"},\"spec\":{\"peerIP\":\"::1\",\"asNumber\":65001}}",
	 "/weft/v1/bgppeers/lo6"},
	{"kind: BGPPeer\nmetadata: {name: edge4}\nspec: {peerIP: 223.255.255.255, asNumber: 65001}\n",
	 "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"edge4\"},\"spec\":{\"peerIP\":\"223.255.255.255\",\"asNumber\":65001}}",
	 "/weft/v1/bgppeers/edge4"},
	{"kind: BGPPeer\nmetadata: {name: edge6}\nspec: {peerIP: \"fec0::1\", asNumber: 65001}\n",
	 "{\"kind\":\"BGPPeer\",\"metadata\":{\"name\":\"edge6\"},\"spec\":{\"peerIP\":\"fec0::1\",\"asNumber\":65001}}",
	 "/weft/v1/bgppeers/edge6"},
	/* A cluster id is only a 32-bit identifier: any but 0. */
	{"kind: Node\nmetadata: {name: n3}\nspec: {bgp: {routeReflectorClusterID: 0.0.0.1}}\n",
	 "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n3\"},\"spec\":{\"bgp\":{\"routeReflectorClusterID\":\"0.0.0.1\"}}}",
	 "/weft/v1/nodes/n3"},
	{"kind: Node\nmetadata: {name: n4}\nspec: {bgp: {routeReflectorClusterID: 255.255.255.255}}\n",
	 "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n4\"},\"spec\":{\"bgp\":{\"routeReflectorClusterID\":\"255.255.255.255\"}}}",
	 "/weft/v1/nodes/n4"},
	{"kind: BGPConfig\nmetadata: {name: default}\n",
	 "{\"kind\":\"BGPConfig\",\"metadata\":{\"name\":\"default\"},\"spec\":{\"logSeverityScreen\":\"Info\",\"nodeToNodeMeshEnabled\":true,\"asNumber\":64512,\"listenPort\":179}}",
	 "/weft/v1/bgpconfigs/default"},
	{"kind: BGPConfig\nmetadata: {name: default}\nspec: {logSeverityScreen: debug, nodeToNodeMeshEnabled: false, asNumber: 65000, listenPort: 1179}\n",
	 "{\"kind\":\"BGPConfig\",\"metadata\":{\"name\":\"default\"},\"spec\":{\"logSeverityScreen\":\"Debug\",\"nodeToNodeMeshEnabled\":false,\"asNumber\":65000,\"listenPort\":1179}}",
	 "/weft/v1/bgpconfigs/default"},
	{"kind: Tenant\nmetadata: {name: ns-a}\nspec: {netID: 100, action: join, joinNamespace: ns-b}\n",
	 "{\"kind\":\"Tenant\",\"metadata\":{\"name\":\"ns-a\"},\"spec\":{\"netName\":\"ns-a\",\"netID\":100,\"action\":\"join\",\"joinNamespace\":\"ns-b\"}}",
	 "/weft/v1/tenants/ns-a"},
	{"kind: Tenant\nmetadata: {name: ns-c}\nspec: {netName: other, netID: 0, action: global}\n",
	 "{\"kind\":\"Tenant\",\"metadata\":{\"name\":\"ns-c\"},\"spec\":{\"netName\":\"other\",\"netID\":0,\"action\":\"global\"}}",
	 "/weft/v1/tenants/ns-c"},
	{"kind: Network\nmetadata: {name: fast}\nspec:\n  type: macvlan\n  master: eth1\n  mtu: 9000\n  ipam:\n    type: range\n"
	 "    range: 192.168.91.100-192.168.91.110/24\n    rangeStart: 192.168.91.101\n    rangeEnd: 192.168.91.109\n"
	 "    exclude: [192.168.91.104/30, 192.168.91.109]\n    gateway: 192.168.91.1\n    routes: [{dst: 0.0.0.0/0, gw: 192.168.91.1}, {dst: 10.0.0.0/8}]\n",
	 "{\"kind\":\"Network\",\"metadata\":{\"name\":\"fast\"},\"spec\":{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"mtu\":9000,\"ipam\":{\"type\":\"range\","
	 "\"range\":\"192.168.91.100-192.168.91.110/24\",\"rangeStart\":\"192.168.91.101\",\"rangeEnd\":\"192.168.91.109\","
	 "\"exclude\":[\"192.168.91.104/30\",\"192.168.91.109/32\"],\"gateway\":\"192.168.91.1\",\"routes\":[{\"dst\":\"0.0.0.0/0\",\"gw\":\"192.168.91.1\"},{\"dst\":\"10.0.0.0/8\"}]}}}",
	 "/weft/v1/networks/fast"},
	{"kind: Network\nmetadata: {name: docker-net}\nspec: {type: routed, ipam: {type: pool, pools: [pool1]}}\n",
	 "{\"kind\":\"Network\",\"metadata\":{\"name\":\"docker-net\"},\"spec\":{\"type\":\"routed\",\"ipam\":{\"type\":\"pool\",\"pools\":[\"pool1\"]}}}",
	 "/weft/v1/networks/docker-net"},
	{"kind: Network\nmetadata: {name: v}\nspec: {type: macvlan, master: bond0.100, mode: vepa, ipam: {type: range, range: 10.10.0.0/16}}\n",
	 "{\"kind\":\"Network\",\"metadata\":{\"name\":\"v\"},\"spec\":{\"type\":\"macvlan\",\"master\":\"bond0.100\",\"mode\":\"vepa\",\"ipam\":{\"type\":\"range\",\"range\":\"10.10.0.0/16\"}}}",
	 "/weft/v1/networks/v"},
	{"kind: Endpoint\nmetadata: {name: node-1.k8s.default.pod1.eth0, labels: {app: web}}\n"
	 "spec: {node: node-1, containerID: abc123, network: fast, ifname: eth0, hostIfname: cali0123456789a, ipNetworks: [10.65.0.5/32, \"fd00::5/128\"], mac: \"EE:ee:ee:ee:ee:ee\", profiles: [WEB]}\n",
	 "{\"kind\":\"Endpoint\",\"metadata\":{\"name\":\"node-1.k8s.default.pod1.eth0\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"node\":\"node-1\",\"containerID\":\"abc123\",\"network\":\"fast\","
	 "\"ifname\":\"eth0\",\"hostIfname\":\"cali0123456789a\",\"mac\":\"EE:ee:ee:ee:ee:ee\",\"ipNetworks\":[\"10.65.0.5/32\",\"fd00::5/128\"],\"profiles\":[\"WEB\"]}}",
	 "/weft/v1/endpoints/node-1.k8s.default.pod1.eth0"},
	/* Server-written metadata is accepted and dropped; annotations kept. */
	{"kind: Endpoint\nmetadata: {name: \"k8s:ns.pod\", resourceVersion: \"12\", uid: x, creationTimestamp: \"2024-01-01T00:00:00Z\", annotations: {note: \"any text: at all\"}}\nspec: {node: n1}\n",
	 NULL, NULL},
};

static void test_valid_kinds(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(goods); i++) {
		_cleanup_free_ char *err = NULL;
		struct weft_resource *r = parse1(goods[i].manifest, &err);
		if (!r) {
			fprintf(stderr, "good[%zu]: %s\n", i, err);
			CHECK(r);
			continue;
		}
		if (goods[i].canonical) {
			_cleanup_free_ char *json = weft_resource_encode(r, false);
			_cleanup_free_ char *key = weft_resource_key(r);
			CHECK_STREQ(json, goods[i].canonical);
			CHECK_STREQ(key, goods[i].key);
		}
		check_round_trip(r);
		weft_resources_free(r, 1);
	}
}

static void test_metadata_ignored_fields(void)
{
	_cleanup_free_ char *err = NULL, *json = NULL;
	struct weft_resource *r = parse1(goods[ARRAY_SIZE(goods) - 1].manifest, &err);

	CHECK(r);
	if (!r)
		return;
	json = weft_resource_encode(r, false);
	CHECK_STREQ(json, "{\"kind\":\"Endpoint\",\"metadata\":{\"name\":\"k8s:ns.pod\",\"annotations\":{\"note\":\"any text: at all\"}},"
			  "\"spec\":{\"node\":\"n1\",\"ipNetworks\":[],\"profiles\":[]}}");
	weft_resources_free(r, 1);
}

struct bad {
	const char *manifest;
	const char *err;
};

#define POOL "kind: IPPool\nmetadata: {name: pool1}\n"
#define PROF "kind: Profile\nmetadata: {name: p}\n"
#define POL "kind: Policy\nmetadata: {name: p}\n"
#define NODE "kind: Node\nmetadata: {name: n1}\n"
#define PEER "kind: BGPPeer\nmetadata: {name: p}\n"
#define BGPC "kind: BGPConfig\nmetadata: {name: default}\n"
#define TEN "kind: Tenant\nmetadata: {name: ns-a}\n"
#define NET "kind: Network\nmetadata: {name: n}\n"
#define MV "spec: {type: macvlan, master: eth1, ipam: {type: range, range: 192.168.91.0/24, "
#define EP "kind: Endpoint\nmetadata: {name: e}\n"
#define IN(rule) PROF "spec: {inboundRules: [" rule "]}\n"
#define IN0 "p: spec.inboundRules[0]."
#define VALUE_RULE "(empty, or letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters)"
#define KEY_RULE "(letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters, optionally after a DNS subdomain and '/')"
#define SUB_RULE "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"
#define TAG_RULE "(letters, digits, '_', '.' and '-', at most 253 characters)"
#define NS_RULE "(lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
#define HOST_RULE "(a host name: letters, digits, '-' and '.', at most 253 characters)"
#define IF_RULE "is not a valid interface name (1..15 characters, no '/', ':' or spaces)"
#define UNSPEC "is not a unicast address (it is the unspecified address)"
#define MCAST "is not a unicast address (it is a multicast address)"
#define LLOCAL "is a link-local address: BIRD needs an interface for a link-local peer, and a BGPPeer cannot name one"

static const struct bad bads[] = {
	/* The document. */
	{"kind: IPool\nmetadata: {name: pool1}\n", "pool1: kind: unknown kind \"IPool\""},
	{"kind: IPool\n", "document 1: kind: unknown kind \"IPool\""},
	{"kind: ippool\nmetadata: {name: pool1}\n", "pool1: kind: unknown kind \"ippool\" (did you mean \"IPPool\"?)"},
	{"metadata: {name: pool1}\n", "pool1: kind: is required"},
	{"kind: 5\nmetadata: {name: pool1}\n", "pool1: kind: expected a string, got 5"},
	{"apiVersion: projectcalico.org/v3\n" POOL "spec: {cidr: 10.0.0.0/8}\n",
	 "pool1: apiVersion: \"projectcalico.org/v3\" is not supported (use weft/v1 or leave it out)"},
	{POOL "spec: {cidr: 10.0.0.0/8}\nstatus: {}\n", "pool1: status: unknown field"},
	{"kind: IPPool\nspec: {cidr: 10.0.0.0/8}\n", "document 1: metadata: is required"},
	{"kind: IPPool\nmetadata: {labels: {a: b}}\n", "document 1: metadata.name: is required"},
	{"kind: IPPool\nmetadata: {name: Pool_1}\n",
	 "Pool_1: metadata.name: \"Pool_1\" is not a valid name " SUB_RULE},
	{"kind: IPPool\nmetadata: {name: 12}\n", "document 1: metadata.name: expected a string, got 12"},
	{"kind: IPPool\nmetadata: {name: pool1, namespace: x}\n", "pool1: metadata.namespace: unknown field"},
	{"kind: IPPool\nmetadata: {name: pool1, labels: {\"-x\": a}}\n",
	 "pool1: metadata.labels[\"-x\"]: \"-x\" is not a valid key " KEY_RULE},
	{"kind: IPPool\nmetadata: {name: pool1, labels: {\"Bad_Prefix/x\": a}}\n",
	 "pool1: metadata.labels[\"Bad_Prefix/x\"]: \"Bad_Prefix/x\" is not a valid key: the prefix before '/' must be a DNS subdomain"},
	{"kind: IPPool\nmetadata: {name: pool1, labels: {app: \"a b\"}}\n",
	 "pool1: metadata.labels.app: \"a b\" is not a valid label value " VALUE_RULE},
	{"kind: IPPool\nmetadata: {name: pool1, labels: {app: 1}}\n", "pool1: metadata.labels.app: expected a string, got 1"},
	{"kind: IPPool\nmetadata: {name: pool1, labels: [a]}\n", "pool1: metadata.labels: expected an object of strings, got a list"},
	{"kind: IPPool\nmetadata: {name: pool1, annotations: {note: true}}\n", "pool1: metadata.annotations.note: expected a string, got true"},
	{"kind: IPPool\nmetadata: {name: pool1, annotations: {\"a b\": x}}\n",
	 "pool1: metadata.annotations[\"a b\"]: \"a b\" is not a valid key " KEY_RULE},
	{"kind: IPPool\nmetadata: {name: pool1, resourceVersion: 12}\n", "pool1: metadata.resourceVersion: expected a string, got 12"},
	{POOL "spec: x\n", "pool1: spec: expected an object, got \"x\""},
	{"hello\n", "document 1: expected an object (a resource), got \"hello\""},

	/* IPPool. */
	{POOL, "pool1: spec.cidr: is required"},
	{POOL "spec: {cidr: 10.65.0.0/33}\n", "pool1: spec.cidr: \"10.65.0.0/33\" is not a CIDR"},
	{POOL "spec: {cidr: 10.65.0.1/16}\n", "pool1: spec.cidr: \"10.65.0.1/16\" has host bits set (did you mean 10.65.0.0/16?)"},
	{POOL "spec: {cidr: 10}\n", "pool1: spec.cidr: expected a string, got 10"},
	{POOL "spec: {cidr: 10.65.0.0/16, blockSize: 33}\n", "pool1: spec.blockSize: 33 is out of range 20..32"},
	{POOL "spec: {cidr: 10.65.0.0/16, blockSize: 19}\n", "pool1: spec.blockSize: 19 is out of range 20..32"},
	{POOL "spec: {cidr: \"fd00::/48\", blockSize: 64}\n", "pool1: spec.blockSize: 64 is out of range 116..128"},
	{POOL "spec: {cidr: 10.65.0.0/16, blockSize: 26.5}\n", "pool1: spec.blockSize: 26.5 is not an integer"},
	{POOL "spec: {cidr: 10.65.0.0/16, blockSize: \"26\"}\n", "pool1: spec.blockSize: expected an integer, got \"26\""},
	{POOL "spec: {cidr: 10.65.0.0/28}\n", "pool1: spec.blockSize: a /26 block does not fit in the pool's cidr 10.65.0.0/28"},
	{POOL "spec: {cidr: 10.65.0.0/16, natOutgoing: yes}\n", "pool1: spec.natOutgoing: expected true or false, got \"yes\""},
	{POOL "spec: {cidr: 10.65.0.0/16, vxlanMode: Sometimes}\n",
	 "pool1: spec.vxlanMode: \"Sometimes\" is not one of Never, Always, CrossSubnet"},
	{POOL "spec: {cidr: 10.65.0.0/16, disabled: 1}\n", "pool1: spec.disabled: expected true or false, got 1"},
	{POOL "spec: {cidr: 10.65.0.0/16, nodeSelector: \"(a\"}\n",
	 "pool1: spec.nodeSelector: \"(a\" is not a valid selector: unbalanced parentheses"},
	{POOL "spec: {cidr: 10.65.0.0/16, colour: blue}\n", "pool1: spec.colour: unknown field"},
	{POOL "spec: {CIDR: 10.65.0.0/16}\n", "pool1: spec.CIDR: unknown field (did you mean cidr?)"},

	/* Profile and rules. */
	{"kind: Profile\nmetadata: {name: a b}\n",
	 "document 1: metadata.name: \"a b\" is not a valid name " TAG_RULE},
	{PROF "spec: {tags: [a, a]}\n", "p: spec.tags[1]: \"a\" is listed twice"},
	{PROF "spec: {tags: [\"x y\"]}\n", "p: spec.tags[0]: \"x y\" is not a valid tag " TAG_RULE},
	{PROF "spec: {tags: web}\n", "p: spec.tags: expected a list, got \"web\""},
	{PROF "spec: {labelsToApply: {role: \"-db\"}}\n", "p: spec.labelsToApply.role: \"-db\" is not a valid label value " VALUE_RULE},
	{PROF "spec: {inboundRules: {action: allow}}\n", "p: spec.inboundRules: expected a list, got an object"},
	{IN("{protocol: tcp}"), IN0 "action: is required"},
	{IN("{action: pass}"), IN0 "action: \"pass\" is only allowed in policies"},
	{IN("{action: accept}"), IN0 "action: \"accept\" is not one of allow, deny, log, pass"},
	{IN("{action: allow, protocol: tcpx}"),
	 IN0 "protocol: \"tcpx\" is not a protocol (tcp, udp, icmp, icmpv6, sctp, udplite or 0..255)"},
	{IN("{action: allow, protocol: 256}"), IN0 "protocol: 256 is not a protocol number (0..255)"},
	{IN("{action: allow, protocol: [tcp]}"), IN0 "protocol: expected a protocol name or number, got a list"},
	{IN("{action: allow, notProtocol: -1}"), IN0 "notProtocol: -1 is not a protocol number (0..255)"},
	{IN("{action: allow, ipVersion: 5}"), IN0 "ipVersion: 5 is not 4 or 6"},
	{IN("{action: allow, ipVersion: 7}"), IN0 "ipVersion: 7 is out of range 4..6"},
	{IN("{action: allow, ipVersion: 6, source: {nets: [10.0.0.0/8]}}"),
	 IN0 "source.nets[0]: \"10.0.0.0/8\" is not an IPv6 CIDR (the rule's ipVersion is 6)"},
	{IN("{action: allow, ipVersion: 6, protocol: icmp}"), IN0 "protocol: icmp does not go with ipVersion 6"},
	{IN("{action: allow, icmp: {type: 8}}"), IN0 "icmp: icmp needs protocol icmp or icmpv6"},
	{IN("{action: allow, protocol: icmp, icmp: {type: 256}}"), IN0 "icmp.type: 256 is out of range 0..255"},
	{IN("{action: allow, protocol: icmp, icmp: {type: 8, code: -1}}"), IN0 "icmp.code: -1 is out of range 0..255"},
	{IN("{action: allow, protocol: icmp, icmp: {code: 1}}"), IN0 "icmp.type: is required"},
	{IN("{action: allow, protocol: tcp, notICMP: {type: 8}}"), IN0 "notICMP: notICMP needs protocol icmp or icmpv6"},
	{IN("{action: allow, protocol: icmpv6, notICMP: {type: x}}"), IN0 "notICMP.type: expected an integer, got \"x\""},
	{IN("{action: allow, source: {tag: \"a/b\"}}"), IN0 "source.tag: \"a/b\" is not a valid tag " TAG_RULE},
	{IN("{action: allow, source: {notTag: \"\"}}"), IN0 "source.notTag: \"\" is not a valid tag " TAG_RULE},
	{IN("{action: allow, source: {nets: [10.0.0.0/33]}}"), IN0 "source.nets[0]: \"10.0.0.0/33\" is not a CIDR"},
	{IN("{action: allow, source: {nets: [bogus]}}"), IN0 "source.nets[0]: \"bogus\" is not an IP address or a CIDR"},
	{IN("{action: allow, destination: {notNets: [10.0.0.1/8]}}"),
	 IN0 "destination.notNets[0]: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)"},
	{IN("{action: allow, source: {selector: \"a == 'b\"}}"),
	 IN0 "source.selector: \"a == 'b\" is not a valid selector: unterminated quoted string"},
	{IN("{action: allow, source: {notSelector: \"\"}}"), IN0 "source.notSelector: \"\" is not a valid selector: it is empty"},
	{IN("{action: allow, destination: {ports: [80]}}"),
	 IN0 "destination.ports: ports need protocol tcp, udp, sctp or udplite"},
	{IN("{action: allow, protocol: icmp, source: {notPorts: [80]}}"),
	 IN0 "source.notPorts: ports need protocol tcp, udp, sctp or udplite"},
	{IN("{action: allow}, {action: allow, protocol: tcp, destination: {ports: [70000]}}"),
	 "p: spec.inboundRules[1].destination.ports[0]: 70000 is not a port (0..65535)"},
	{IN("{action: allow, protocol: tcp, destination: {ports: [\"9000:8000\"]}}"),
	 IN0 "destination.ports[0]: \"9000:8000\" is not a port range: 9000 is above 8000"},
	{IN("{action: allow, protocol: 6, destination: {ports: [http]}}"),
	 IN0 "destination.ports[0]: \"http\" is not a port (0..65535) or a port range (like \"8000:8080\")"},
	{IN("{action: allow, protocol: udp, destination: {notPorts: [true]}}"),
	 IN0 "destination.notPorts[0]: expected a port or a port range, got true"},
	{IN("{action: allow, destination: {port: 80}}"), IN0 "destination.port: unknown field"},
	{PROF "spec: {outboundRules: [{action: allow, source: {nets: 10.0.0.0/8}}]}\n",
	 "p: spec.outboundRules[0].source.nets: expected a list, got \"10.0.0.0/8\""},

	/* Policy. */
	{POL "spec: {order: first}\n", "p: spec.order: expected a number, got \"first\""},
	{POL "spec: {selector: \")\"}\n", "p: spec.selector: \")\" is not a valid selector: unbalanced parentheses"},
	{POL "spec: {types: [Ingres]}\n", "p: spec.types[0]: \"Ingres\" is not one of Ingress, Egress"},
	{POL "spec: {types: [Ingress, ingress]}\n", "p: spec.types[1]: \"Ingress\" is listed twice"},
	{POL "spec: {types: [Ingress], egress: [{action: allow}]}\n", "p: spec.egress: egress rules need \"Egress\" in spec.types"},
	{POL "spec: {types: [Egress], ingress: [{action: allow}]}\n", "p: spec.ingress: ingress rules need \"Ingress\" in spec.types"},
	{POL "spec: {ingress: {}}\n", "p: spec.ingress: expected a list, got an object"},
	{POL "spec: {egress: [{protocol: tcp}]}\n", "p: spec.egress[0].action: is required"},
	{POL "spec: {doNotTrack: true}\n", "p: spec.doNotTrack: unknown field"},

	/* Node. */
	{"kind: Node\nmetadata: {name: node_1}\n", "node_1: metadata.name: \"node_1\" is not a valid node name " HOST_RULE},
	{"kind: Node\nmetadata: {name: \"-n\"}\n", "-n: metadata.name: \"-n\" is not a valid node name " HOST_RULE},
	{NODE "spec: {bgp: {ipv4Address: 198.18.0.11}}\n",
	 "n1: spec.bgp.ipv4Address: \"198.18.0.11\" is not an address with a prefix length (like 198.18.0.11/24)"},
	{NODE "spec: {bgp: {ipv4Address: \"fd00::1/64\"}}\n", "n1: spec.bgp.ipv4Address: \"fd00::1/64\" is not an IPv4 CIDR"},
	{NODE "spec: {bgp: {ipv6Address: 10.0.0.1/8}}\n", "n1: spec.bgp.ipv6Address: \"10.0.0.1/8\" is not an IPv6 CIDR"},
	{NODE "spec: {bgp: {asNumber: 0}}\n", "n1: spec.bgp.asNumber: 0 is out of range 1..4294967295"},
	{NODE "spec: {bgp: {routeReflectorClusterID: 1.2.3}}\n", "n1: spec.bgp.routeReflectorClusterID: \"1.2.3\" is not an IP address"},
	{NODE "spec: {bgp: {routeReflectorClusterID: \"::1\"}}\n", "n1: spec.bgp.routeReflectorClusterID: \"::1\" is not an IPv4 address"},
	{NODE "spec: {bgp: {routeReflectorClusterID: 0.0.0.0}}\n",
	 "n1: spec.bgp.routeReflectorClusterID: \"0.0.0.0\" is not a cluster id: BIRD takes 0 as unset and would use the router id"},
	{NODE "spec: {bgp: {asn: 1}}\n", "n1: spec.bgp.asn: unknown field"},
	{NODE "spec: {bgp: true}\n", "n1: spec.bgp: expected an object, got true"},
	{NODE "spec: {labels: {a: b}}\n", "n1: spec.labels: unknown field"},

	/* BGPPeer. */
	{PEER "spec: {asNumber: 65001}\n", "p: spec.peerIP: is required"},
	{PEER "spec: {peerIP: 198.18.0.256, asNumber: 65001}\n", "p: spec.peerIP: \"198.18.0.256\" is not an IP address"},
	{PEER "spec: {peerIP: 0.0.0.0, asNumber: 65001}\n", "p: spec.peerIP: \"0.0.0.0\" " UNSPEC},
	{PEER "spec: {peerIP: \"::\", asNumber: 65001}\n", "p: spec.peerIP: \"::\" " UNSPEC},
	{PEER "spec: {peerIP: \"0:0::0\", asNumber: 65001}\n", "p: spec.peerIP: \"0:0::0\" " UNSPEC},
	{PEER "spec: {peerIP: 224.0.0.1, asNumber: 65001}\n", "p: spec.peerIP: \"224.0.0.1\" " MCAST},
	{PEER "spec: {peerIP: 239.255.255.255, asNumber: 65001}\n", "p: spec.peerIP: \"239.255.255.255\" " MCAST},
	{PEER "spec: {peerIP: \"ff02::1\", asNumber: 65001}\n", "p: spec.peerIP: \"ff02::1\" " MCAST},
	{PEER "spec: {peerIP: \"FF00::\", asNumber: 65001}\n", "p: spec.peerIP: \"FF00::\" " MCAST},
	{PEER "spec: {peerIP: 255.255.255.255, asNumber: 65001}\n",
	 "p: spec.peerIP: \"255.255.255.255\" is not a unicast address (it is the limited broadcast address)"},
	{PEER "spec: {peerIP: \"fe80::1\", asNumber: 65001}\n", "p: spec.peerIP: \"fe80::1\" " LLOCAL},
	{PEER "spec: {peerIP: \"febf:ffff::1\", asNumber: 65001}\n", "p: spec.peerIP: \"febf:ffff::1\" " LLOCAL},
	{PEER "spec: {peerIP: 198.18.0.1}\n", "p: spec.asNumber: is required"},
	{PEER "spec: {peerIP: 198.18.0.1, asNumber: 4294967296}\n", "p: spec.asNumber: 4294967296 is out of range 1..4294967295"},
	{PEER "spec: {peerIP: 198.18.0.1, asNumber: 1, node: \"-x\"}\n", "p: spec.node: \"-x\" is not a valid node name " HOST_RULE},
	{PEER "spec: {peerIP: 198.18.0.1, asNumber: 1, node: a, nodeSelector: all()}\n",
	 "p: spec.nodeSelector: cannot be used together with spec.node"},
	{PEER "spec: {peerIP: 198.18.0.1, asNumber: 1, nodeSelector: \"a == 'x\"}\n",
	 "p: spec.nodeSelector: \"a == 'x\" is not a valid selector: unterminated quoted string"},
	{PEER "spec: {peerIP: 198.18.0.1, asNumber: 1, password: 'a\"b'}\n",
	 "p: spec.password: \"a\\\"b\" is not a valid password: '\"' and '\\' are not allowed"},
	{PEER "spec: {peerIP: 198.18.0.1, asNumber: 1, password: \"\"}\n", "p: spec.password: \"\" is not a valid password (1..80 characters)"},

	/* BGPConfig. */
	{BGPC "spec: {logSeverityScreen: Verbose}\n", "default: spec.logSeverityScreen: \"Verbose\" is not one of Debug, Info, Warning, Error"},
	{BGPC "spec: {nodeToNodeMeshEnabled: \"true\"}\n", "default: spec.nodeToNodeMeshEnabled: expected true or false, got \"true\""},
	{BGPC "spec: {asNumber: 0}\n", "default: spec.asNumber: 0 is out of range 1..4294967295"},
	{BGPC "spec: {listenPort: 65536}\n", "default: spec.listenPort: 65536 is out of range 1..65535"},

	/* Tenant. */
	{"kind: Tenant\nmetadata: {name: NS}\n", "NS: metadata.name: \"NS\" is not a valid namespace name " NS_RULE},
	{TEN "spec: {netName: \"a.b\"}\n", "ns-a: spec.netName: \"a.b\" is not a valid namespace name " NS_RULE},
	{TEN "spec: {netID: 16777216}\n", "ns-a: spec.netID: 16777216 is out of range 0..16777215"},
	{TEN "spec: {action: merge}\n", "ns-a: spec.action: \"merge\" is not one of \"\", join, isolate, global"},
	{TEN "spec: {action: join}\n", "ns-a: spec.joinNamespace: is required for action join"},
	{TEN "spec: {action: join, joinNamespace: ns-a}\n", "ns-a: spec.joinNamespace: a namespace cannot join itself"},
	{TEN "spec: {action: isolate, joinNamespace: ns-b}\n", "ns-a: spec.joinNamespace: only applies to action join"},
	{TEN "spec: {action: join, joinNamespace: Ns_b}\n", "ns-a: spec.joinNamespace: \"Ns_b\" is not a valid namespace name " NS_RULE},
	{TEN "spec: {action: global, netID: 5}\n", "ns-a: spec.netID: must be 0 (or absent) for action global"},

	/* Network. */
	{NET "spec: {master: eth1}\n", "n: spec.type: is required"},
	{NET "spec: {type: bridge}\n", "n: spec.type: \"bridge\" is not one of macvlan, routed"},
	{NET "spec: {type: macvlan}\n", "n: spec.master: is required for type macvlan"},
	{NET "spec: {type: macvlan, master: averyveryverylongname}\n", "n: spec.master: \"averyveryverylongname\" " IF_RULE},
	{NET "spec: {type: routed, master: eth1}\n", "n: spec.master: only applies to type macvlan"},
	{NET "spec: {type: macvlan, master: eth1, mode: bridged}\n", "n: spec.mode: \"bridged\" is not one of bridge, vepa, private, passthru"},
	{NET "spec: {type: routed, mode: bridge}\n", "n: spec.mode: only applies to type macvlan"},
	{NET "spec: {type: macvlan, master: eth1, mtu: 67}\n", "n: spec.mtu: 67 is out of range 68..65535"},
	{NET "spec: {type: macvlan, master: eth1, ipam: {range: 10.0.0.0/8}}\n", "n: spec.ipam.type: is required"},
	{NET "spec: {type: macvlan, master: eth1, ipam: {type: dhcp}}\n", "n: spec.ipam.type: \"dhcp\" is not one of range, pool"},
	{NET "spec: {type: macvlan, master: eth1, ipam: {type: range}}\n", "n: spec.ipam.range: is required for type range"},
	{NET "spec: {type: macvlan, master: eth1, ipam: {type: range, range: 192.168.91.0}}\n",
	 "n: spec.ipam.range: \"192.168.91.0\" is not a range (a CIDR like 192.168.91.0/24 or first-last/prefix like 192.168.91.100-192.168.91.110/24)"},
	{NET "spec: {type: macvlan, master: eth1, ipam: {type: range, range: 192.168.91.110-192.168.91.100/24}}\n",
	 "n: spec.ipam.range: \"192.168.91.110-192.168.91.100/24\" is not a valid range: the first address is above the last"},
	{NET "spec: {type: macvlan, master: eth1, ipam: {type: range, range: 192.168.91.100-192.168.92.110/24}}\n",
	 "n: spec.ipam.range: \"192.168.91.100-192.168.92.110/24\" is not a valid range: the last address is outside the subnet"},
	{NET MV "rangeStart: 10.0.0.1}}\n", "n: spec.ipam.rangeStart: \"10.0.0.1\" is not inside the range's subnet 192.168.91.0/24"},
	{NET MV "rangeStart: x}}\n", "n: spec.ipam.rangeStart: \"x\" is not an IP address"},
	{NET MV "rangeStart: 192.168.91.50, rangeEnd: 192.168.91.40}}\n", "n: spec.ipam.rangeEnd: \"192.168.91.40\" is below rangeStart 192.168.91.50"},
	{NET MV "rangeEnd: 192.168.92.1}}\n", "n: spec.ipam.rangeEnd: \"192.168.92.1\" is not inside the range's subnet 192.168.91.0/24"},
	{NET MV "exclude: [192.168.91.5, 10.0.0.0/8]}}\n", "n: spec.ipam.exclude[1]: \"10.0.0.0/8\" is not inside the range's subnet 192.168.91.0/24"},
	{NET MV "exclude: [1.2.3.4/33]}}\n", "n: spec.ipam.exclude[0]: \"1.2.3.4/33\" is not a CIDR"},
	{NET MV "gateway: 192.168.90.1}}\n", "n: spec.ipam.gateway: \"192.168.90.1\" is not inside the range's subnet 192.168.91.0/24"},
	{NET MV "routes: [{gw: 192.168.91.1}]}}\n", "n: spec.ipam.routes[0].dst: is required"},
	{NET MV "routes: [{dst: \"::/0\", gw: 192.168.91.1}]}}\n", "n: spec.ipam.routes[0].gw: \"192.168.91.1\" is not of the same address family as dst"},
	{NET MV "routes: [{dst: 0.0.0.0/0, gw: 192.168.90.1}]}}\n",
	 "n: spec.ipam.routes[0].gw: \"192.168.90.1\" is not inside the range's subnet 192.168.91.0/24"},
	{NET MV "pools: [pool1]}}\n", "n: spec.ipam.pools: only applies to type pool"},
	{NET "spec: {type: routed, ipam: {type: pool, pools: [Pool1]}}\n", "n: spec.ipam.pools[0]: \"Pool1\" is not a valid name " SUB_RULE},
	{NET "spec: {type: routed, ipam: {type: pool, range: 10.0.0.0/8}}\n", "n: spec.ipam.range: only applies to type range"},

	/* Endpoint. */
	{"kind: Endpoint\nmetadata: {name: a/b}\nspec: {node: n}\n",
	 "document 1: metadata.name: \"a/b\" is not a valid name (printable ASCII without '/' or spaces, at most 253 characters)"},
	{EP "spec: {ifname: eth0}\n", "e: spec.node: is required"},
	{EP "spec: {node: n, containerID: \"\"}\n", "e: spec.containerID: \"\" is not a valid container id (1..256 characters)"},
	{EP "spec: {node: n, network: Net_1}\n", "e: spec.network: \"Net_1\" is not a valid name " SUB_RULE},
	{EP "spec: {node: n, ifname: averyveryverylongname}\n", "e: spec.ifname: \"averyveryverylongname\" " IF_RULE},
	{EP "spec: {node: n, hostIfname: \"a:b\"}\n", "e: spec.hostIfname: \"a:b\" " IF_RULE},
	{EP "spec: {node: n, mac: \"ee:ee\"}\n", "e: spec.mac: \"ee:ee\" is not a MAC address (like ee:ee:ee:ee:ee:ee)"},
	{EP "spec: {node: n, ipNetworks: [10.0.0.1]}\n",
	 "e: spec.ipNetworks[0]: \"10.0.0.1\" is not an address with a prefix length (like 198.18.0.11/24)"},
	{EP "spec: {node: n, ipNetworks: [10.0.0.1/32, 10.0.0.1/32]}\n", "e: spec.ipNetworks[1]: \"10.0.0.1/32\" is listed twice"},
	{EP "spec: {node: n, profiles: [\"a b\"]}\n", "e: spec.profiles[0]: \"a b\" is not a valid profile name " TAG_RULE},
	{EP "spec: {node: n, profiles: web}\n", "e: spec.profiles: expected a list, got \"web\""},
};

static void test_bad_values(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bads); i++) {
		struct weft_resource *rs = (void *)1;
		size_t n = 77;
		char *err = NULL;
		int r = weft_manifest_parse(bads[i].manifest, strlen(bads[i].manifest), &rs, &n, &err);

		CHECK_EQ_INT(r, -EINVAL);
		CHECK(rs == (void *)1 && n == 77); /* untouched */
		if (r == 0)
			fprintf(stderr, "bad[%zu] accepted: %s", i, bads[i].manifest);
		else if (!err || !streq(err, bads[i].err))
			fprintf(stderr, "bad[%zu]:\n  got:  %s\n  want: %s\n", i, err, bads[i].err);
		CHECK(err && streq(err, bads[i].err));
		free(err);
		if (r == 0)
			weft_resources_free(rs, n);
	}
}

/* Control characters and invalid UTF-8 are refused in every string. */
static void test_text_hygiene(void)
{
	static const char json1[] = "{\"kind\":\"IPPool\",\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"b\\u0001\"}},\"spec\":{\"cidr\":\"10.0.0.0/8\"}}";
	static const char json2[] = "{\"kind\":\"Endpoint\",\"metadata\":{\"name\":\"e\"},\"spec\":{\"node\":\"n\",\"containerID\":\"\xff\"}}";
	struct weft_resource *rs;
	size_t n;
	char *err = NULL;

	CHECK_EQ_INT(weft_manifest_parse(json1, strlen(json1), &rs, &n, &err), -EINVAL);
	CHECK_STREQ(err, "p: metadata.labels.a: \"b\\u0001\" contains a control character");
	free(err);
	err = NULL;
	CHECK_EQ_INT(weft_manifest_parse(json2, strlen(json2), &rs, &n, &err), -EINVAL);
	CHECK_STREQ(err, "e: spec.containerID: not valid UTF-8");
	free(err);
}

TEST_MAIN(TEST(test_valid_kinds), TEST(test_metadata_ignored_fields), TEST(test_bad_values), TEST(test_text_hygiene))
