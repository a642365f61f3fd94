/* test-ipam-cli-setup - fills a store with IPAM allocations for
 * tests/weftctl-ipam.sh, through weft_ipam like the CNI plugin does.
 *
 *   test-ipam-cli-setup STORE auto CONTAINERID IFNAME NODE [NAMESPACE POD]
 *   test-ipam-cli-setup STORE ipam-only CONTAINERID IFNAME NODE   (as weft-ipam)
 *   test-ipam-cli-setup STORE static IP HANDLE [NODE]
 *   test-ipam-cli-setup STORE range NETWORK RANGE CONTAINERID IFNAME
 *   test-ipam-cli-setup STORE put KEY VALUE     (a raw record, to break things)
 *
 * Prints the allocated address. Exit 0 or 1 with a message.
 */
#include "ipam/ipam.h"
#include "lib/json.h"

static int die(const char *what, struct weft_ipam *m, int r)
{
	fprintf(stderr, "test-ipam-cli-setup: %s: %s\n", what, m && *weft_ipam_errmsg(m) ? weft_ipam_errmsg(m) :
			strerror(-r));
	return 1;
}

int main(int argc, char **argv)
{
	struct weft_store *s = NULL;
	struct weft_ipam *m = NULL;
	_cleanup_free_ char *err = NULL, *handle = NULL;
	char ips[WEFT_IP_STRLEN];
	struct weft_ip ip;
	int r, ret = 1;

	weft_json_init();
	if (argc < 4) {
		fprintf(stderr, "usage: see the comment at the top of test-ipam-cli-setup.c\n");
		return 2;
	}
	r = weft_store_open(argv[1], &s, &err);
	if (r < 0) {
		fprintf(stderr, "test-ipam-cli-setup: open %s: %s\n", argv[1], err ? err : strerror(-r));
		return 1;
	}
	r = weft_ipam_new(s, &m);
	if (r < 0) {
		ret = die("ipam", NULL, r);
		goto out;
	}
	const char *cmd = argv[2];
	if ((streq(cmd, "auto") && (argc == 6 || argc == 8)) || (streq(cmd, "ipam-only") && argc == 6)) {
		struct weft_ipam_request req = {
			.node = argv[5],
			.attrs = {.node = argv[5], .container_id = argv[3], .ifname = argv[4],
				  .namespace = argc == 8 ? argv[6] : NULL, .pod = argc == 8 ? argv[7] : NULL,
				  .plugin = streq(cmd, "ipam-only") ? "weft-ipam" : NULL},
		};
		r = weft_ipam_handle_id(argv[3], argv[4], &handle);
		if (r < 0) {
			ret = die("handle", NULL, r);
			goto out;
		}
		req.handle = handle;
		r = weft_ipam_auto_assign(m, &req, &ip);
		if (r < 0) {
			ret = die("auto_assign", m, r);
			goto out;
		}
	} else if (streq(cmd, "static") && (argc == 5 || argc == 6)) {
		struct weft_ipam_attrs a = {.node = argc == 6 ? argv[5] : NULL};
		if (weft_ip_parse(argv[3], &ip) < 0) {
			ret = die(argv[3], NULL, -EINVAL);
			goto out;
		}
		r = weft_ipam_assign_ip(m, argv[4], &ip, a.node, &a);
		if (r < 0) {
			ret = die("assign_ip", m, r);
			goto out;
		}
	} else if (streq(cmd, "range") && argc == 7) {
		struct weft_ipam_range rg = {.network = argv[3]};
		struct weft_ipam_attrs a = {.container_id = argv[5], .ifname = argv[6]};
		if (weft_ipam_range_parse(argv[4], &rg) < 0) {
			ret = die(argv[4], NULL, -EINVAL);
			goto out;
		}
		r = weft_ipam_handle_id(argv[5], argv[6], &handle);
		if (r < 0) {
			ret = die("handle", NULL, r);
			goto out;
		}
		r = weft_ipam_range_assign(m, &rg, handle, &a, &ip);
		if (r < 0) {
			ret = die("range_assign", m, r);
			goto out;
		}
	} else if (streq(cmd, "put") && argc == 5) {
		r = weft_store_put(s, argv[3], argv[4], strlen(argv[4]), NULL);
		if (r < 0) {
			fprintf(stderr, "test-ipam-cli-setup: put %s: %s\n", argv[3], weft_store_errmsg(s));
			goto out;
		}
		ret = 0;
		goto out;
	} else {
		fprintf(stderr, "test-ipam-cli-setup: bad arguments\n");
		ret = 2;
		goto out;
	}
	printf("%s\n", weft_ip_str(&ip, ips, sizeof(ips)));
	ret = 0;
out:
	weft_ipam_free(m);
	weft_store_close(s);
	return ret;
}
