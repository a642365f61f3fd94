#include "lib/ipaddr.h"

#include <arpa/inet.h>

int weft_ip_parse(const char *s, struct weft_ip *out)
{
	struct weft_ip ip = {0};

	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &ip.v4) == 1)
		ip.family = AF_INET;
	else if (inet_pton(AF_INET6, s, &ip.v6) == 1)
		ip.family = AF_INET6;
	else
		return -EINVAL;
	*out = ip;
	return 0;
}

unsigned weft_ip_bits(const struct weft_ip *ip)
{
	return ip->family == AF_INET6 ? 128 : 32;
}

int weft_cidr_parse(const char *s, bool strict, struct weft_cidr *out)
{
	char buf[WEFT_CIDR_STRLEN];
	struct weft_cidr c = {0};
	const char *slash;
	int64_t plen;

	if (!s || !(slash = strchr(s, '/')) || (size_t)(slash - s) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, slash - s);
	buf[slash - s] = 0;
	if (weft_ip_parse(buf, &c.ip) < 0)
		return -EINVAL;
	if (weft_parse_int64(slash + 1, 0, weft_ip_bits(&c.ip), &plen) < 0)
		return -EINVAL;
	/* Reject "+8", " 8", "08"-style prefix lengths: strtoll would take them. */
	if (slash[1] < '0' || slash[1] > '9' || (slash[1] == '0' && slash[2]))
		return -EINVAL;
	c.prefixlen = (unsigned)plen;
	if (strict) {
		struct weft_cidr m = c;
		weft_cidr_mask(&m);
		if (!weft_ip_eq(&m.ip, &c.ip))
			return -EINVAL;
	}
	*out = c;
	return 0;
}

int weft_cidr_parse_host(const char *s, struct weft_cidr *out)
{
	struct weft_ip ip;

	if (s && strchr(s, '/'))
		return weft_cidr_parse(s, false, out);
	if (weft_ip_parse(s, &ip) < 0)
		return -EINVAL;
	out->ip = ip;
	out->prefixlen = weft_ip_bits(&ip);
	return 0;
}

const char *weft_ip_str(const struct weft_ip *ip, char *buf, size_t size)
{
	if (!inet_ntop(ip->family == AF_INET6 ? AF_INET6 : AF_INET, ip->bytes, buf, size))
		weft_strlcpy(buf, "?", size);
	return buf;
}

const char *weft_cidr_str(const struct weft_cidr *c, char *buf, size_t size)
{
	char ip[WEFT_IP_STRLEN];
	snprintf(buf, size, "%s/%u", weft_ip_str(&c->ip, ip, sizeof(ip)), c->prefixlen);
	return buf;
}

static size_t ip_len(const struct weft_ip *ip)
{
	return ip->family == AF_INET6 ? 16 : 4;
}

bool weft_ip_eq(const struct weft_ip *a, const struct weft_ip *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, ip_len(a)) == 0;
}

int weft_ip_cmp(const struct weft_ip *a, const struct weft_ip *b)
{
	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	int r = memcmp(a->bytes, b->bytes, ip_len(a));
	return r < 0 ? -1 : r > 0;
}

void weft_cidr_mask(struct weft_cidr *c)
{
	size_t n = ip_len(&c->ip);
	for (size_t i = 0; i < n; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= c->prefixlen)
			c->ip.bytes[i] = 0;
		else if (bit + 8 > c->prefixlen)
			c->ip.bytes[i] &= (uint8_t)(0xff << (8 - (c->prefixlen - bit)));
	}
}

bool weft_cidr_contains(const struct weft_cidr *c, const struct weft_ip *ip)
{
	struct weft_cidr a = *c, b = {.ip = *ip, .prefixlen = c->prefixlen};

	if (c->ip.family != ip->family)
		return false;
	weft_cidr_mask(&a);
	weft_cidr_mask(&b);
	return weft_ip_eq(&a.ip, &b.ip);
}

bool weft_cidr_covers(const struct weft_cidr *outer, const struct weft_cidr *inner)
{
	return outer->ip.family == inner->ip.family && outer->prefixlen <= inner->prefixlen &&
	       weft_cidr_contains(outer, &inner->ip);
}

bool weft_cidr_overlaps(const struct weft_cidr *a, const struct weft_cidr *b)
{
	return weft_cidr_covers(a, b) || weft_cidr_covers(b, a);
}

int weft_ip_add(const struct weft_ip *ip, int64_t n, struct weft_ip *out)
{
	struct weft_ip r = *ip;
	size_t len = ip_len(ip);
	uint64_t mag = n < 0 ? (uint64_t)(-(n + 1)) + 1 : (uint64_t)n;
	unsigned carry = 0;

	for (size_t i = len; i-- > 0;) {
		unsigned d = (unsigned)(mag & 0xff);
		mag >>= 8;
		int v;
		if (n >= 0) {
			v = r.bytes[i] + d + carry;
			carry = v > 0xff;
		} else {
			v = r.bytes[i] - (int)d - (int)carry;
			carry = v < 0;
		}
		r.bytes[i] = (uint8_t)v;
	}
	if (carry || mag)
		return -ERANGE;
	*out = r;
	return 0;
}

void weft_cidr_last(const struct weft_cidr *c, struct weft_ip *out)
{
	struct weft_cidr m = *c;
	size_t n = ip_len(&c->ip);

	weft_cidr_mask(&m);
	for (size_t i = 0; i < n; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= c->prefixlen)
			m.ip.bytes[i] = 0xff;
		else if (bit + 8 > c->prefixlen)
			m.ip.bytes[i] |= (uint8_t)(0xff >> (c->prefixlen - bit));
	}
	*out = m.ip;
}
