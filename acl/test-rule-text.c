/* test-rule-text.c - the classic rule syntax: parse, format, round trip,
 * errors. */
#include "acl/rule-text.h"

#include "lib/json.h"
#include "lib/test.h"

/* Parse line (split into words) and return the compact JSON, or the error
 * message prefixed with "ERR ". */
static char *parse(const char *line, unsigned flags)
{
	cJSON *rule = NULL;
	char *err = NULL, *out;

	if (weft_rule_text_parse_line(line, flags, &rule, &err) < 0) {
		out = wasprintf("ERR %s", err ? err : "(no message)");
		free(err);
		return out;
	}
	out = cJSON_PrintUnformatted(rule);
	cJSON_Delete(rule);
	return out;
}

#define CHECK_PARSE(line, json)                                  \
	do {                                                     \
		char *_got = parse(line, 0);                     \
		CHECK_STREQ(_got, json);                         \
		free(_got);                                      \
	} while (0)

#define CHECK_PARSE_POLICY(line, json)                           \
	do {                                                     \
		char *_got = parse(line, WEFT_RULE_TEXT_POLICY); \
		CHECK_STREQ(_got, json);                         \
		free(_got);                                      \
	} while (0)

/* Parse, format, compare the line with want_line (NULL: the input), then
 * parse the formatted line and compare the rules. */
static void roundtrip(const char *line, const char *want_line)
{
	cJSON *a = NULL, *b = NULL;
	char *err = NULL, *text = NULL;

	if (weft_rule_text_parse_line(line, WEFT_RULE_TEXT_POLICY, &a, &err) < 0) {
		fprintf(stderr, "parse %s: %s\n", line, err);
		CHECK(false);
		free(err);
		return;
	}
	CHECK(weft_rule_text_format(a, &text) == 0);
	CHECK_STREQ(text, want_line ? want_line : line);
	CHECK(weft_rule_text_parse_line(text, WEFT_RULE_TEXT_POLICY, &b, &err) == 0);
	CHECK(b && cJSON_Compare(a, b, true));
	free(err);
	free(text);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static void test_classic(void)
{
	CHECK_PARSE("allow from tag WEB", "{\"action\":\"allow\",\"source\":{\"tag\":\"WEB\"}}");
	CHECK_PARSE("allow tcp to ports 80,443",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"destination\":{\"ports\":[80,443]}}");
	CHECK_PARSE("allow tcp from tag WEB to ports 5432",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"tag\":\"WEB\"},"
		    "\"destination\":{\"ports\":[5432]}}");
	CHECK_PARSE("allow", "{\"action\":\"allow\"}");
	CHECK_PARSE("DENY", "{\"action\":\"deny\"}");
	CHECK_PARSE("log udp", "{\"action\":\"log\",\"protocol\":\"udp\"}");
	/* Classic order: ports, tag, then a bare CIDR. */
	CHECK_PARSE("allow udp from ports 53 tag DNS 10.0.0.0/8 to ports 1024:65535",
		    "{\"action\":\"allow\",\"protocol\":\"udp\",\"source\":{\"tag\":\"DNS\",\"nets\":[\"10.0.0.0/8\"],"
		    "\"ports\":[53]},\"destination\":{\"ports\":[\"1024:65535\"]}}");
	CHECK_PARSE("allow tcp to ports 80,443,8000:8080,22:22",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"destination\":{\"ports\":[80,443,\"8000:8080\",22]}}");
	CHECK_PARSE("allow icmp type 8 code 0 from cidr 10.0.0.1",
		    "{\"action\":\"allow\",\"protocol\":\"icmp\",\"icmp\":{\"type\":8,\"code\":0},"
		    "\"source\":{\"nets\":[\"10.0.0.1/32\"]}}");
	CHECK_PARSE("deny icmpv6 type 128", "{\"action\":\"deny\",\"protocol\":\"icmpv6\",\"icmp\":{\"type\":128}}");
	CHECK_PARSE("allow to net fd00::/48,10.1.0.0/16",
		    "{\"action\":\"allow\",\"destination\":{\"nets\":[\"fd00::/48\",\"10.1.0.0/16\"]}}");
	CHECK_PARSE("allow 47", "{\"action\":\"allow\",\"protocol\":47}");
	CHECK_PARSE("allow gre", "{\"action\":\"allow\",\"protocol\":47}");
	CHECK_PARSE("allow ipv6 tcp", "{\"action\":\"allow\",\"protocol\":\"tcp\",\"ipVersion\":6}");
	/* from and to in either order; an empty from is no condition. */
	CHECK_PARSE("allow tcp to ports 80 from tag A",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"tag\":\"A\"},"
		    "\"destination\":{\"ports\":[80]}}");
	CHECK_PARSE("allow from", "{\"action\":\"allow\"}");
	CHECK_PARSE("Allow TCP From Tag WEB", "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"tag\":\"WEB\"}}");
}

static void test_negations(void)
{
	CHECK_PARSE("allow tcp from not tag WEB to not ports 22",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"notTag\":\"WEB\"},"
		    "\"destination\":{\"notPorts\":[22]}}");
	CHECK_PARSE("allow tcp from !tag WEB ! cidr 10.0.0.0/8 to !ports 22",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"notTag\":\"WEB\","
		    "\"notNets\":[\"10.0.0.0/8\"]},\"destination\":{\"notPorts\":[22]}}");
	CHECK_PARSE("allow from not 10.0.0.0/8", "{\"action\":\"allow\",\"source\":{\"notNets\":[\"10.0.0.0/8\"]}}");
	CHECK_PARSE("allow to !10.0.0.0/8,10.1.0.0/16 fd00::/8",
		    "{\"action\":\"allow\",\"destination\":{\"nets\":[\"fd00::/8\"],"
		    "\"notNets\":[\"10.0.0.0/8\",\"10.1.0.0/16\"]}}");
	CHECK_PARSE("deny not udp", "{\"action\":\"deny\",\"notProtocol\":\"udp\"}");
	CHECK_PARSE("deny !tcp", "{\"action\":\"deny\",\"notProtocol\":\"tcp\"}");
	CHECK_PARSE("allow icmp not type 8 code 1",
		    "{\"action\":\"allow\",\"protocol\":\"icmp\",\"notICMP\":{\"type\":8,\"code\":1}}");
	CHECK_PARSE("allow icmp type 0 not type 8",
		    "{\"action\":\"allow\",\"protocol\":\"icmp\",\"icmp\":{\"type\":0},\"notICMP\":{\"type\":8}}");
	CHECK_PARSE("allow tcp from tag A not tag B",
		    "{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"tag\":\"A\",\"notTag\":\"B\"}}");
	CHECK_PARSE_POLICY("pass to selector \"role == 'db'\" not selector has(x)",
			   "{\"action\":\"pass\",\"destination\":{\"selector\":\"role == 'db'\",\"notSelector\":\"has(x)\"}}");
}

static void test_errors(void)
{
	CHECK_PARSE("", "ERR empty rule: expected allow, deny, log or pass");
	CHECK_PARSE("permit", "ERR word 1 \"permit\": expected allow, deny, log or pass");
	CHECK_PARSE("allow tcp fron tag WEB",
		    "ERR word 3 \"fron\": expected ipv4, ipv6, type, not, from, to or end of rule");
	CHECK_PARSE("allow tcp from tga WEB",
		    "ERR word 4 \"tga\": expected ports, tag, cidr, selector, not, to or end of rule");
	CHECK_PARSE("allow tcp from tag A tag B",
		    "ERR word 6 \"tag\": tag given twice after from");
	CHECK_PARSE("allow tcp to ports", "ERR word 4 \"ports\": missing value (a port list like 80,443,8000:8080)");
	CHECK_PARSE("allow tcp to ports 80,99999",
		    "ERR word 5 \"80,99999\": destination.ports[1]: \"99999\" is not a port (0..65535) or a port "
		    "range (like \"8000:8080\")");
	CHECK_PARSE("allow tcp to ports 80,,443", "ERR word 5 \"80,,443\": empty port in the list");
	CHECK_PARSE("allow tcp to ports 90:80",
		    "ERR word 5 \"90:80\": destination.ports[0]: \"90:80\" is not a port range: 90 is above 80");
	CHECK_PARSE("allow to ports 80",
		    "ERR word 4 \"80\": destination.ports: ports need protocol tcp, udp, sctp or udplite");
	CHECK_PARSE("allow icmp type 300", "ERR word 4 \"300\": icmp.type: 300 is out of range 0..255");
	CHECK_PARSE("allow icmp type x", "ERR word 4 \"x\": an ICMP type 0..255 is not a number");
	CHECK_PARSE("allow icmp type", "ERR word 3 \"type\": missing value (an ICMP type 0..255)");
	CHECK_PARSE("allow tcp type 8", "ERR word 3 \"type\": icmp: icmp needs protocol icmp or icmpv6");
	CHECK_PARSE("allow 256", "ERR word 2 \"256\": protocol: 256 is not a protocol number (0..255)");
	CHECK_PARSE("allow from tag 'a b'",
		    "ERR word 4 \"a b\": source.tag: \"a b\" is not a valid tag (letters, digits, '_', '.' and '-', "
		    "at most 253 characters)");
	CHECK_PARSE("allow from cidr 10.0.0.0/33",
		    "ERR word 4 \"10.0.0.0/33\": source.nets[0]: \"10.0.0.0/33\" is not a CIDR");
	CHECK_PARSE("allow ipv4 from cidr fd00::/8",
		    "ERR word 5 \"fd00::/8\": source.nets[0]: \"fd00::/8\" is not an IPv4 CIDR (the rule's ipVersion is 4)");
	CHECK_PARSE("allow ipv4 icmpv6", "ERR word 3 \"icmpv6\": protocol: icmpv6 does not go with ipVersion 4");
	CHECK_PARSE("pass", "ERR word 1 \"pass\": action: \"pass\" is only allowed in policies");
	CHECK_PARSE_POLICY("pass", "{\"action\":\"pass\"}");
	CHECK_PARSE("allow from from", "ERR word 3 \"from\": expected ports, tag, cidr, selector, not, to or end of rule");
	CHECK_PARSE("allow to tag A to tag B",
		    "ERR word 5 \"to\": expected ports, cidr, selector, not, from or end of rule");
	CHECK_PARSE("allow tcp not", "ERR word 3 \"not\": expected ipv4, ipv6, type, not, from, to or end of rule");
	CHECK_PARSE("allow not foo", "ERR word 3 \"foo\": expected ipv4, ipv6, a protocol, type, not, from, to or end of rule");
	CHECK_PARSE("allow tcp udp", "ERR word 3 \"udp\": the protocol given twice");
	CHECK_PARSE("allow ipv4 ipv6", "ERR word 3 \"ipv6\": the IP version is given twice");
	CHECK_PARSE("allow to selector \"role = 'db'\"",
		    "ERR word 4 \"role = 'db'\": destination.selector: \"role = 'db'\" is not a valid selector: at 6: "
		    "expected ==, !=, in, not in, contains, starts with or ends with");
	CHECK_PARSE("allow \"tcp\x01\"", "ERR word 2 \"tcp\\x01\": expected ipv4, ipv6, a protocol, type, not, from, to or end of rule");
}

static void test_roundtrip(void)
{
	roundtrip("allow", NULL);
	roundtrip("allow from tag WEB", NULL);
	roundtrip("allow tcp to ports 80,443", NULL);
	roundtrip("allow tcp from ports 1024:65535 tag WEB cidr 10.0.0.0/8 to ports 5432", NULL);
	roundtrip("deny ipv6 icmpv6 type 128 code 0 not type 129 from not cidr fd00::/8", NULL);
	roundtrip("log not udp", NULL);
	roundtrip("allow 47 to cidr 10.0.0.1/32,10.0.0.0/24", NULL);
	roundtrip("pass to selector \"role == 'db'\"", "pass to selector \"role == 'db'\"");
	roundtrip("pass to selector 'has(x)' not selector \"a == \\\"q\\\" && b == 'x'\"",
		  "pass to selector 'has(x)' not selector \"a == \\\"q\\\" && b == 'x'\"");
	/* Formatting is canonical: bare CIDRs, aliases and case go away. */
	roundtrip("Allow TCP to !ports 22:22 from 10.0.0.1 !tag x", "allow tcp from not tag x cidr 10.0.0.1/32 to not ports 22");
	roundtrip("allow gre", "allow 47");
}

static void test_format_stored(void)
{
	/* Rules as the model stores them, including what the parser never
	 * makes: empty lists (no condition) and empty entities. */
	static const struct {
		const char *json, *line;
	} cases[] = {
		{"{\"action\":\"allow\",\"source\":{}}", "allow"},
		{"{\"action\":\"allow\",\"protocol\":\"tcp\",\"destination\":{\"ports\":[],\"tag\":\"A\"}}",
		 "allow tcp to tag A"},
		{"{\"action\":\"deny\",\"protocol\":6,\"destination\":{\"ports\":[\"8000:8080\",22]}}",
		 "deny 6 to ports 8000:8080,22"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cJSON *j = cJSON_Parse(cases[i].json);
		char *line = NULL;
		CHECK(weft_rule_text_format(j, &line) == 0);
		CHECK_STREQ(line, cases[i].line);
		free(line);
		cJSON_Delete(j);
	}
	/* What the syntax cannot say. */
	static const char *const bad[] = {
		"{\"action\":\"allow\",\"colour\":1}",
		"{\"protocol\":\"tcp\"}",
		"{\"action\":\"allow\",\"source\":{\"ports\":[\"a,b\"]}}",
		"{\"action\":\"allow\",\"icmp\":{\"type\":1.5}}",
		"[]",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cJSON *j = cJSON_Parse(bad[i]);
		char *line = NULL;
		CHECK(weft_rule_text_format(j, &line) == -EINVAL);
		CHECK(line == NULL);
		cJSON_Delete(j);
	}
}

static void test_split(void)
{
	char **w = NULL, *err = NULL;
	size_t n = 0;

	CHECK(weft_rule_text_split("  a 'b c'\t\"d \\\" e\"f\\ g ''  ", &w, &n, NULL) == 0);
	CHECK_EQ_INT(n, 4);
	if (n == 4) {
		CHECK_STREQ(w[0], "a");
		CHECK_STREQ(w[1], "b c");
		CHECK_STREQ(w[2], "d \" ef g");
		CHECK_STREQ(w[3], "");
	}
	weft_rule_text_words_free(w, n);
	CHECK(weft_rule_text_split("a 'b", &w, &n, &err) == -EINVAL);
	CHECK_STREQ(err, "unterminated quote");
	free(err);
	CHECK(weft_rule_text_split("", &w, &n, NULL) == 0);
	CHECK_EQ_INT(n, 0);
	weft_rule_text_words_free(w, n);
}

static void init(void)
{
	weft_json_init();
}

TEST_MAIN(TEST(init), TEST(test_classic), TEST(test_negations), TEST(test_errors), TEST(test_roundtrip),
	  TEST(test_format_stored), TEST(test_split))
