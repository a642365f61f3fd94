/* rule-text.h - the classic calicoctl (v1) rule syntax <-> rule JSON.
 *
 * A rule in words, as `weftctl profile WEB rule add inbound ...` takes it:
 *
 *   ACTION [ipv4|ipv6] [PROTO] [not PROTO]
 *          [type N [code N]] [not type N [code N]]
 *          [from ENTITY] [to ENTITY]
 *
 *   ACTION  allow | deny | log | pass (pass only in policy rules)
 *   PROTO   tcp | udp | icmp | icmpv6 | sctp | udplite | a number 0..255,
 *           or one of a few other names that become their number (gre,
 *           esp, ah, ipip, igmp, ospf, pim, vrrp)
 *   type/code   ICMP type and code (with icmp, icmpv6, 1 or 58)
 *   ENTITY  any of, in any order, each at most once:
 *           ports P          P: a list like 80,443,8000:8080
 *           tag T
 *           cidr C | net C | nets C | a bare C
 *                            C: an address or CIDR, or a comma list
 *           selector S       S: a label selector (one word: quote it)
 *           and each of them negated: not ports P, not tag T, not cidr C,
 *           not selector S.
 *
 * "not X" may also be written "!X" or "! X" (scripts; an interactive shell
 * expands "!" itself). Keywords are case-insensitive. "from" and "to" may
 * come in either order, each once; an empty "from" or "to" is no
 * condition. Examples:
 *
 *   allow from tag WEB
 *   allow tcp to ports 80,443
 *   allow tcp from tag WEB to ports 5432
 *   deny icmp type 8 from cidr 10.0.0.0/8
 *   allow tcp from not cidr 192.168.0.0/16 to not ports 22,8000:8080
 *   allow not udp to selector "role == 'db'"
 *
 * The JSON is the model's rule object (docs/resources.md, "Rules"): the
 * result of a parse is exactly what the model stores (canonical form), and
 * it has passed the model's own validation, so the limits are the model's.
 * Formatting gives the words back; parse(format(r)) == r for every
 * canonical rule r (empty lists in r, which mean no condition, are left
 * out).
 *
 * Return convention: 0 or a negative errno; outputs are written only on
 * success; *errmsg, where given, gets a malloc'ed one-line message on
 * failure. Out of memory aborts (lib/util.h).
 */
#ifndef WEFT_RULE_TEXT_H
#define WEFT_RULE_TEXT_H

#include "lib/util.h"

#include <cjson/cJSON.h>

/* Parse flags. */
#define WEFT_RULE_TEXT_POLICY (1u << 0) /* a policy rule: "pass" allowed */

/* Parse words[0..n) into a canonical rule object (*out, owned by the
 * caller). Errors are -EINVAL and name the word and what was expected or
 * what is wrong, 1-based:
 *   word 3 "fron": expected from, to or end of rule
 *   word 5 "80,99999": destination.ports[1]: 99999 is not a port (0..65535)
 */
int weft_rule_text_parse(char *const *words, size_t n, unsigned flags, cJSON **out, char **errmsg);

/* Parse one line: the line is split into words first (weft_rule_text_split). */
int weft_rule_text_parse_line(const char *line, unsigned flags, cJSON **out, char **errmsg);

/* The words of rule (a rule object as the model stores it). Returns 0 and
 * a malloc'ed array of *n malloc'ed words, or -EINVAL when rule is not a
 * rule object this syntax can express (a field it does not know, a value
 * of the wrong type). */
int weft_rule_text_words(const cJSON *rule, char ***words, size_t *n);

/* The rule as one line: the words joined by spaces, a word quoted (as a
 * POSIX shell would read it back) when it holds anything but letters,
 * digits and , . : / _ - + = @ %. Returns 0 and a malloc'ed string, or
 * -EINVAL as weft_rule_text_words(). */
int weft_rule_text_format(const cJSON *rule, char **out);

/* Split a line into words: blanks separate words; '...' quotes
 * literally, "..." quotes with \ escaping the next character, as a POSIX
 * shell does (no expansions). Returns 0 and the words (free with
 * weft_rule_text_words_free), or -EINVAL for an unterminated quote. */
int weft_rule_text_split(const char *line, char ***words, size_t *n, char **errmsg);

void weft_rule_text_words_free(char **words, size_t n);

#endif
