/* pod-burst.c - create pods through a CNI plugin, as a runtime would, and
 * optionally probe every new pod from another namespace until it answers.
 *
 *   pod-burst -n N -p PLUGIN -c CONFFILE -A NODE_NETNS -N POD_NETNS_FMT
 *             [-S SRC_NETNS] [-s] [-j PARALLEL] [-P CNI_PATH] [-x ID_PREFIX]
 *             [-I INTERVAL_US] [-T TIMEOUT_S]
 *
 * Runs in any namespace (the root one, typically): every plugin call is a
 * child that enters NODE_NETNS (a path such as /run/netns/X) before it
 * execs the plugin, with CNI_NETNS = POD_NETNS_FMT with %d replaced by the
 * pod's index (0..N-1) and CNI_CONTAINERID = ID_PREFIX<index>; the network
 * configuration on stdin, the result read from stdout.
 *
 * With -S, an ICMP raw socket is opened in SRC_NETNS (a pod on another
 * node) and each pod's address (ips[0] of its ADD result) is sent echo
 * requests every INTERVAL_US (default 1000 with -s, 10000 without) until
 * it answers or TIMEOUT_S (default 20) pass. No packet is ever sent from
 * the namespace pod-burst itself runs in.
 *
 *  -s  sequential: ADD one pod, probe it until it answers, then the next
 *      (convergence per pod); default: keep PARALLEL (default 1) ADDs in
 *      flight and probe every pod whose ADD returned, all at once (time
 *      to full reachability of a batch).
 *
 * Output, one line per pod, microseconds from pod-burst's start
 * (CLOCK_MONOTONIC; reach is -1 without -S or on timeout):
 *   pod INDEX ADDRESS ADD_START ADD_END REACH
 * then "done N ADD_WALL REACH_WALL" (REACH_WALL -1 if a pod never answered).
 * Exit 0; 1 when an ADD failed (its output on stderr) or a pod never
 * answered.
 */
#include "lib/json.h"
#include "lib/util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

struct opts {
	const char *plugin, *conf_path, *node_ns, *netns_fmt, *src_ns, *cni_path, *id_prefix;
	int64_t n, parallel, interval_ns, timeout_ns;
	bool sequential;
};

/* One pod: its ADD call while it runs, then its probe state. */
struct pod {
	pid_t pid;             /* the running plugin, 0 when none */
	int out_fd;            /* its stdout, -1 when closed */
	struct weft_buf out;   /* what it wrote */
	int64_t add_start, add_end, reach, last_sent;
	struct in_addr addr;
	bool probing;          /* ADD done, not answered yet */
};

static int64_t g_t0;

static int64_t rel_us(int64_t ns)
{
	return ns < 0 ? -1 : (ns - g_t0) / 1000;
}

/* Spawn the plugin for pod i in the node namespace. Returns 0 or -errno. */
static int spawn_add(const struct opts *o, int node_fd, int64_t i, struct pod *p)
{
	char env_id[300], env_ns[512], env_path[1024], env_args[400];
	int outp[2];
	pid_t pid;

	snprintf(env_id, sizeof(env_id), "CNI_CONTAINERID=%s%" PRId64, o->id_prefix, i);
	snprintf(env_ns, sizeof(env_ns), "CNI_NETNS=");
	/* The format is the user's own command-line argument. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(env_ns + strlen(env_ns), sizeof(env_ns) - strlen(env_ns), o->netns_fmt, (int)i);
#pragma GCC diagnostic pop
	snprintf(env_path, sizeof(env_path), "CNI_PATH=%s", o->cni_path);
	snprintf(env_args, sizeof(env_args), "CNI_ARGS=K8S_POD_NAMESPACE=bench;K8S_POD_NAME=%s%" PRId64,
		 o->id_prefix, i);
	char *envp[] = {"CNI_COMMAND=ADD", env_id, env_ns, "CNI_IFNAME=eth0", env_path, env_args,
			"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	char *argv[] = {(char *)o->plugin, NULL};

	if (pipe2(outp, O_CLOEXEC) < 0)
		return -errno;
	p->add_start = weft_now_ns();
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(outp[0]);
		close(outp[1]);
		return r;
	}
	if (pid == 0) {
		/* The child: into the node's namespace, as a runtime calls
		 * the plugin from the node. */
		int in = open(o->conf_path, O_RDONLY);
		if (in < 0 || setns(node_fd, CLONE_NEWNET) < 0 || dup2(in, 0) < 0 || dup2(outp[1], 1) < 0)
			_exit(127);
		execve(o->plugin, argv, envp);
		_exit(127);
	}
	close(outp[1]);
	p->pid = pid;
	p->out_fd = outp[0];
	return 0;
}

/* Read what is there from pod's plugin; on EOF reap it and parse the
 * address. Returns 1 when the ADD is complete, 0 when more is to come,
 * -1 after a message on stderr. */
static int read_add(int64_t i, struct pod *p)
{
	char buf[4096];
	ssize_t n = read(p->out_fd, buf, sizeof(buf));
	int status;

	if (n > 0) {
		weft_buf_append(&p->out, buf, (size_t)n);
		return 0;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	close(p->out_fd);
	p->out_fd = -1;
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
	p->add_end = weft_now_ns();
	weft_buf_append(&p->out, "", 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "pod-burst: ADD of pod %" PRId64 " failed (status %d): %s\n", i,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, p->out.data ? p->out.data : "");
		return -1;
	}
	_cleanup_json_ cJSON *res = NULL;
	cJSON *ips, *first;
	const char *addr;
	char ip[INET_ADDRSTRLEN + 4];
	if (weft_json_parse(p->out.data, p->out.len, &res) < 0 || weft_json_get_array(res, "ips", &ips) < 0 ||
	    !(first = cJSON_GetArrayItem(ips, 0)) || weft_json_get_string(first, "address", &addr) < 0 ||
	    weft_strlcpy(ip, addr, sizeof(ip)) < 0 || !strchr(ip, '/')) {
		fprintf(stderr, "pod-burst: pod %" PRId64 ": no IPv4 address in the result: %s\n", i, p->out.data);
		return -1;
	}
	*strchr(ip, '/') = '\0';
	if (inet_pton(AF_INET, ip, &p->addr) != 1) {
		fprintf(stderr, "pod-burst: pod %" PRId64 ": bad address %s\n", i, ip);
		return -1;
	}
	weft_buf_free(&p->out);
	return 1;
}

/* The ICMP raw socket, created in the namespace at path (then back). */
static int icmp_socket_in(const char *path)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int target = open(path, O_RDONLY | O_CLOEXEC);
	int fd = -1, r;

	if (self < 0 || target < 0) {
		fprintf(stderr, "pod-burst: open %s: %s\n", target < 0 ? path : "/proc/self/ns/net", strerror(errno));
		goto out;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		fprintf(stderr, "pod-burst: setns %s: %s\n", path, strerror(errno));
		goto out;
	}
	fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
	r = errno;
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Staying in the pod's namespace would spawn plugins from
		 * the wrong place: give up. */
		perror("pod-burst: setns back");
		exit(1);
	}
	if (fd < 0)
		fprintf(stderr, "pod-burst: ICMP socket in %s: %s\n", path, strerror(r));
	else
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){1 << 20}, sizeof(int));
out:
	if (self >= 0)
		close(self);
	if (target >= 0)
		close(target);
	return fd;
}

static uint16_t icmp_sum(const void *data, size_t len)
{
	const uint8_t *b = data;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static void send_echo(int fd, uint16_t id, int64_t i, struct pod *p)
{
	struct icmphdr h = {.type = ICMP_ECHO};
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = p->addr};

	h.un.echo.id = htons(id);
	h.un.echo.sequence = htons((uint16_t)i);
	h.checksum = icmp_sum(&h, sizeof(h));
	/* A full socket buffer or an unreachable network just means: try
	 * again at the next interval. */
	(void)sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&to, sizeof(to));
	p->last_sent = weft_now_ns();
}

/* Take every echo reply queued on fd; mark the pods that answered.
 * Returns how many newly answered. */
static int64_t take_replies(int fd, uint16_t id, struct pod *pods, int64_t n)
{
	uint8_t buf[2048];
	int64_t got = 0;

	for (;;) {
		ssize_t len = recv(fd, buf, sizeof(buf), 0);
		if (len < 0)
			return got;
		if ((size_t)len < sizeof(struct iphdr))
			continue;
		const struct iphdr *ip = (const void *)buf;
		size_t hl = (size_t)ip->ihl * 4;
		if ((size_t)len < hl + sizeof(struct icmphdr))
			continue;
		struct icmphdr h;
		memcpy(&h, buf + hl, sizeof(h));
		if (h.type != ICMP_ECHOREPLY || ntohs(h.un.echo.id) != id)
			continue;
		/* The sequence number is the pod index modulo 2^16: find the
		 * probing pod with that index and that source address. */
		for (int64_t i = ntohs(h.un.echo.sequence); i < n; i += 65536) {
			struct pod *p = &pods[i];
			if (p->probing && p->addr.s_addr == ip->saddr) {
				p->reach = weft_now_ns();
				p->probing = false;
				got++;
				break;
			}
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: pod-burst -n N -p PLUGIN -c CONF -A NODE_NETNS -N POD_NETNS_FMT [-S SRC_NETNS] [-s]\n"
			"                 [-j PARALLEL] [-P CNI_PATH] [-x ID_PREFIX] [-I INTERVAL_US] [-T TIMEOUT_S]\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.cni_path = "/usr/lib/cni", .id_prefix = "podburst", .n = 0, .parallel = 1,
			 .interval_ns = -1, .timeout_ns = 20 * 1000000000LL};
	int64_t v;
	int c;

	weft_json_init();
	while ((c = getopt(argc, argv, "n:p:c:A:N:S:sj:P:x:I:T:h")) != -1) {
		switch (c) {
		case 'n': o.n = weft_parse_int64(optarg, 1, 100000, &v) < 0 ? -1 : v; break;
		case 'j': o.parallel = weft_parse_int64(optarg, 1, 64, &v) < 0 ? -1 : v; break;
		case 'I': o.interval_ns = weft_parse_int64(optarg, 100, 10000000, &v) < 0 ? -2 : v * 1000; break;
		case 'T': o.timeout_ns = weft_parse_int64(optarg, 1, 3600, &v) < 0 ? -1 : v * 1000000000LL; break;
		case 'p': o.plugin = optarg; break;
		case 'c': o.conf_path = optarg; break;
		case 'A': o.node_ns = optarg; break;
		case 'N': o.netns_fmt = optarg; break;
		case 'S': o.src_ns = optarg; break;
		case 's': o.sequential = true; break;
		case 'P': o.cni_path = optarg; break;
		case 'x': o.id_prefix = optarg; break;
		default: usage(); return 2;
		}
	}
	if (o.n < 1 || o.parallel < 1 || o.interval_ns == -2 || o.timeout_ns < 0 || !o.plugin || !o.conf_path ||
	    !o.node_ns || !o.netns_fmt || !strstr(o.netns_fmt, "%d") || (o.sequential && !o.src_ns)) {
		usage();
		return 2;
	}
	if (o.interval_ns < 0)
		o.interval_ns = o.sequential ? 1000000 : 10000000;
	if (o.sequential)
		o.parallel = 1;

	int node_fd = open(o.node_ns, O_RDONLY | O_CLOEXEC);
	if (node_fd < 0) {
		fprintf(stderr, "pod-burst: %s: %s\n", o.node_ns, strerror(errno));
		return 1;
	}
	int icmp = -1;
	if (o.src_ns && (icmp = icmp_socket_in(o.src_ns)) < 0)
		return 1;
	/* A plugin that exits before reading its stdin must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	uint16_t id = (uint16_t)getpid();
	struct pod *pods = wcalloc((size_t)o.n, sizeof(*pods));
	struct pollfd *pfd = wcalloc((size_t)o.parallel + 1, sizeof(*pfd));
	int64_t *slot_pod = wcalloc((size_t)o.parallel, sizeof(*slot_pod));
	int64_t next = 0, running = 0, probing = 0, last_add_end = 0;
	int64_t deadline = 0;
	int ret = 0;

	for (int64_t i = 0; i < o.n; i++) {
		pods[i].out_fd = -1;
		pods[i].reach = -1;
	}
	for (int64_t k = 0; k < o.parallel; k++)
		slot_pod[k] = -1;
	g_t0 = weft_now_ns();
	for (;;) {
		/* Start ADDs while there is room (sequentially: only when the
		 * previous pod answered). */
		while (next < o.n && running < o.parallel && (!o.sequential || probing == 0)) {
			int64_t k = 0;
			while (slot_pod[k] >= 0)
				k++;
			int r = spawn_add(&o, node_fd, next, &pods[next]);
			if (r < 0) {
				fprintf(stderr, "pod-burst: spawn %s: %s\n", o.plugin, strerror(-r));
				ret = 1;
				goto out;
			}
			slot_pod[k] = next++;
			running++;
		}
		if (running == 0 && probing == 0 && next >= o.n)
			break;

		/* Probes due now, and when the next one is. */
		int64_t now = weft_now_ns(), wake = -1;
		if (probing > 0) {
			if (now > deadline && running == 0) {
				fprintf(stderr, "pod-burst: %" PRId64 " pod(s) did not answer within %" PRId64 " s\n",
					probing, o.timeout_ns / 1000000000);
				ret = 1;
				break;
			}
			for (int64_t i = 0; i < next; i++) {
				struct pod *p = &pods[i];
				if (!p->probing)
					continue;
				if (now - p->last_sent >= o.interval_ns)
					send_echo(icmp, id, i, p);
				int64_t due = p->last_sent + o.interval_ns;
				if (wake < 0 || due < wake)
					wake = due;
			}
		}

		nfds_t nf = 0;
		for (int64_t k = 0; k < o.parallel; k++) {
			if (slot_pod[k] < 0)
				continue;
			pfd[nf].fd = pods[slot_pod[k]].out_fd;
			pfd[nf].events = POLLIN;
			pfd[nf].revents = 0;
			nf++;
		}
		if (icmp >= 0) {
			pfd[nf].fd = icmp;
			pfd[nf].events = POLLIN;
			pfd[nf].revents = 0;
			nf++;
		}
		struct timespec ts, *tsp = NULL;
		if (wake >= 0) {
			int64_t d = wake - weft_now_ns();
			if (d < 0)
				d = 0;
			ts.tv_sec = d / 1000000000;
			ts.tv_nsec = d % 1000000000;
			tsp = &ts;
		}
		if (ppoll(pfd, nf, tsp, NULL) < 0 && errno != EINTR) {
			perror("pod-burst: ppoll");
			ret = 1;
			goto out;
		}
		if (icmp >= 0) {
			probing -= take_replies(icmp, id, pods, o.n);
		}
		for (int64_t k = 0; k < o.parallel; k++) {
			int64_t i = slot_pod[k];
			if (i < 0)
				continue;
			struct pollfd *f = NULL;
			for (nfds_t m = 0; m < nf; m++)
				if (pfd[m].fd == pods[i].out_fd)
					f = &pfd[m];
			if (!f || !(f->revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int r = read_add(i, &pods[i]);
			if (r == 0)
				continue;
			slot_pod[k] = -1;
			running--;
			if (r < 0) {
				ret = 1;
				goto out;
			}
			if (pods[i].add_end > last_add_end)
				last_add_end = pods[i].add_end;
			if (icmp >= 0) {
				pods[i].probing = true;
				pods[i].last_sent = 0;
				probing++;
				/* Send at once: the interval clock starts here. */
				send_echo(icmp, id, i, &pods[i]);
				deadline = weft_now_ns() + o.timeout_ns;
			}
		}
	}

	int64_t reach_wall = 0;
	for (int64_t i = 0; i < o.n; i++) {
		char ip[INET_ADDRSTRLEN];
		const struct pod *p = &pods[i];
		inet_ntop(AF_INET, &p->addr, ip, sizeof(ip));
		printf("pod %" PRId64 " %s %" PRId64 " %" PRId64 " %" PRId64 "\n", i, ip, rel_us(p->add_start),
		       rel_us(p->add_end), rel_us(p->reach));
		if (p->reach < 0)
			reach_wall = -1;
		else if (reach_wall >= 0 && rel_us(p->reach) > reach_wall)
			reach_wall = rel_us(p->reach);
	}
	if (icmp < 0)
		reach_wall = -1;
	printf("done %" PRId64 " %" PRId64 " %" PRId64 "\n", o.n, rel_us(last_add_end), reach_wall);
out:
	/* Plugins still running after a failure: reap them (they finish on
	 * their own; killing one mid-ADD would leave half a pod). */
	for (int64_t k = 0; k < o.parallel; k++)
		if (slot_pod[k] >= 0 && pods[slot_pod[k]].pid > 0)
			while (waitpid(pods[slot_pod[k]].pid, NULL, 0) < 0 && errno == EINTR)
				;
	for (int64_t i = 0; i < o.n; i++)
		weft_buf_free(&pods[i].out);
	free(pods);
	free(pfd);
	free(slot_pod);
	if (icmp >= 0)
		close(icmp);
	close(node_fd);
	return ret;
}
