/* test-bgp-driver - the BGP integration test's hands (tests/bgp.sh): what
 * weftd will do, one step per command, so the shell script can run each
 * step inside the right node namespace.
 *
 *   test-bgp-driver render STORE NODE CONF    render NODE's config from the
 *                                             store and install it (bird -p);
 *                                             prints "changed" or "unchanged"
 *   test-bgp-driver claim STORE NODE HANDLE   allocate one address for NODE
 *                                             (claims a block); prints it
 *   test-bgp-driver release STORE NODE HANDLE release HANDLE's addresses and
 *                                             NODE's empty blocks; prints the
 *                                             number of blocks released
 *   test-bgp-driver configure SOCK            `configure` over BIRD's socket
 *   test-bgp-driver protocols SOCK            `show protocols`, one row per
 *                                             line: name|proto|state|since|info|type|peer
 *   test-bgp-driver wait SOCK PROTO SECONDS   wait until PROTO is Established;
 *                                             prints its since
 *   test-bgp-driver put STORE KEY VALUE       write a raw record (to break
 *                                             things weftctl would refuse)
 *
 * Exit 0, or 1 with a message on stderr.
 */
#include "bgpconf/bgpconf.h"

#include "ipam/ipam.h"
#include "lib/json.h"

#include <time.h>

static int die(const char *what, const char *msg, int r)
{
	fprintf(stderr, "test-bgp-driver: %s: %s\n", what, msg && *msg ? msg : strerror(-r));
	return 1;
}

static int open_store(const char *url, struct weft_store **s)
{
	_cleanup_free_ char *err = NULL;
	int r = weft_store_open(url, s, &err);

	if (r < 0)
		return die(url, err, r);
	return 0;
}

static int cmd_render(const char *url, const char *node, const char *conf)
{
	struct weft_store *s = NULL;
	struct weft_bgp_snapshot snap = {0};
	_cleanup_free_ char *err = NULL, *text = NULL;
	int r;

	if (open_store(url, &s))
		return 1;
	r = weft_bgp_snapshot_load(s, &snap, &err);
	weft_store_close(s);
	if (r < 0)
		return die("load", err, r);
	r = weft_bgpconf_render(&snap, node, &text, &err);
	weft_bgp_snapshot_clear(&snap);
	if (r < 0)
		return die("render", err, r);
	r = weft_bgpconf_install(conf, text, getenv("WEFT_BIRD"), &err);
	if (r < 0)
		return die("install", err, r);
	printf("%s\n", r ? "changed" : "unchanged");
	return 0;
}

static int cmd_ipam(const char *url, const char *node, const char *handle, bool claim)
{
	struct weft_store *s = NULL;
	struct weft_ipam *m = NULL;
	int r, ret = 0;

	if (open_store(url, &s))
		return 1;
	r = weft_ipam_new(s, &m);
	if (r < 0) {
		weft_store_close(s);
		return die("ipam", NULL, r);
	}
	if (claim) {
		struct weft_ipam_request req = {.handle = handle, .node = node, .count = 1, .attrs = {.node = (char *)node}};
		struct weft_ip ip;
		char ips[WEFT_IP_STRLEN];

		r = weft_ipam_auto_assign(m, &req, &ip);
		if (r < 0)
			ret = die("claim", weft_ipam_errmsg(m), r);
		else
			printf("%s\n", weft_ip_str(&ip, ips, sizeof(ips)));
	} else {
		r = weft_ipam_release_handle(m, handle);
		if (r >= 0)
			r = weft_ipam_release_empty_blocks(m, node);
		if (r < 0)
			ret = die("release", weft_ipam_errmsg(m), r);
		else
			printf("%d\n", r);
	}
	weft_ipam_free(m);
	weft_store_close(s);
	return ret;
}

static int connect_bird(const char *sock, struct weft_birdc **c)
{
	int r = weft_birdc_connect(sock, 5000, c);

	if (r < 0)
		return die(sock, NULL, r);
	return 0;
}

static int cmd_configure(const char *sock)
{
	struct weft_birdc *c = NULL;
	_cleanup_free_ char *err = NULL;
	int r;

	if (connect_bird(sock, &c))
		return 1;
	r = weft_birdc_configure(c, NULL, &err);
	weft_birdc_close(c);
	if (r < 0)
		return die("configure", err, r);
	printf("configured\n");
	return 0;
}

static int cmd_protocols(const char *sock)
{
	struct weft_birdc *c = NULL;
	struct weft_bird_proto *p = NULL;
	size_t n = 0;
	int r;

	if (connect_bird(sock, &c))
		return 1;
	r = weft_birdc_show_protocols(c, &p, &n);
	weft_birdc_close(c);
	if (r < 0)
		return die("show protocols", NULL, r);
	for (size_t i = 0; i < n; i++) {
		enum weft_bgp_peer_type t;
		struct weft_ip ip;
		char ips[WEFT_IP_STRLEN] = "-";
		const char *type = "-";

		if (weft_bgp_proto_parse(p[i].name, &t, &ip) == 0) {
			type = weft_bgp_peer_type_name(t);
			weft_ip_str(&ip, ips, sizeof(ips));
		}
		printf("%s|%s|%s|%s|%s|%s|%s\n", p[i].name, p[i].proto, p[i].state, p[i].since, p[i].info, type, ips);
	}
	weft_bird_protos_free(p, n);
	return 0;
}

static int cmd_wait(const char *sock, const char *proto, const char *secs)
{
	int64_t deadline, s;
	const char *last = "not found";
	_cleanup_free_ char *keep = NULL;

	if (weft_parse_int64(secs, 1, 3600, &s) < 0)
		return die("wait", "bad SECONDS", -EINVAL);
	deadline = weft_now_ms() + s * 1000;
	do {
		struct weft_birdc *c = NULL;
		struct weft_bird_proto *p = NULL;
		size_t n = 0;

		if (weft_birdc_connect(sock, 2000, &c) == 0) {
			if (weft_birdc_show_protocols(c, &p, &n) >= 0)
				for (size_t i = 0; i < n; i++)
					if (streq(p[i].name, proto)) {
						if (startswith(p[i].info, "Established")) {
							printf("%s\n", p[i].since);
							weft_bird_protos_free(p, n);
							weft_birdc_close(c);
							return 0;
						}
						free(keep);
						keep = wasprintf("%s %s", p[i].state, p[i].info);
						last = keep;
					}
			weft_bird_protos_free(p, n);
			weft_birdc_close(c);
		}
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	} while (weft_now_ms() < deadline);
	return die(proto, last, -ETIMEDOUT);
}

static int cmd_put(const char *url, const char *key, const char *value)
{
	struct weft_store *s = NULL;
	int r;

	if (open_store(url, &s))
		return 1;
	r = weft_store_put(s, key, value, strlen(value), NULL);
	weft_store_close(s);
	return r < 0 ? die("put", NULL, r) : 0;
}

int main(int argc, char **argv)
{
	weft_json_init();
	if (argc == 5 && streq(argv[1], "render"))
		return cmd_render(argv[2], argv[3], argv[4]);
	if (argc == 5 && (streq(argv[1], "claim") || streq(argv[1], "release")))
		return cmd_ipam(argv[2], argv[3], argv[4], streq(argv[1], "claim"));
	if (argc == 3 && streq(argv[1], "configure"))
		return cmd_configure(argv[2]);
	if (argc == 3 && streq(argv[1], "protocols"))
		return cmd_protocols(argv[2]);
	if (argc == 5 && streq(argv[1], "wait"))
		return cmd_wait(argv[2], argv[3], argv[4]);
	if (argc == 5 && streq(argv[1], "put"))
		return cmd_put(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: see the comment at the top of test-bgp-driver.c\n");
	return 2;
}
