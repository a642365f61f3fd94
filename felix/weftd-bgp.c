/* weftd-bgp.c - weftd's BGP half: the node's underlay address, its Node
 * resource, the BIRD child process and the config it runs.
 *
 * weft does not speak BGP; BIRD does (docs/bgp.md). weftd keeps BIRD's
 * config equal to what bgpconf/ renders from the store: one watch on
 * /weft/v1/ arms a deferred "sync" source for every relevant change (nodes,
 * BGP peers and config, pools, IPAM blocks and affinities), so a burst of
 * events costs one render. A render that changes the text is installed
 * (checked with bird -p) and applied with `configure` over the control
 * socket: BIRD restarts only the protocols whose config changed. A periodic
 * full resync repairs anything a lost event or a failed configure missed.
 *
 * A sync that fails (the config cannot be rendered, BIRD refuses it, BIRD
 * does not take it) leaves the running BIRD on its last good config (fail
 * static) and is retried after a backoff: 1 s doubling to 60 s, back to
 * 1 s on success and on every relevant store change. A text BIRD refused
 * is remembered: the retries do not check the same text again (no `bird
 * -p` every second), a change of the store that changes the text is
 * checked at once, and the same text again only once the refusal is a
 * minute old (a BIRD upgraded meanwhile, or a check that failed for
 * another reason than the text, e.g. bird -p killed, gets another
 * chance: at most one bird -p a minute). While BIRD does
 * not follow the store, the problem is one line in weftd_bird_state
 * (config_error), which makes the node unhealthy (weftd-status.c), and
 * weft_bgp_config_ok is 0; weft_bgp_config_errors_total counts failures
 * by stage.
 *
 * BIRD runs as weftd's child (`bird -f`), supervised through the loop: when
 * it dies it is started again after a backoff (1 s doubling to 30 s, back
 * to 1 s after a minute of uptime). On exit weftd stops it for graceful
 * restart (bird_stop()).
 */
#include "bgpconf/bgpconf.h"
#include "felix/metrics.h"
#include "felix/weftd.h"
#include "lib/json.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <sys/wait.h>

#define BGP_RESYNC_NS (60 * 1000000000LL)
#define BGP_RETRY_MIN_NS (1000000000LL)
#define BGP_RETRY_MAX_NS (60 * 1000000000LL)
/* A BIRD started this recently may not listen on its control socket yet:
 * a configure that cannot connect then is retried without counting as a
 * failure. */
#define BIRD_STARTING_NS (10 * 1000000000LL)
#define BIRD_BACKOFF_MIN_MS 1000
#define BIRD_BACKOFF_MAX_MS 30000
#define BIRD_STABLE_NS (60 * 1000000000LL)
#define BIRD_STOP_MS 3000
#define BIRDC_TIMEOUT_MS 2000

struct weftd_bgp {
	struct weftd *d;
	struct weft_loop *loop;
	char *bird;     /* the binary: a path, or a name looked up in PATH */
	char *conf;     /* RUN/bird.conf */
	char *ctl;      /* RUN/bird.ctl */
	char *pidfile;  /* RUN/bird.pid */
	char *grfile;   /* RUN/bird.graceful: the last BIRD stopped for graceful restart */
	struct weftd_watch *watch;
	struct weft_source *sync_src, *resync_timer, *retry_timer;
	struct weft_source *child_src, *restart_timer;
	pid_t bird_pid;          /* 0: not running */
	int64_t bird_started_ns;
	int backoff_ms;
	bool need_configure;     /* the file changed and BIRD has not taken it yet */
	bool have_config;        /* a config was installed: BIRD may start */
	bool restart_pending;    /* restart_timer is armed */
	bool recover;            /* a BIRD ran before: start with -R */
	bool last_good_refused;  /* bird -p refused the file the last weftd left: not tried again */
	unsigned starts;         /* BIRDs this weftd started */
	unsigned restarts;       /* of those, started again after one died */
	int64_t retry_ns;        /* the next failed sync's retry delay: doubles, reset on success or change */
	char *refused;           /* the last text BIRD refused (bird -p), NULL: none */
	char *refused_problem;   /* ... the problem it made */
	int64_t refused_ns;      /* ... and when */
	char *problem;           /* why BIRD does not follow the store (one line), NULL: it does */
	weftd_bgp_state_fn state_fn; /* told when BIRD starts or exits, and when problem changes */
	void *state_userdata;
};

/* --- the underlay address --------------------------------------------------- */

/* The interface of the IPv4 default route, from /proc/net/route (which shows
 * the reading process's network namespace). Returns 0 or -ENOENT. */
static int default_route_ifname(char *buf, size_t size)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/net/route", "re");
	char line[512], ifname[IF_NAMESIZE + 1];
	unsigned long dest, mask;
	unsigned gw, flags;
	int metric, best_metric = -1;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int refcnt, use, mtu, window, irtt;

		if (sscanf(line, "%16s %lx %x %x %d %d %d %lx %d %d %d", ifname, &dest, &gw, &flags, &refcnt, &use,
			   &metric, &mask, &mtu, &window, &irtt) != 11)
			continue;
		if (dest != 0 || mask != 0 || !(flags & 0x1 /* RTF_UP */))
			continue;
		if (best_metric >= 0 && metric >= best_metric)
			continue;
		best_metric = metric;
		weft_strlcpy(buf, ifname, size);
	}
	return best_metric >= 0 ? 0 : -ENOENT;
}

static bool global_v4(const struct sockaddr *sa)
{
	uint32_t a;

	if (!sa || sa->sa_family != AF_INET)
		return false;
	a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	/* Loopback and link-local addresses are not an underlay. */
	return (a >> 24) != 127 && (a >> 16) != 0xa9fe && a != 0;
}

static unsigned mask_len(const struct sockaddr *sa)
{
	uint32_t m = sa ? ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) : 0xffffffff;
	unsigned n = 0;

	while (n < 32 && (m & (0x80000000u >> n)))
		n++;
	return n;
}

/* The first global IPv4 address on ifname (NULL: on the first interface
 * that is up and not a loopback). */
static int first_v4(struct ifaddrs *ifa, const char *ifname, struct weft_cidr *out, char *which, size_t size)
{
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!global_v4(i->ifa_addr))
			continue;
		if (ifname ? !streq(i->ifa_name, ifname)
			   : (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)))
			continue;
		out->ip.family = AF_INET;
		out->ip.v4 = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
		out->prefixlen = mask_len(i->ifa_netmask);
		weft_strlcpy(which, i->ifa_name, size);
		return 0;
	}
	return -ENOENT;
}

/* The first global IPv4 address on an interface whose name matches the
 * glob pattern (interface=), or that lies inside cidr (cidr=). */
static int detect_by(struct ifaddrs *ifa, const char *pattern, const struct weft_cidr *cidr, struct weft_cidr *out,
		     char *which, size_t size)
{
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		struct weft_cidr c = {.ip.family = AF_INET};

		if (!global_v4(i->ifa_addr) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		c.ip.v4 = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
		c.prefixlen = mask_len(i->ifa_netmask);
		if (pattern && fnmatch(pattern, i->ifa_name, 0) != 0)
			continue;
		if (cidr && !weft_cidr_contains(cidr, &c.ip))
			continue;
		*out = c;
		weft_strlcpy(which, i->ifa_name, size);
		return 0;
	}
	return -ENOENT;
}

int weftd_bgp_detect_address_by(const char *method, struct weft_cidr *out, char **why)
{
	struct ifaddrs *ifa = NULL;
	char which[IF_NAMESIZE + 1], cbuf[WEFT_CIDR_STRLEN];
	struct weft_cidr c, within;
	int r;

	if (!method || streq(method, "first-found"))
		return weftd_bgp_detect_address(out, why);
	if (startswith(method, "interface=") && method[10]) {
		if (getifaddrs(&ifa) < 0)
			return -errno;
		r = detect_by(ifa, method + 10, NULL, &c, which, sizeof(which));
		freeifaddrs(ifa);
		if (r < 0)
			return r;
		*out = c;
		*why = wasprintf("the first global IPv4 address on %s, the first interface matching \"%s\"", which,
				 method + 10);
		return 0;
	}
	if (startswith(method, "cidr=") && weft_cidr_parse(method + 5, true, &within) == 0 &&
	    within.ip.family == AF_INET) {
		if (getifaddrs(&ifa) < 0)
			return -errno;
		r = detect_by(ifa, NULL, &within, &c, which, sizeof(which));
		freeifaddrs(ifa);
		if (r < 0)
			return r;
		*out = c;
		*why = wasprintf("the first IPv4 address inside %s (on %s)", weft_cidr_str(&within, cbuf, sizeof(cbuf)),
				 which);
		return 0;
	}
	return -EINVAL;
}

int weftd_bgp_detect_address(struct weft_cidr *out, char **why)
{
	struct ifaddrs *ifa = NULL;
	char ifname[IF_NAMESIZE + 1], which[IF_NAMESIZE + 1];
	struct weft_cidr c;
	int r;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	if (default_route_ifname(ifname, sizeof(ifname)) == 0) {
		r = first_v4(ifa, ifname, &c, which, sizeof(which));
		if (r == 0) {
			freeifaddrs(ifa);
			*out = c;
			*why = wasprintf("the first global IPv4 address on %s, the interface of the default route", which);
			return 0;
		}
	}
	r = first_v4(ifa, NULL, &c, which, sizeof(which));
	freeifaddrs(ifa);
	if (r < 0)
		return r;
	*out = c;
	*why = wasprintf("the first global IPv4 address on %s, the first interface that is up and not a loopback "
			 "(no default route with an IPv4 address)",
			 which);
	return 0;
}

int weftd_bgp_underlay_forwarding(const struct weft_cidr *addr)
{
	struct ifaddrs *ifa = NULL;
	char ifname[IF_NAMESIZE + 1] = "", path[128], v[8] = "";
	ssize_t n;
	int fd, r = 0;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == addr->ip.v4.s_addr) {
			weft_strlcpy(ifname, i->ifa_name, sizeof(ifname));
			break;
		}
	freeifaddrs(ifa);
	if (!ifname[0]) {
		log_warn("the underlay address is on no interface of this node: is --ip right?");
		return -ENOENT;
	}
	/* IPv4 forwards by the flag of the interface a packet came in on:
	 * the host veths have it (dataplane), and the underlay needs it for
	 * the packets that other nodes route to this node's pods. */
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return log_warn_errno(-errno, "%s: %m", path);
	n = read(fd, v, sizeof(v) - 1);
	if (n > 0 && v[0] == '1')
		goto out;
	if (pwrite(fd, "1\n", 2, 0) != 2) {
		r = log_warn_errno(-errno, "setting %s: %m", path);
		goto out;
	}
	log_info("ipv4 forwarding switched on for the underlay interface %s (traffic from other nodes to local pods "
		 "arrives there)",
		 ifname);
out:
	close(fd);
	return r;
}

/* --- the Node resource ------------------------------------------------------- */

int weftd_node_edit(struct weftd *d, bool create, weftd_node_edit_fn edit, void *data)
{
	_cleanup_free_ char *key = wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_NODE), d->node);

	/* Compare-and-swap, so an operator's concurrent edit of the labels
	 * (or anything else) is never overwritten: on a conflict read again. */
	for (int attempt = 0; attempt < 10; attempt++) {
		struct weft_kv kv = {0};
		_cleanup_json_ cJSON *doc = NULL;
		struct weft_resource res = {0};
		_cleanup_free_ char *err = NULL, *text = NULL, *old = NULL;
		cJSON *spec;
		int64_t expect = 0;
		int r;

		r = weft_store_get(d->store, key, &kv);
		if (r == 0) {
			expect = kv.mod_rev;
			if (weft_json_parse(kv.value, kv.value_len, &doc) < 0 || !cJSON_IsObject(doc)) {
				log_warn("node %s: the stored Node is not JSON; writing a new one", d->node);
				cJSON_Delete(doc);
				doc = NULL;
			} else {
				old = weft_json_print(doc);
			}
			weft_kv_clear(&kv);
		} else if (r != -ENOENT) {
			return log_error_errno(r, "node %s: reading %s: %s", d->node, key,
					       weft_store_errmsg(d->store));
		} else if (!create) {
			return 0;
		}
		if (!doc) {
			doc = cJSON_CreateObject();
			cJSON_AddStringToObject(doc, "kind", "Node");
			cJSON_AddObjectToObject(cJSON_AddObjectToObject(doc, "metadata"), "labels");
			cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "name", d->node);
		}
		spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
		if (!cJSON_IsObject(spec)) {
			cJSON_DeleteItemFromObjectCaseSensitive(doc, "spec");
			spec = cJSON_AddObjectToObject(doc, "spec");
		}
		edit(spec, data);
		r = weft_resource_from_json(doc, d->node, &res, &err);
		if (r < 0)
			return log_error_errno(r, "node %s: %s", d->node, err ? err : "invalid Node");
		text = weft_resource_encode(&res, false);
		weft_resource_clear(&res);
		if (old && expect) {
			/* Unchanged: no write (and no watch event on every node). */
			struct weft_resource cur = {0};
			_cleanup_free_ char *cerr = NULL, *ctext = NULL;

			if (weft_resource_decode(old, strlen(old), &cur, &cerr) == 0) {
				ctext = weft_resource_encode(&cur, false);
				weft_resource_clear(&cur);
				if (streq(ctext, text))
					return 0;
			}
		}
		r = weft_store_cas(d->store, key, text, strlen(text), expect, NULL);
		if (r == -ECANCELED)
			continue;
		if (r < 0)
			return log_error_errno(r, "node %s: writing %s: %s", d->node, key, weft_store_errmsg(d->store));
		return expect ? 1 : 2;
	}
	return log_error_errno(-ECANCELED, "node %s: the Node resource kept changing under us", d->node);
}

struct register_edit {
	const char *addr;
	int64_t as_number;
	const char *rr_cluster_id;
};

static void register_edit(cJSON *spec, void *data)
{
	const struct register_edit *e = data;
	cJSON *bgp = cJSON_GetObjectItemCaseSensitive(spec, "bgp");

	if (!cJSON_IsObject(bgp)) {
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "bgp");
		bgp = cJSON_AddObjectToObject(spec, "bgp");
	}
	cJSON_DeleteItemFromObjectCaseSensitive(bgp, "ipv4Address");
	cJSON_AddStringToObject(bgp, "ipv4Address", e->addr);
	if (e->as_number > 0) {
		cJSON_DeleteItemFromObjectCaseSensitive(bgp, "asNumber");
		cJSON_AddNumberToObject(bgp, "asNumber", (double)e->as_number);
	}
	if (e->rr_cluster_id) {
		cJSON_DeleteItemFromObjectCaseSensitive(bgp, "routeReflectorClusterID");
		if (*e->rr_cluster_id)
			cJSON_AddStringToObject(bgp, "routeReflectorClusterID", e->rr_cluster_id);
	} else {
		/* A cluster id of 0.0.0.0, stored before the model refused it:
		 * BIRD used the router id for it. That, written out, keeps the
		 * node the reflector it was and its Node valid again (the
		 * snapshot reads it the same way, bgpconf/render.c). */
		const char *cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bgp, "routeReflectorClusterID"));
		struct weft_ip ip;
		struct weft_cidr a;
		char ips[WEFT_IP_STRLEN];

		if (cid && weft_ip_parse(cid, &ip) == 0 && ip.family == AF_INET && ip.v4.s_addr == 0 &&
		    weft_cidr_parse(e->addr, false, &a) == 0) {
			weft_ip_str(&a.ip, ips, sizeof(ips));
			log_warn("node: spec.bgp.routeReflectorClusterID 0.0.0.0 is not a cluster id (BIRD used the router "
				 "id for it): writing %s, the router id, instead",
				 ips);
			cJSON_ReplaceItemInObjectCaseSensitive(bgp, "routeReflectorClusterID", cJSON_CreateString(ips));
		}
	}
}

int weftd_bgp_register_node(struct weftd *d, const struct weft_cidr *addr, int64_t as_number,
			    const char *rr_cluster_id)
{
	char abuf[WEFT_CIDR_STRLEN];
	struct register_edit e = {.addr = weft_cidr_str(addr, abuf, sizeof(abuf)), .as_number = as_number,
				  .rr_cluster_id = rr_cluster_id};
	int r = weftd_node_edit(d, true, register_edit, &e);

	if (r == 0)
		log_info("node %s: Node resource up to date (%s)", d->node, abuf);
	else if (r > 0)
		log_info("node %s: Node resource %s (ipv4Address %s%s%s%s)", d->node, r == 1 ? "updated" : "created",
			 abuf, as_number > 0 ? ", asNumber set" : "", rr_cluster_id && *rr_cluster_id ? ", route reflector " : "",
			 rr_cluster_id && *rr_cluster_id ? rr_cluster_id : "");
	return r < 0 ? r : 0;
}

/* --- BIRD, the child --------------------------------------------------------- */

static int bird_start(struct weftd_bgp *b);

static int on_restart_timer(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_bgp *b = userdata;

	(void)s;
	(void)now_ns;
	b->restart_pending = false;
	if (!b->bird_pid)
		(void)bird_start(b);
	return 0;
}

static void bird_schedule_restart(struct weftd_bgp *b)
{
	int64_t when = weft_now_ns() + (int64_t)b->backoff_ms * 1000000;

	log_warn("bird: restarting in %d ms", b->backoff_ms);
	b->restart_pending = true;
	if (b->restart_timer)
		(void)weft_source_timer_set(b->restart_timer, when, 0);
	else
		(void)weft_loop_add_timer_at(b->loop, when, 0, on_restart_timer, b, &b->restart_timer);
	b->backoff_ms = b->backoff_ms * 2 > BIRD_BACKOFF_MAX_MS ? BIRD_BACKOFF_MAX_MS : b->backoff_ms * 2;
}

static int on_bird_exit(struct weft_source *s, const siginfo_t *si, void *userdata)
{
	struct weftd_bgp *b = userdata;

	if (si->si_code == CLD_EXITED)
		log_warn("bird (pid %d) exited with status %d", (int)b->bird_pid, si->si_status);
	else
		log_warn("bird (pid %d) killed by signal %d", (int)b->bird_pid, si->si_status);
	b->bird_pid = 0;
	b->recover = true;
	weft_source_free(s);
	b->child_src = NULL;
	if (weft_loop_now(b->loop) - b->bird_started_ns > BIRD_STABLE_NS)
		b->backoff_ms = BIRD_BACKOFF_MIN_MS;
	bird_schedule_restart(b);
	if (b->state_fn)
		b->state_fn(b->state_userdata);
	return 0;
}

/* Stop a BIRD left over from an earlier weftd on this run dir (its pid
 * file names it, and its command line names our control socket), so that
 * two BIRDs never fight over one socket and one kernel table. */
/* Is pid alive and not a zombie? (kill(pid, 0) also succeeds on a zombie
 * nobody reaps, e.g. an orphaned BIRD whose parent is gone.) */
static bool pid_running(int pid)
{
	char path[64], buf[512];
	_cleanup_fclose_ FILE *f = NULL;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		return false;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void bird_stop_stale(struct weftd_bgp *b)
{
	_cleanup_fclose_ FILE *f = fopen(b->pidfile, "re");
	char path[64], cmd[4096];
	int pid = 0;
	ssize_t n;
	int fd;

	if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 1)
		return;
	/* A pid file means an earlier BIRD did not exit cleanly (a clean
	 * exit removes it), so its kernel routes (persist) may still be
	 * there, even when it died together with its weftd: recover them
	 * with -R rather than let a fresh BIRD delete them at its first
	 * scan. */
	b->recover = true;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (!cmd[i])
			cmd[i] = ' ';
	cmd[n] = 0;
	if (!strstr(cmd, b->ctl))
		return;
	/* SIGKILL, not SIGTERM: a BIRD that shuts down cleanly tells its
	 * peers (Cease), and they drop our routes at once; one that vanishes
	 * lets them keep the routes as stale (graceful restart) until the new
	 * BIRD, started with -R, is back. */
	log_info("bird: replacing pid %d left over from an earlier weftd", pid);
	kill(pid, SIGKILL);
	for (int i = 0; i < BIRD_STOP_MS / 50 && pid_running(pid); i++)
		usleep(50 * 1000);
}

static int bird_start(struct weftd_bgp *b)
{
	/* After an earlier BIRD (crashed, or left by a killed weftd), -R:
	 * graceful restart recovery keeps the kernel routes the old one
	 * installed until the sessions are back, so pods see no gap. On a
	 * fresh start it would hold the routes back for the GR wait. */
	char *argv[] = {b->bird, "-f", "-c", b->conf, "-s", b->ctl, "-P", b->pidfile, b->recover ? "-R" : NULL, NULL};
	pid_t pid;
	int r;

	if (b->bird_pid || !b->have_config)
		return 0;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		log_warn_errno(r, "bird: fork: %m");
		bird_schedule_restart(b);
		return r;
	}
	if (pid == 0) {
		sigset_t none;

		/* The loop blocks the signals it handles; BIRD must get them. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (strchr(b->bird, '/'))
			execv(b->bird, argv);
		else
			execvp(b->bird, argv);
		_exit(127);
	}
	r = weft_loop_add_child(b->loop, pid, on_bird_exit, b, &b->child_src);
	if (r < 0) {
		log_error_errno(r, "bird: watching pid %d: %m", (int)pid);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		bird_schedule_restart(b);
		return r;
	}
	weft_source_set_description(b->child_src, "bird");
	b->bird_pid = pid;
	b->bird_started_ns = weft_now_ns();
	if (b->starts++ > 0)
		b->restarts++;
	/* BIRD reads the file at start: whatever was pending is in it. */
	b->need_configure = false;
	log_info("bird: started pid %d (%s -f -c %s -s %s%s)", (int)pid, b->bird, b->conf, b->ctl,
		 b->recover ? " -R" : "");
	if (b->state_fn)
		b->state_fn(b->state_userdata);
	return 0;
}

/* Ask BIRD to shut down for graceful restart ("graceful restart" on its
 * control socket): its peers keep this node's routes as stale for the
 * restart time instead of dropping them at once (a Cease, which SIGTERM
 * sends), and its kernel routes stay (persist). Returns 0 when BIRD took
 * the command. */
static int bird_graceful_shutdown(struct weftd_bgp *b)
{
	struct weft_birdc *c = NULL;
	struct weft_birdc_reply rep = {0};
	int r;

	r = weft_birdc_connect(b->ctl, BIRDC_TIMEOUT_MS / 2, &c);
	if (r < 0)
		return r;
	r = weft_birdc_cmd(c, "graceful restart", &rep);
	weft_birdc_close(c);
	/* BIRD may close the socket before its answer is complete: what
	 * counts is that it goes; the wait below tells. */
	weft_birdc_reply_clear(&rep);
	return r == -EIO || r == -ECONNRESET ? 0 : r;
}

/* Stop BIRD as weftd exits: for graceful restart, so that stopping or
 * restarting weftd (an upgrade) is no worse for the node's pods than its
 * crash: they stay reachable, and the next weftd's BIRD starts with -R
 * (RUN/bird.graceful says so). SIGTERM when BIRD does not take the
 * command, SIGKILL when it does not go. */
static void bird_stop(struct weftd_bgp *b)
{
	pid_t pid = b->bird_pid;
	bool graceful;
	int i;

	weft_source_free(b->child_src);
	b->child_src = NULL;
	if (!pid)
		return;
	b->bird_pid = 0;
	graceful = bird_graceful_shutdown(b) == 0;
	if (!graceful)
		kill(pid, SIGTERM);
	for (i = 0; i < BIRD_STOP_MS / 20; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			log_info("bird: pid %d stopped%s", (int)pid, graceful ? " for graceful restart" : "");
			if (graceful) {
				int fd = open(b->grfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
				if (fd < 0)
					log_warn_errno(-errno, "bird: cannot create %s: %m", b->grfile);
				else
					close(fd);
			}
			return;
		}
		usleep(20 * 1000);
	}
	log_warn("bird: pid %d did not stop within %d ms: killing it", (int)pid, BIRD_STOP_MS);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* --- the sync: store -> config -> BIRD ----------------------------------------- */

/* `configure` over the control socket. Returns 0; -EAGAIN when BIRD was
 * started a moment ago and does not listen yet (try again, no failure);
 * or a negative errno with *err malloc'ed (BIRD's answer, or why it could
 * not be asked), logged. */
static int bird_configure(struct weftd_bgp *b, char **err)
{
	struct weft_birdc *c = NULL;
	char *e = NULL;
	int r;

	r = weft_birdc_connect(b->ctl, BIRDC_TIMEOUT_MS, &c);
	if (r < 0) {
		if ((r == -ENOENT || r == -ECONNREFUSED) && weft_now_ns() - b->bird_started_ns < BIRD_STARTING_NS)
			return -EAGAIN; /* still starting */
		*err = wasprintf("cannot reach BIRD on %s: %s", b->ctl, strerror(-r));
		log_warn("bird: configure: %s", *err);
		return r;
	}
	r = weft_birdc_configure(c, NULL, &e);
	weft_birdc_close(c);
	if (r < 0) {
		*err = e ? e : wstrdup(strerror(-r));
		log_warn_errno(r, "bird: configure: %s", *err);
		return r;
	}
	free(e);
	log_info("bird: configured");
	return 0;
}

/* A config installed earlier that BIRD has not taken yet (its configure
 * failed or timed out) is applied even when this sync cannot install a new
 * one: the file holds the last config BIRD accepted, and waiting for a
 * render that installs would leave BIRD on an older one for as long as the
 * store keeps what makes it fail. */
static void bird_configure_pending(struct weftd_bgp *b)
{
	_cleanup_free_ char *err = NULL;

	if (b->need_configure && b->bird_pid && bird_configure(b, &err) == 0)
		b->need_configure = false;
}

/* A weftd started while no config can be made (a record weftctl would
 * refuse, written by other means; a store that cannot be read) would
 * leave its node without BGP until that is mended. A running BIRD keeps
 * its config in that case (fail static); a starting one gets the config
 * the last weftd installed, when it is still there and BIRD takes it. */
static void bird_start_last_good(struct weftd_bgp *b)
{
	_cleanup_free_ char *err = NULL;
	int r;

	if (b->have_config || b->bird_pid || b->restart_pending || b->last_good_refused || access(b->conf, R_OK) < 0)
		return;
	r = weft_bgpconf_check(b->bird, b->conf, &err);
	if (r < 0) {
		log_warn("bgp: %s, left by the last weftd, is refused too: %s", b->conf, err ? err : "bird -p failed");
		/* The retries of a failing sync do not check the same file
		 * again (a timeout or a missing bird may pass next time). */
		b->last_good_refused = r == -EINVAL;
		return;
	}
	log_warn("bgp: no new config can be made now: starting BIRD with %s as the last weftd installed it", b->conf);
	b->have_config = true;
	(void)bird_start(b);
}

/* --- the sync's outcome: backoff, problem, metrics ------------------------------ */

static const char *const stage_label[] = {"stage=\"render\"", "stage=\"check\"", "stage=\"configure\""};
enum sync_stage { STAGE_RENDER, STAGE_CHECK, STAGE_CONFIGURE };

static void metrics_declare(struct weftd_metrics *m)
{
	weftd_metric_declare(m, "weft_bgp_config_errors_total", "counter",
			     "Failed syncs of BIRD's config with the store, by stage: render (the store could not be "
			     "read or the config not made from it), check (BIRD refused the config, bird -p, or it "
			     "could not be checked or written; a text BIRD refused is checked, and counted, again only "
			     "after a minute), "
			     "configure (BIRD did not take it).");
	weftd_metric_declare(m, "weft_bgp_config_ok", "gauge",
			     "1 when BIRD runs the config made from the store as it is now (the last sync "
			     "succeeded), 0 while it keeps an older one or has none.");
	for (size_t i = 0; i < ARRAY_SIZE(stage_label); i++)
		weftd_metric_add(m, "weft_bgp_config_errors_total", stage_label[i], 0);
	weftd_metric_set(m, "weft_bgp_config_ok", NULL, 0);
}

/* One line of at most 300 printable ASCII characters for the Node's
 * status: the schema wants one line of printable text there, and a cut in
 * the middle of a UTF-8 sequence would not be valid text. first_line: stop
 * at the first "; " (where install.c joined BIRD's lines). */
static char *status_text(const char *s, bool first_line)
{
	struct weft_buf b = {0};

	for (; *s && b.len < 300; s++) {
		unsigned char c = (unsigned char)*s;

		if (first_line && s[0] == ';' && s[1] == ' ')
			break;
		if (c == '\n')
			break;
		weft_buf_printf(&b, "%c", c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c);
	}
	return weft_buf_steal(&b);
}

static void set_problem(struct weftd_bgp *b, char *problem /* taken; NULL: none */)
{
	bool changed = !problem != !b->problem || (problem && !streq(problem, b->problem));

	free(b->problem);
	b->problem = problem;
	if (changed && b->state_fn)
		b->state_fn(b->state_userdata);
}

/* The sync failed at stage: count it (unless it was counted already: a
 * refused text seen again), say why in the node's status, retry later. */
static int sync_failed(struct weftd_bgp *b, enum sync_stage stage, bool count, char *problem /* taken */, int r)
{
	int64_t delay = b->retry_ns;

	if (count)
		weftd_metric_add(b->d->metrics, "weft_bgp_config_errors_total", stage_label[stage], 1);
	weftd_metric_set(b->d->metrics, "weft_bgp_config_ok", NULL, 0);
	set_problem(b, problem);
	(void)weft_source_timer_set(b->retry_timer, weft_now_ns() + delay, 0);
	b->retry_ns = delay * 2 > BGP_RETRY_MAX_NS ? BGP_RETRY_MAX_NS : delay * 2;
	log_debug("bgp: next try in %lld ms", (long long)(delay / 1000000));
	return r;
}

static void sync_ok(struct weftd_bgp *b)
{
	if (b->problem)
		log_info("bgp: BIRD follows the store again");
	weftd_metric_set(b->d->metrics, "weft_bgp_config_ok", NULL, 1);
	set_problem(b, NULL);
	b->retry_ns = BGP_RETRY_MIN_NS;
	(void)weft_source_timer_stop(b->retry_timer);
}

/* The config cannot be made or installed: BIRD keeps what it runs, and
 * a BIRD that is not running yet gets the last good file. */
static void keep_last_good(struct weftd_bgp *b)
{
	bird_configure_pending(b);
	bird_start_last_good(b);
}

static int bgp_sync(struct weftd_bgp *b)
{
	struct weft_bgp_snapshot snap = {0};
	_cleanup_free_ char *text = NULL, *err = NULL, *msg = NULL;
	int r;

	r = weft_bgp_snapshot_load(b->d->store, &snap, &err);
	if (r < 0) {
		msg = status_text(err ? err : strerror(-r), false);
		log_warn_errno(r, "bgp: reading the store: %s", err ? err : strerror(-r));
		keep_last_good(b);
		return sync_failed(b, STAGE_RENDER, true, wasprintf("BGP config cannot be made: reading the store: %s", msg),
				   r);
	}
	r = weft_bgpconf_render(&snap, b->d->node, &text, &err);
	weft_bgp_snapshot_clear(&snap);
	if (r < 0) {
		msg = status_text(err ? err : strerror(-r), false);
		log_warn_errno(r, "bgp: rendering the config of %s: %s", b->d->node, err ? err : strerror(-r));
		keep_last_good(b);
		return sync_failed(b, STAGE_RENDER, true, wasprintf("BGP config cannot be made: %s", msg), r);
	}
	free(err);
	err = NULL;
	if (b->refused && streq(text, b->refused) && weft_now_ns() - b->refused_ns < BGP_RETRY_MAX_NS) {
		/* BIRD refused exactly this text a moment ago: checking it
		 * again would only spawn bird -p to hear the same. */
		log_debug("bgp: the config is still the one BIRD refused: not checked again");
		keep_last_good(b);
		return sync_failed(b, STAGE_CHECK, false, wstrdup(b->refused_problem), -EINVAL);
	}
	r = weft_bgpconf_install(b->conf, text, b->bird, &err);
	if (r < 0) {
		log_error_errno(r, "bgp: installing %s: %s", b->conf, err ? err : strerror(-r));
		msg = status_text(err ? err : strerror(-r), true);
		keep_last_good(b);
		if (r != -EINVAL)
			return sync_failed(b, STAGE_CHECK, true, wasprintf("BGP config not installed: %s", msg), r);
		/* BIRD refused it: remember the text, so that it is not checked
		 * again until the store changes it. */
		free(b->refused);
		free(b->refused_problem);
		b->refused = TAKE_PTR(text);
		b->refused_problem = wasprintf("BGP config refused by BIRD: %s", msg);
		b->refused_ns = weft_now_ns();
		return sync_failed(b, STAGE_CHECK, true, wstrdup(b->refused_problem), r);
	}
	free(b->refused);
	free(b->refused_problem);
	b->refused = b->refused_problem = NULL;
	if (r == 1) {
		log_info("bgp: %s changed", b->conf);
		b->need_configure = true;
	}
	b->have_config = true;
	if (!b->bird_pid && !b->restart_pending) {
		/* A failed fork is the supervisor's (it schedules a restart),
		 * not the config's. */
		(void)bird_start(b);
		sync_ok(b);
		return 0;
	}
	if (b->need_configure && b->bird_pid) {
		free(err);
		err = NULL;
		r = bird_configure(b, &err);
		if (r == -EAGAIN) {
			/* BIRD is starting: it answers within a second. */
			(void)weft_source_timer_set(b->retry_timer, weft_now_ns() + BGP_RETRY_MIN_NS, 0);
			return 0;
		}
		if (r < 0) {
			msg = status_text(err ? err : strerror(-r), false);
			return sync_failed(b, STAGE_CONFIGURE, true,
					   wasprintf("BIRD did not take the new config (configure: %s)", msg), r);
		}
		b->need_configure = false;
	}
	sync_ok(b);
	return 0;
}

static int on_sync(struct weft_source *s, void *userdata)
{
	(void)s;
	return bgp_sync(userdata);
}

static int on_timer_sync(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_bgp *b = userdata;

	(void)s;
	(void)now_ns;
	return weft_source_defer_arm(b->sync_src);
}

static bool relevant_key(const char *key)
{
	static const char *const prefixes[] = {
		"/weft/v1/nodes/", "/weft/v1/bgppeers/", "/weft/v1/bgpconfigs/", "/weft/v1/ippools/",
		"/weft/v1/ipam/blocks/", "/weft/v1/ipam/affinities/",
	};

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (startswith(key, prefixes[i]))
			return true;
	return false;
}

static void on_watch_event(const struct weft_event *ev, void *userdata)
{
	struct weftd_bgp *b = userdata;

	if (relevant_key(ev->kv.key) && (weftd_watch_block_event(b->watch, ev) & WEFTD_BLOCK_MOVED)) {
		/* Something changed: a failing sync starts again from 1 s. */
		b->retry_ns = BGP_RETRY_MIN_NS;
		(void)weft_source_defer_arm(b->sync_src);
	}
}

/* A new watch after a dead one: resync everything. */
static void on_watch_reset(void *userdata)
{
	struct weftd_bgp *b = userdata;

	b->retry_ns = BGP_RETRY_MIN_NS;
	(void)weft_source_defer_arm(b->sync_src);
}

static int on_retry(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_bgp *b = userdata;

	(void)s;
	(void)now_ns;
	return weft_source_defer_arm(b->sync_src);
}

int weftd_bgp_start(struct weftd *d, struct weft_loop *loop, const char *bird, struct weftd_bgp **out)
{
	struct weftd_bgp *b = wmalloc(sizeof(*b));
	int r;

	memset(b, 0, sizeof(*b));
	b->d = d;
	b->loop = loop;
	b->bird = wstrdup(bird ? bird : "bird");
	b->conf = wasprintf("%s/bird.conf", d->run_dir);
	b->ctl = wasprintf("%s/bird.ctl", d->run_dir);
	b->pidfile = wasprintf("%s/bird.pid", d->run_dir);
	b->grfile = wasprintf("%s/bird.graceful", d->run_dir);
	b->backoff_ms = BIRD_BACKOFF_MIN_MS;
	b->retry_ns = BGP_RETRY_MIN_NS;
	metrics_declare(d->metrics);
	/* The last BIRD stopped for graceful restart: its peers keep our
	 * routes as stale and its kernel routes are there; recover them. */
	if (unlink(b->grfile) == 0)
		b->recover = true;
	bird_stop_stale(b);

	if ((r = weft_loop_add_defer(loop, on_sync, b, &b->sync_src)) < 0 ||
	    (r = weft_loop_add_timer(loop, BGP_RESYNC_NS, BGP_RESYNC_NS, on_timer_sync, b, &b->resync_timer)) < 0 ||
	    (r = weft_loop_add_timer(loop, BGP_RETRY_MIN_NS, 0, on_retry, b, &b->retry_timer)) < 0)
		goto fail;
	(void)weft_source_timer_stop(b->retry_timer);
	weft_source_set_description(b->sync_src, "bgp sync");
	/* The watch first, then the first sync: no change between the two is
	 * lost. */
	r = weftd_watch_open(d, loop, "bgp", on_watch_event, on_watch_reset, b, &b->watch);
	if (r < 0)
		goto fail;
	/* The first config is written (and BIRD started) right now, not on
	 * the first iteration: weftd logs a broken setup before it serves. */
	(void)bgp_sync(b);
	*out = b;
	return 0;
fail:
	weftd_bgp_stop(b);
	return r;
}

/* --- BIRD's state, for status reports ------------------------------------------ */

void weftd_bgp_set_state_fn(struct weftd_bgp *b, weftd_bgp_state_fn fn, void *userdata)
{
	if (!b)
		return;
	b->state_fn = fn;
	b->state_userdata = userdata;
}

int weftd_bgp_bird_state(struct weftd_bgp *b, int timeout_ms, struct weftd_bird_state *out)
{
	struct weftd_bird_state st = {0};
	struct weft_birdc *c = NULL;

	if (!b)
		return -EINVAL;
	st.running = b->bird_pid != 0;
	st.pid = b->bird_pid;
	st.restarts = b->restarts;
	st.restart_pending = b->restart_pending;
	st.have_config = b->have_config;
	if (b->problem)
		weft_strlcpy(st.config_error, b->problem, sizeof(st.config_error));
	/* The control socket answers only once BIRD has read its config; a
	 * BIRD that does not answer within timeout_ms counts as starting. */
	if (st.running && timeout_ms > 0 && weft_birdc_connect(b->ctl, timeout_ms, &c) == 0) {
		if (weft_birdc_show_protocols(c, &st.protos, &st.nprotos) >= 0)
			st.ctl_ok = true;
		weft_birdc_close(c);
	}
	*out = st;
	return 0;
}

void weftd_bird_state_clear(struct weftd_bird_state *s)
{
	if (!s)
		return;
	weft_bird_protos_free(s->protos, s->nprotos);
	s->protos = NULL;
	s->nprotos = 0;
}

void weftd_bgp_stop(struct weftd_bgp *b)
{
	if (!b)
		return;
	bird_stop(b);
	weft_source_free(b->restart_timer);
	weft_source_free(b->retry_timer);
	weft_source_free(b->resync_timer);
	weftd_watch_close(b->watch);
	weft_source_free(b->sync_src);
	free(b->bird);
	free(b->conf);
	free(b->ctl);
	free(b->pidfile);
	free(b->grfile);
	free(b->refused);
	free(b->refused_problem);
	free(b->problem);
	free(b);
}
