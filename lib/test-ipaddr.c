#include "lib/ipaddr.h"
#include "lib/test.h"

#include <sys/socket.h>

static void test_parse(void)
{
	struct weft_cidr c;
	char buf[WEFT_CIDR_STRLEN];

	CHECK_EQ_INT(weft_cidr_parse("10.65.0.0/16", true, &c), 0);
	CHECK_STREQ(weft_cidr_str(&c, buf, sizeof(buf)), "10.65.0.0/16");
	CHECK_EQ_INT(weft_cidr_parse("10.65.0.0/33", true, &c), -EINVAL);
	CHECK_EQ_INT(weft_cidr_parse("10.65.0.1/16", true, &c), -EINVAL);
	CHECK_EQ_INT(weft_cidr_parse("10.65.0.1/16", false, &c), 0);
	CHECK_EQ_INT(weft_cidr_parse("10.65.0.0/+16", false, &c), -EINVAL);
	CHECK_EQ_INT(weft_cidr_parse("10.65.0.0/016", false, &c), -EINVAL);
	CHECK_EQ_INT(weft_cidr_parse("10.65.0.0", false, &c), -EINVAL);
	CHECK_EQ_INT(weft_cidr_parse("fd00::/64", true, &c), 0);
	CHECK_EQ_INT(c.ip.family, AF_INET6);
	CHECK_EQ_INT(weft_cidr_parse("fd00::/129", true, &c), -EINVAL);
	CHECK_EQ_INT(weft_cidr_parse_host("10.0.0.1", &c), 0);
	CHECK_EQ_INT(c.prefixlen, 32);
	CHECK_EQ_INT(weft_cidr_parse_host("bogus", &c), -EINVAL);
}

static void test_contains(void)
{
	struct weft_cidr a, b;
	struct weft_ip ip, last;
	char buf[WEFT_IP_STRLEN];

	weft_cidr_parse("10.65.0.0/16", true, &a);
	weft_cidr_parse("10.65.4.0/26", true, &b);
	CHECK(weft_cidr_covers(&a, &b));
	CHECK(!weft_cidr_covers(&b, &a));
	CHECK(weft_cidr_overlaps(&a, &b));
	weft_ip_parse("10.65.4.63", &ip);
	CHECK(weft_cidr_contains(&b, &ip));
	weft_ip_parse("10.65.4.64", &ip);
	CHECK(!weft_cidr_contains(&b, &ip));
	weft_cidr_last(&b, &last);
	CHECK_STREQ(weft_ip_str(&last, buf, sizeof(buf)), "10.65.4.63");
	CHECK_EQ_INT(weft_ip_add(&last, 1, &ip), 0);
	CHECK_STREQ(weft_ip_str(&ip, buf, sizeof(buf)), "10.65.4.64");
	CHECK_EQ_INT(weft_ip_add(&ip, -65, &ip), 0);
	CHECK_STREQ(weft_ip_str(&ip, buf, sizeof(buf)), "10.65.3.255");
	weft_ip_parse("255.255.255.255", &ip);
	CHECK_EQ_INT(weft_ip_add(&ip, 1, &ip), -ERANGE);
	weft_cidr_parse("10.0.0.0/12", false, &a);
	weft_cidr_last(&a, &last);
	CHECK_STREQ(weft_ip_str(&last, buf, sizeof(buf)), "10.15.255.255");
}

TEST_MAIN(TEST(test_parse), TEST(test_contains))
