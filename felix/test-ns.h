/* test-ns.h - helpers shared by the dataplane tests (test code only):
 * network namespaces held by a child process, shell commands run and
 * captured, and address literals. Every test using them first moves itself
 * into a private network namespace; nothing here touches the root one. */
#ifndef WEFT_TEST_NS_H
#define WEFT_TEST_NS_H

#include "lib/ipaddr.h"
#include "lib/util.h" /* CHECK_HAS needs lib/test.h in the test itself */

#include <sys/types.h>

struct ns {
	pid_t pid;
	int fd;
	char path[64];
};

/* A new network namespace held by a forked child (killed with the test).
 * Returns 0 or a negative errno. */
int ns_new(struct ns *ns);
void ns_free(struct ns *ns);
/* Run a shell command; returns its exit status (printed when not 0). */
int sh(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Does the shell command fail? (quietly) */
bool fails(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* A shell command's standard output (malloc'ed, never NULL). */
char *out(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* The root namespace while a test runs in a private one. */
struct ns_guard {
	int root_fd;
	char *snapshot; /* links, routes of every table, nftables ruleset */
};
/* Record the root namespace's state and move the process into a fresh
 * network namespace, whose fd goes to *home_fd. Returns 0, or 77 (the
 * skip code) after printing why: not root, or no unshare. */
int ns_isolate(struct ns_guard *g, int *home_fd);
/* Go back to the root namespace and compare its state with the record:
 * returns 0 when unchanged, 1 (and prints both) otherwise. */
int ns_restore_check(struct ns_guard *g);
/* A TCP connection from namespace src_ns (bound to address src when not
 * NULL) to dst:port (IPv4 or IPv6), served by a listener opened in dst_ns,
 * with a message across. The calling thread returns to home_fd after
 * making each socket. false when it does not get through within
 * timeout_ms (a dropped SYN) or is refused. */
bool ns_tcp(int home_fd, int src_ns, const char *src, int dst_ns, const char *dst, int port, int timeout_ms);
/* Address literals that the test knows to be valid. */
struct weft_ip ip(const char *s);
struct weft_cidr cidr(const char *s);

#define CHECK_HAS(s, sub)                                                                     \
	do {                                                                                  \
		const char *_s = (s);                                                         \
		CHECK(strstr(_s, (sub)) != NULL);                                             \
		if (!strstr(_s, (sub)))                                                       \
			fprintf(stderr, "  expected \"%s\" in:\n%s\n", (sub), _s);             \
	} while (0)
#define CHECK_HASNT(s, sub)                                                                   \
	do {                                                                                  \
		const char *_s = (s);                                                         \
		CHECK(strstr(_s, (sub)) == NULL);                                             \
		if (strstr(_s, (sub)))                                                        \
			fprintf(stderr, "  unexpected \"%s\" in:\n%s\n", (sub), _s);           \
	} while (0)

#endif
