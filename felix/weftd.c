/* weftd - the per-node agent: the CNI server and the BGP agent.
 *
 *   weftd --node NAME --store URL --run-dir DIR [--ip A.B.C.D/NN] [--as N]
 *         [--bird PATH] [--no-bgp] [--http ADDR:PORT|off] [--acl nft|ipt|none] [--log-level LEVEL]
 *
 * Owns the node's attachments: the `weft` and `weft-ipam` CNI plugins are
 * thin clients that forward each command to weftd over DIR/weftd.sock
 * (docs/weftd.md). One single-threaded loop serves the socket; start-up
 * reconciliation runs before the socket opens, so a plugin never sees a
 * half-reconciled node. Unless --no-bgp, weftd also registers the node's
 * Node resource and runs BIRD with a config it keeps equal to the store's
 * (weftd-bgp.c, docs/weftd.md).
 */
#include "cni/cni.h"
#include "felix/api.h"
#include "felix/dataplane.h"
#include "felix/metrics.h"
#include "felix/weftd.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"

#include <getopt.h>
#include <sys/stat.h>

static const char *const usage =
	"Usage: weftd --node NAME --store URL [--run-dir DIR] [--ip A.B.C.D/NN] [--as N]\n"
	"             [--ip-autodetect METHOD] [--rr-cluster-id ID] [--bird PATH] [--no-bgp]\n"
	"             [--http ADDR:PORT|off] [--acl nft|ipt|none]\n"
	"             [--log-level LEVEL]\n"
	"\n"
	"The weft per-node agent: serves the weft and weft-ipam CNI plugins on\n"
	"DIR/weftd.sock, owns the node's endpoints, registers the node and runs\n"
	"BIRD (DIR/bird.conf, DIR/bird.ctl) with the config the store asks for.\n"
	"\n"
	"  -n, --node NAME        this node's name (default: the host name)\n"
	"  -s, --store URL        datastore: file:DIR or etcd://HOST:PORT[,...][?opts]\n"
	"                         (default $WEFT_STORE, else file:/var/lib/weft/store)\n"
	"  -r, --run-dir DIR      run directory: API socket, BIRD's config, control\n"
	"                         socket and pid file (default /run/weft)\n"
	"  -i, --ip A.B.C.D/NN    the node's underlay address and subnet (default:\n"
	"                         auto-detected, see docs/weftd.md)\n"
	"      --ip-autodetect M  without --ip: first-found (default), interface=GLOB\n"
	"                         (e.g. eth*) or cidr=A.B.C.D/N\n"
	"  -a, --as N             this node's AS number (default: the BGPConfig's)\n"
	"      --rr-cluster-id ID make this node a route reflector with that\n"
	"                         cluster id (an IPv4 address; \"\" = not one)\n"
	"  -b, --bird PATH        the BIRD 2 binary (default: bird from PATH)\n"
	"      --no-bgp           CNI server only: no Node registration, no BIRD\n"
	"      --http ADDR:PORT   serve /healthz and /metrics there (default\n"
	"                         127.0.0.1:9099; off: no HTTP)\n"
	"      --acl BACKEND      program ACLs with nft (nftables), ipt (ipset +\n"
	"                         iptables) or none (default: none)\n"
	"  -l, --log-level LEVEL  debug, info (default), warn, error\n"
	"  -h, --help             this help\n";

#define MAX_REQUEST_ENV 64

/* The API handler: one request object in, one answer object out. */
static char *api_handle(const char *text, size_t len, bool may_defer, void *userdata)
{
	struct weftd *d = userdata;
	_cleanup_json_ cJSON *req = NULL, *ans = NULL;
	const char *command = NULL, *plugin = "weft", *config = NULL;
	cJSON *env = NULL, *it;
	char *envp[MAX_REQUEST_ENV + 2] = {0};
	size_t nenv = 0;
	_cleanup_free_ char *output = NULL;
	int exit_code;

	if (weft_json_parse(text, len, &req) < 0 || !cJSON_IsObject(req) ||
	    weft_json_get_string(req, "command", &command) < 0 || weft_json_get_string(req, "config", &config) < 0 ||
	    weft_json_get_object(req, "env", &env) < 0 ||
	    (cJSON_GetObjectItemCaseSensitive(req, "plugin") && weft_json_get_string(req, "plugin", &plugin) < 0)) {
		struct weft_cni_error e = {0};
		_cleanup_free_ char *msg = NULL;

		log_warn("api: malformed request (%zu bytes)", len);
		(void)weft_cni_error_set(&e, WEFT_CNI_ERR_INTERNAL, NULL, "weftd: malformed API request");
		msg = weft_cni_error_json(&e, 0);
		weft_cni_error_clear(&e);
		ans = cJSON_CreateObject();
		cJSON_AddStringToObject(ans, "output", msg);
		cJSON_AddNumberToObject(ans, "exit", 1);
		return weft_json_print(ans);
	}
	/* CNI_COMMAND comes from "command"; every other CNI_* variable from
	 * "env" (anything else there is ignored). */
	envp[nenv++] = wasprintf("CNI_COMMAND=%s", command);
	cJSON_ArrayForEach(it, env) {
		if (nenv >= MAX_REQUEST_ENV || !it->string || !cJSON_IsString(it) || !startswith(it->string, "CNI_") ||
		    streq(it->string, "CNI_COMMAND"))
			continue;
		envp[nenv++] = wasprintf("%s=%s", it->string, it->valuestring);
	}
	struct weftd_cni_request cr = {
		.command = command,
		.plugin = plugin,
		.envp = envp,
		.config = config,
		.config_len = strlen(config),
		.may_defer = may_defer,
	};
	exit_code = weftd_cni_handle(d, &cr, &output);
	for (size_t i = 0; i < nenv; i++)
		free(envp[i]);
	if (exit_code == WEFTD_CNI_DEFER)
		return NULL;

	ans = cJSON_CreateObject();
	cJSON_AddStringToObject(ans, "output", output);
	cJSON_AddNumberToObject(ans, "exit", exit_code);
	return weft_json_print(ans);
}

/* Teardowns finished: ADDs parked behind them may go on. */
static void on_teardowns_done(void *userdata)
{
	struct weftd *d = userdata;

	weftd_api_resume(d->api);
}

/* Endpoints whose kernel side went while weftd was not asked (a DEL that
 * found weftd busy and cleaned up locally): addresses and record back. */
static int on_reconcile_timer(struct weft_source *s, int64_t now_ns, void *userdata)
{
	(void)s;
	(void)now_ns;
	/* Also for a weftd without store watches (--no-bgp --acl none): a
	 * replaced store is reopened here at the latest. */
	(void)weftd_store_reopen_if_replaced(userdata);
	(void)weftd_reconcile(userdata, false);
	(void)weftd_store_reopen_if_replaced(userdata);
	return 0;
}

static int64_t reconcile_period_ms(void)
{
	const char *env = getenv("WEFT_RECONCILE_MS");
	int64_t ms = WEFTD_RECONCILE_MS;

	if (env && weft_parse_int64(env, 100, 24LL * 3600 * 1000, &ms) < 0) {
		log_warn("WEFT_RECONCILE_MS=\"%s\" is not 100..86400000: using %d", env, WEFTD_RECONCILE_MS);
		ms = WEFTD_RECONCILE_MS;
	}
	return ms;
}

static int on_signal(struct weft_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	log_info("signal %u: exiting", si->ssi_signo);
	weft_loop_exit(weft_source_loop(s), 0);
	return 0;
}

static int parse_level(const char *s, enum weft_log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (streq(s, names[i])) {
			*out = (enum weft_log_level)i;
			return 0;
		}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"node", required_argument, NULL, 'n'},
		{"store", required_argument, NULL, 's'},
		{"run-dir", required_argument, NULL, 'r'},
		{"log-level", required_argument, NULL, 'l'},
		{"ip", required_argument, NULL, 'i'},
		{"as", required_argument, NULL, 'a'},
		{"bird", required_argument, NULL, 'b'},
		{"no-bgp", no_argument, NULL, 'B'},
		{"http", required_argument, NULL, 'H'},
		{"ip-autodetect", required_argument, NULL, 'D'},
		{"rr-cluster-id", required_argument, NULL, 'R'},
		{"acl", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct weftd d = {.run_dir = "/run/weft"};
	enum weft_log_level level = WEFT_LOG_INFO;
	_cleanup_free_ char *sock = NULL, *err = NULL;
	char host[256];
	struct weft_loop *loop = NULL;
	struct weftd_api *api = NULL;
	struct weftd_status *status = NULL;
	const char *ip_arg = NULL, *bird = NULL, *http = "127.0.0.1:9099", *acl = "none";
	const char *autodetect = NULL, *rr_cluster_id = NULL;
	bool no_bgp = false, stopped_cleanly = false;
	int64_t as_number = 0;
	struct weft_cidr addr = {0};
	int c, r;

	weft_log_init("weftd", WEFT_LOG_INFO);
	weft_json_init();
	while ((c = getopt_long(argc, argv, "n:s:r:l:i:a:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			d.node = optarg;
			break;
		case 's':
			d.store_url = optarg;
			break;
		case 'r':
			d.run_dir = optarg;
			break;
		case 'l':
			if (parse_level(optarg, &level) < 0) {
				fprintf(stderr, "weftd: --log-level: \"%s\" is not debug, info, warn or error\n", optarg);
				return 2;
			}
			break;
		case 'i':
			ip_arg = optarg;
			if (weft_cidr_parse(optarg, false, &addr) < 0 || addr.ip.family != AF_INET || addr.prefixlen == 0) {
				fprintf(stderr, "weftd: --ip: \"%s\" is not an IPv4 address with a prefix (A.B.C.D/NN)\n",
					optarg);
				return 2;
			}
			break;
		case 'a':
			if (weft_parse_int64(optarg, 1, 4294967295LL, &as_number) < 0) {
				fprintf(stderr, "weftd: --as: \"%s\" is not an AS number (1..4294967295)\n", optarg);
				return 2;
			}
			break;
		case 'b':
			bird = optarg;
			break;
		case 'B':
			no_bgp = true;
			break;
		case 'H':
			http = streq(optarg, "off") ? NULL : optarg;
			break;
		case 'D':
			autodetect = optarg;
			break;
		case 'R': {
			struct weft_ip rr;

			if (*optarg && (weft_ip_parse(optarg, &rr) < 0 || rr.family != AF_INET)) {
				fprintf(stderr, "weftd: --rr-cluster-id: \"%s\" is not an IPv4 address\n", optarg);
				return 2;
			}
			if (*optarg && rr.v4.s_addr == 0) {
				fprintf(stderr, "weftd: --rr-cluster-id: 0.0.0.0 is not a cluster id (BIRD takes it as "
						"unset); give another IPv4 address, or \"\" for not a reflector\n");
				return 2;
			}
			rr_cluster_id = optarg;
			break;
		}
		case 'A':
			if (!streq(optarg, "nft") && !streq(optarg, "ipt") && !streq(optarg, "none")) {
				fprintf(stderr, "weftd: --acl: \"%s\" is not nft, ipt or none\n", optarg);
				return 2;
			}
			acl = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs("weftd: see weftd --help\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "weftd: unexpected argument \"%s\" (see weftd --help)\n", argv[optind]);
		return 2;
	}
	weft_log_set_level(level);
	if (getenv("WEFT_LOG") && streq(getenv("WEFT_LOG"), "debug"))
		weft_log_set_level(WEFT_LOG_DEBUG);
	if (!d.node) {
		if (gethostname(host, sizeof(host)) < 0 || !host[0]) {
			fputs("weftd: --node is required (no host name)\n", stderr);
			return 2;
		}
		host[sizeof(host) - 1] = 0;
		d.node = host;
	}
	if (!d.store_url)
		d.store_url = getenv("WEFT_STORE") ? getenv("WEFT_STORE") : "file:/var/lib/weft/store";
	signal(SIGPIPE, SIG_IGN);
	d.metrics = weftd_metrics_new();

	r = weft_store_open(d.store_url, &d.store, &err);
	if (r < 0) {
		log_error_errno(r, "store %s: %s", d.store_url, err ? err : strerror(-r));
		return 1;
	}
	r = weft_ipam_new(d.store, &d.ipam);
	if (r < 0) {
		log_error_errno(r, "ipam: %m");
		goto out;
	}
	if (mkdir(d.run_dir, 0755) < 0 && errno != EEXIST) {
		r = log_error_errno(-errno, "run dir %s: %m", d.run_dir);
		goto out;
	}
	free(err);
	err = NULL;
	r = weft_dp_node_prepare(false, &err);
	if (r < 0) {
		log_error_errno(r, "node set-up: %s", err ? err : strerror(-r));
		goto out;
	}
	(void)weftd_reconcile(&d, true);

	if (!no_bgp) {
		char abuf[WEFT_CIDR_STRLEN];

		if (ip_arg) {
			log_info("node %s: underlay address %s (from --ip)", d.node,
				 weft_cidr_str(&addr, abuf, sizeof(abuf)));
		} else {
			_cleanup_free_ char *why = NULL;

			r = weftd_bgp_detect_address_by(autodetect, &addr, &why);
			if (r == -EINVAL) {
				log_error("--ip-autodetect: \"%s\" is not first-found, interface=GLOB or cidr=A.B.C.D/N",
					  autodetect);
				goto out;
			}
			if (r < 0) {
				log_error_errno(r, "node %s: no IPv4 underlay address found%s%s; give one with --ip",
						d.node, autodetect ? " by " : "", autodetect ? autodetect : "");
				goto out;
			}
			log_info("node %s: underlay address %s: %s", d.node, weft_cidr_str(&addr, abuf, sizeof(abuf)),
				 why);
		}
		d.underlay = addr;
		d.have_underlay = true;
		(void)weftd_bgp_underlay_forwarding(&addr);
		r = weftd_bgp_register_node(&d, &addr, as_number, rr_cluster_id);
		if (r < 0)
			goto out;
		d.node_registered = true;
		d.reg_as_number = as_number;
		d.reg_rr_cluster_id = rr_cluster_id;
	}

	r = weft_loop_new(&loop);
	if (r < 0) {
		log_error_errno(r, "event loop: %m");
		goto out;
	}
	/* After reconciliation: the sweep runs before any teardown is queued,
	 * and sees every device whose DEL a crash interrupted. Without the
	 * worker, DEL just tears down synchronously. */
	r = weftd_td_start(loop, on_teardowns_done, &d, &d.td);
	if (r < 0)
		log_warn_errno(r, "teardown worker: %m; DEL deletes devices synchronously");
	if (no_bgp && ip_arg) {
		d.underlay = addr;
		d.have_underlay = true;
	}
	/* ACLs before the API socket: the first ADD finds them programmed. */
	if (!streq(acl, "none")) {
		r = weftd_acl_start(&d, loop, acl, &d.acl);
		if (r < 0) {
			log_error_errno(r, "acl (%s): %m", acl);
			goto out;
		}
	}
	(void)weft_loop_add_signal(loop, SIGTERM, on_signal, &d, NULL);
	(void)weft_loop_add_signal(loop, SIGINT, on_signal, &d, NULL);
	sock = wasprintf("%s/weftd.sock", d.run_dir);
	free(err);
	err = NULL;
	r = weftd_api_listen(loop, sock, api_handle, &d, &api, &err);
	d.api = api;
	if (r < 0) {
		log_error_errno(r, "%s", err ? err : "api");
		goto out;
	}
	{
		int64_t ns = reconcile_period_ms() * 1000000;
		struct weft_source *rt = NULL;

		r = weft_loop_add_timer(loop, ns, ns, on_reconcile_timer, &d, &rt);
		if (r < 0)
			log_warn_errno(r, "reconcile timer: %m; gone endpoints are reclaimed at start-up only");
		else
			weft_source_set_description(rt, "reconcile");
	}
	if (!no_bgp) {
		r = weftd_bgp_start(&d, loop, bird, &d.bgp);
		if (r < 0) {
			log_error_errno(r, "bgp: %m");
			goto out;
		}
	}
	if (d.have_underlay) {
		r = weftd_fabric_start(&d, loop, &d.fabric);
		if (r < 0) {
			log_error_errno(r, "fabric: %m");
			goto out;
		}
	}
	r = weftd_status_start(&d, loop, http, &status);
	if (r < 0) {
		log_error_errno(r, "status: %m");
		goto out;
	}
	log_info("node %s, store %s, listening on %s%s", d.node, d.store_url, sock, no_bgp ? " (no BGP)" : "");
	r = weft_loop_run(loop);
	if (r < 0)
		log_error_errno(r, "event loop: %m");
	else
		stopped_cleanly = true;
out:
	/* No new requests (parked ADDs are dropped; their plugins report the
	 * lost connection), then the queued teardowns, bounded. */
	weftd_api_free(api);
	d.api = NULL;
	if (stopped_cleanly)
		weftd_status_stopping(status);
	weftd_status_stop(status);
	weftd_fabric_stop(d.fabric);
	weftd_acl_stop(d.acl);
	weftd_bgp_stop(d.bgp);
	(void)weftd_td_stop(d.td, WEFTD_TD_STOP_MS);
	d.td = NULL;
	weft_loop_free(loop);
	weft_ipam_free(d.ipam);
	weft_store_close(d.store);
	weftd_metrics_free(d.metrics);
	return r < 0 ? 1 : 0;
}
