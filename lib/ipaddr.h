/* ipaddr.h - IPv4/IPv6 addresses and CIDR prefixes as plain value types. */
#ifndef WEFT_IPADDR_H
#define WEFT_IPADDR_H

#include "lib/util.h"

#include <netinet/in.h>

struct weft_ip {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
		uint8_t bytes[16];
	};
};

struct weft_cidr {
	struct weft_ip ip;
	unsigned prefixlen;
};

/* Longest text form of an address / a CIDR, with the NUL. */
#define WEFT_IP_STRLEN 46
#define WEFT_CIDR_STRLEN 50

/* Parse "10.0.0.1" or "fd00::1". Returns 0 or -EINVAL. */
int weft_ip_parse(const char *s, struct weft_ip *out);
/* Parse "10.0.0.0/24". With strict, host bits must be zero (-EINVAL
 * otherwise); without, they are kept. A bare address is not a CIDR. */
int weft_cidr_parse(const char *s, bool strict, struct weft_cidr *out);
/* Parse an address or a CIDR; a bare address becomes /32 or /128. */
int weft_cidr_parse_host(const char *s, struct weft_cidr *out);

/* Format into buf (at least WEFT_IP_STRLEN / WEFT_CIDR_STRLEN). Return buf. */
const char *weft_ip_str(const struct weft_ip *ip, char *buf, size_t size);
const char *weft_cidr_str(const struct weft_cidr *c, char *buf, size_t size);

unsigned weft_ip_bits(const struct weft_ip *ip); /* 32 or 128 */
bool weft_ip_eq(const struct weft_ip *a, const struct weft_ip *b);
/* -1, 0, 1 comparing as unsigned big-endian numbers (IPv4 before IPv6). */
int weft_ip_cmp(const struct weft_ip *a, const struct weft_ip *b);
/* Zero the host bits of c. */
void weft_cidr_mask(struct weft_cidr *c);
bool weft_cidr_contains(const struct weft_cidr *c, const struct weft_ip *ip);
/* Does outer contain all of inner? */
bool weft_cidr_covers(const struct weft_cidr *outer, const struct weft_cidr *inner);
bool weft_cidr_overlaps(const struct weft_cidr *a, const struct weft_cidr *b);
/* ip + n (n may be negative); returns -ERANGE on wrap-around. */
int weft_ip_add(const struct weft_ip *ip, int64_t n, struct weft_ip *out);
/* The last address of c (broadcast for IPv4). */
void weft_cidr_last(const struct weft_cidr *c, struct weft_ip *out);

#endif
