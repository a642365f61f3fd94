/* profile.c - weftctl profile: the classic calicoctl (v1) profile commands.
 *
 * Profiles are ordinary resources (kind Profile); these commands edit one
 * in place. Every change reads the profile, changes the document, has the
 * model validate the whole profile again and writes it back with a
 * compare-and-swap on the revision read, so a concurrent writer is never
 * overwritten (a conflict is retried a few times). A bad rule or tag is
 * refused before anything is written.
 */
#include "ctl/ctl.h"

#include "acl/rule-text.h"

static const char *const profile_usage =
	"Usage: weftctl profile list\n"
	"       weftctl profile NAME create|delete|show\n"
	"       weftctl profile NAME rule show\n"
	"       weftctl profile NAME rule add (inbound|outbound) [--at N] RULE...\n"
	"       weftctl profile NAME rule remove (inbound|outbound) (N | RULE...)\n"
	"       weftctl profile NAME tag add|remove TAG\n"
	"\n"
	"Classic (Calico v1) profiles: tags and ordered inbound and outbound rules.\n"
	"An endpoint's addresses are members of its profiles' tags. A new profile\n"
	"has its own name as tag, inbound \"allow from tag NAME\" and outbound\n"
	"\"allow\". Rules are numbered from 1; rule add appends unless --at N puts\n"
	"the rule at position N; rule remove takes a number or the rule's words.\n"
	"\n"
	"RULE:\n"
	"  ACTION [ipv4|ipv6] [PROTO] [not PROTO] [type N [code N]] [not type N [code N]]\n"
	"         [from ENTITY] [to ENTITY]\n"
	"  ACTION   allow, deny or log\n"
	"  PROTO    tcp, udp, icmp, icmpv6, sctp, udplite or a number 0..255\n"
	"  ENTITY   any of: [not] ports P, [not] tag T, [not] cidr C, [not] selector S\n"
	"           P: 80,443,8000:8080   C: 10.0.0.0/8,fd00::/64 (\"cidr\" may be left out)\n"
	"  \"not X\" may be written \"!X\" (quote it in an interactive shell).\n"
	"\n"
	"Examples:\n"
	"  weftctl profile WEB rule add inbound allow from tag WEB\n"
	"  weftctl profile WEB rule add inbound allow tcp to ports 80,443\n"
	"  weftctl profile DB rule add inbound --at 1 allow tcp from tag WEB to ports 5432\n"
	"  weftctl profile WEB rule remove inbound 2\n"
	"\n"
	"Exit codes: 0 done, 1 failed (missing profile, store error, rule not\n"
	"found), 2 usage error or a bad rule or tag (nothing written).\n";


/* The store key of profile name. */
static char *profile_key(const char *name)
{
	return wasprintf("%s%s", weft_kind_prefix(WEFT_KIND_PROFILE), name);
}

/* A profile document with only its name, validated: the canonical new
 * profile (the model fills in the Calico v1 defaults). Returns 0, or 2
 * after printing why the name is not a profile name. */
static int new_profile(const char *name, struct weft_resource *out)
{
	cJSON *doc = cJSON_CreateObject();
	_cleanup_free_ char *err = NULL;
	int r;

	cJSON_AddStringToObject(doc, "kind", "Profile");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(doc, "metadata"), "name", name);
	r = weft_resource_from_json(doc, "profile", out, &err);
	cJSON_Delete(doc);
	if (r < 0) {
		fprintf(stderr, "weftctl: %s\n", err ? err : "invalid profile name");
		return 2;
	}
	return 0;
}

/* Read profile name. Returns 0 with *res and *mod_rev, or 1 after an
 * error message (missing profile, store error, undecodable record). */
static int load_profile(struct ctl *ctl, const char *name, struct weft_resource *res, int64_t *mod_rev)
{
	_cleanup_free_ char *key = profile_key(name), *err = NULL;
	struct weft_kv kv = {0};
	int r;

	r = weft_store_get(ctl->store, key, &kv);
	if (r == -ENOENT)
		return ctl_fail("profile %s not found", name);
	if (r < 0)
		return ctl_fail("read %s: %s", key, weft_store_errmsg(ctl->store));
	r = weft_resource_decode(kv.value, kv.value_len, res, &err);
	if (r == 0 && (res->kind != WEFT_KIND_PROFILE || !streq(res->name, name))) {
		weft_resource_clear(res);
		r = -EINVAL;
	}
	*mod_rev = kv.mod_rev;
	weft_kv_clear(&kv);
	if (r < 0)
		return ctl_fail("%s holds an invalid profile: %s", key, err ? err : "wrong kind or name");
	return 0;
}

static cJSON *spec_list(cJSON *doc, const char *field)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "spec"), field);
}

/* --- the read-modify-CAS loop --------------------------------------- */

/* A change to a profile document. Returns MOD_WRITE to write the changed
 * document, MOD_NOOP to write nothing and succeed, or an exit code (1, 2)
 * after printing why. It may set *done to a malloc'ed line to print once
 * the write succeeded. */
#define MOD_WRITE 0
#define MOD_NOOP (-1)
typedef int (*modify_fn)(const char *name, cJSON *doc, void *arg, char **done);

static int update_profile(struct ctl *ctl, const char *name, modify_fn fn, void *arg)
{
	_cleanup_free_ char *key = profile_key(name);
	struct ctl_retry rt = {0};

	for (;;) {
		struct weft_resource cur = {0}, next = {0};
		_cleanup_free_ char *done = NULL, *err = NULL, *value = NULL;
		int64_t mod_rev;
		cJSON *doc;
		int r;

		if (load_profile(ctl, name, &cur, &mod_rev))
			return 1;
		doc = cJSON_Duplicate(cur.doc, true);
		weft_resource_clear(&cur);
		r = fn(name, doc, arg, &done);
		if (r != MOD_WRITE) {
			cJSON_Delete(doc);
			if (r == MOD_NOOP) {
				if (done)
					printf("%s\n", done);
				return 0;
			}
			return r;
		}
		/* The whole profile again through the model: the same checks
		 * and limits as weftctl apply. */
		r = weft_resource_from_json(doc, name, &next, &err);
		cJSON_Delete(doc);
		if (r < 0) {
			fprintf(stderr, "weftctl: %s; nothing written\n", err ? err : "invalid profile");
			return 2;
		}
		value = weft_resource_encode(&next, false);
		weft_resource_clear(&next);
		r = weft_store_cas(ctl->store, key, value, strlen(value), mod_rev, NULL);
		if (r == -ECANCELED) {
			/* Someone else wrote the profile in between: start over
			 * from a fresh read, after a pause. */
			if (ctl_retry_again(&rt))
				continue;
			break;
		}
		if (r < 0)
			return ctl_write_failed(ctl, r, "written");
		if (done)
			printf("%s\n", done);
		return 0;
	}
	return ctl_fail("profile %s kept changing under us; nothing written, try again", name);
}

/* --- rules ---------------------------------------------------------- */

static const char *dir_field(const char *dir)
{
	if (streq(dir, "inbound"))
		return "inboundRules";
	if (streq(dir, "outbound"))
		return "outboundRules";
	return NULL;
}

/* One rule as text: the classic syntax, or its JSON if the syntax cannot
 * say it (never for a rule the model accepted). */
static char *rule_line(const cJSON *rule)
{
	char *s = NULL;

	if (weft_rule_text_format(rule, &s) == 0)
		return s;
	s = cJSON_PrintUnformatted(rule);
	return s ? s : wstrdup("?");
}

static void print_rules(const cJSON *doc)
{
	static const char *const dirs[] = {"inbound", "outbound"};

	for (size_t d = 0; d < 2; d++) {
		const cJSON *l = spec_list((cJSON *)doc, dir_field(dirs[d])), *rule;
		int i = 0;

		printf("%s rules:\n", d == 0 ? "Inbound" : "Outbound");
		cJSON_ArrayForEach(rule, l) {
			_cleanup_free_ char *s = rule_line(rule);
			printf("  %2d %s\n", ++i, s);
		}
		if (i == 0)
			printf("     (none: all %s traffic is denied)\n", dirs[d]);
	}
}

/* The rule words of a command: several words, or one word holding the
 * whole rule ("allow tcp to ports 80"), split as a shell would. Returns 0,
 * or 2 after printing the error. */
static int parse_rule(char **words, size_t n, cJSON **rule)
{
	_cleanup_free_ char *err = NULL;
	int r;

	if (n == 1 && strpbrk(words[0], " \t"))
		r = weft_rule_text_parse_line(words[0], 0, rule, &err);
	else
		r = weft_rule_text_parse(words, n, 0, rule, &err);
	if (r < 0) {
		fprintf(stderr, "weftctl: rule: %s; nothing written\n", err ? err : "invalid rule");
		return 2;
	}
	return 0;
}

struct rule_change {
	const char *dir;
	cJSON *rule;  /* add, or remove by text */
	long at;      /* add: 1-based position, 0 = append; remove: number, 0 = by text */
};

static int add_rule(const char *name, cJSON *doc, void *arg, char **done)
{
	struct rule_change *c = arg;
	cJSON *l = spec_list(doc, dir_field(c->dir));
	long n = cJSON_GetArraySize(l), at = c->at ? c->at : n + 1;
	_cleanup_free_ char *s = rule_line(c->rule);

	if (!cJSON_IsArray(l))
		return ctl_fail("profile %s has no %s rule list", name, c->dir);
	if (at < 1 || at > n + 1)
		return ctl_fail("--at %ld: profile %s has %ld %s rule%s (give 1..%ld); nothing written", c->at, name,
				n, c->dir, n == 1 ? "" : "s", n + 1);
	/* A new list rather than cJSON_InsertItemInArray(), which in cJSON
	 * 1.7.15 refuses to insert in the middle of a parsed array. */
	cJSON *nl = cJSON_CreateArray(), *it;
	long i = 0;
	cJSON_ArrayForEach(it, l) {
		if (++i == at)
			cJSON_AddItemToArray(nl, cJSON_Duplicate(c->rule, true));
		cJSON_AddItemToArray(nl, cJSON_Duplicate(it, true));
	}
	if (at == n + 1)
		cJSON_AddItemToArray(nl, cJSON_Duplicate(c->rule, true));
	cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "spec"), dir_field(c->dir), nl);
	*done = wasprintf("profile %s: %s rule %ld added: %s", name, c->dir, at, s);
	return MOD_WRITE;
}

static int remove_rule(const char *name, cJSON *doc, void *arg, char **done)
{
	struct rule_change *c = arg;
	cJSON *l = spec_list(doc, dir_field(c->dir)), *it;
	long n = cJSON_GetArraySize(l), at = c->at;

	if (!cJSON_IsArray(l))
		return ctl_fail("profile %s has no %s rule list", name, c->dir);
	if (!at) {
		/* Equal as rules, or as printed: a stored rule may hold an
		 * empty list (ports: []), which is no condition and is not
		 * printed, so the words shown for it must find it too. */
		_cleanup_free_ char *want = rule_line(c->rule);
		long i = 0;
		cJSON_ArrayForEach(it, l) {
			_cleanup_free_ char *line = rule_line(it);
			i++;
			if (cJSON_Compare(it, c->rule, true) || streq(line, want)) {
				at = i;
				break;
			}
		}
		if (!at) {
			_cleanup_free_ char *s = rule_line(c->rule);
			return ctl_fail("profile %s has no %s rule \"%s\"; nothing written", name, c->dir, s);
		}
	} else if (at > n) {
		return ctl_fail("profile %s has no %s rule %ld (it has %ld); nothing written", name, c->dir, at, n);
	}
	it = cJSON_DetachItemFromArray(l, (int)at - 1);
	_cleanup_free_ char *s = rule_line(it);
	cJSON_Delete(it);
	*done = wasprintf("profile %s: %s rule %ld removed: %s", name, c->dir, at, s);
	return MOD_WRITE;
}

/* A rule number: 1..10^9 (more rules than that cannot be stored). */
static bool rule_number(const char *s, long *out)
{
	int64_t v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || weft_parse_int64(s, 1, 1000000000, &v) < 0)
		return false;
	*out = (long)v;
	return true;
}

static int cmd_rule(struct ctl *ctl, const char *name, int argc, char **argv)
{
	struct rule_change c = {0};
	char **words;
	size_t n = 0;
	int r;

	/* argv: "rule" SUB ... */
	if (argc < 2)
		return ctl_usage("profile", "rule: expected show, add or remove");
	if (streq(argv[1], "show")) {
		struct weft_resource res = {0};
		int64_t rev;
		if (argc > 2)
			return ctl_usage("profile", "rule show: unexpected argument \"%s\"", argv[2]);
		if (ctl_open_store(ctl))
			return 1;
		r = load_profile(ctl, name, &res, &rev);
		if (r == 0) {
			print_rules(res.doc);
			weft_resource_clear(&res);
		}
		ctl_close_store(ctl);
		return r;
	}
	if (!streq(argv[1], "add") && !streq(argv[1], "remove"))
		return ctl_usage("profile", "rule: expected show, add or remove, not \"%s\"", argv[1]);
	bool add = streq(argv[1], "add");
	if (argc < 3 || !dir_field(argv[2]))
		return ctl_usage("profile", "rule %s: expected inbound or outbound%s%s%s", argv[1], argc < 3 ? "" : ", not \"",
			     argc < 3 ? "" : argv[2], argc < 3 ? "" : "\"");
	c.dir = argv[2];

	/* The rule's words, with --at N taken out (rule words never begin
	 * with "--"). */
	words = wcalloc((size_t)argc, sizeof(*words));
	for (int i = 3; i < argc; i++) {
		const char *at = NULL;
		if (add && streq(argv[i], "--at")) {
			if (i + 1 >= argc) {
				free(words);
				return ctl_usage("profile", "rule add: --at needs a position");
			}
			at = argv[++i];
		} else if (add && startswith(argv[i], "--at=")) {
			at = argv[i] + 5;
		} else if (startswith(argv[i], "--")) {
			free(words);
			return ctl_usage("profile", "rule %s: unknown option \"%s\"", argv[1], argv[i]);
		} else {
			words[n++] = argv[i];
			continue;
		}
		if (c.at || !rule_number(at, &c.at)) {
			free(words);
			return ctl_usage("profile", "rule add: --at %s: expected one position 1, 2, ...", at);
		}
	}
	if (n == 0) {
		free(words);
		return ctl_usage("profile", "rule %s %s: expected %s", argv[1], c.dir, add ? "a rule" : "a rule number or a rule");
	}
	if (!add && n == 1 && rule_number(words[0], &c.at)) {
		/* remove by number */
	} else if (!add && n == 1 && strspn(words[0], "-0123456789") == strlen(words[0])) {
		r = ctl_usage("profile", "rule remove: \"%s\" is not a rule number (1, 2, ...)", words[0]);
		free(words);
		return r;
	} else if (parse_rule(words, n, &c.rule)) {
		free(words);
		return 2;
	}
	free(words);
	if (ctl_open_store(ctl)) {
		cJSON_Delete(c.rule);
		return 1;
	}
	r = update_profile(ctl, name, add ? add_rule : remove_rule, &c);
	ctl_close_store(ctl);
	cJSON_Delete(c.rule);
	return r;
}

/* --- tags ----------------------------------------------------------- */

struct tag_change {
	bool add;
	const char *tag;
};

static int change_tag(const char *name, cJSON *doc, void *arg, char **done)
{
	struct tag_change *c = arg;
	cJSON *l = spec_list(doc, "tags"), *it;
	int i = 0;

	if (!cJSON_IsArray(l))
		return ctl_fail("profile %s has no tag list", name);
	cJSON_ArrayForEach(it, l) {
		if (cJSON_IsString(it) && streq(it->valuestring, c->tag))
			break;
		i++;
	}
	if (c->add) {
		if (it) {
			*done = wasprintf("profile %s: already has tag %s; nothing written", name, c->tag);
			return MOD_NOOP;
		}
		cJSON_AddItemToArray(l, cJSON_CreateString(c->tag));
		*done = wasprintf("profile %s: tag %s added", name, c->tag);
		return MOD_WRITE;
	}
	if (!it)
		return ctl_fail("profile %s has no tag %s; nothing written", name, c->tag);
	cJSON_DeleteItemFromArray(l, i);
	*done = wasprintf("profile %s: tag %s removed", name, c->tag);
	return MOD_WRITE;
}

static int cmd_tag(struct ctl *ctl, const char *name, int argc, char **argv)
{
	struct tag_change c;
	int r;

	if (argc != 3 || (!streq(argv[1], "add") && !streq(argv[1], "remove")))
		return ctl_usage("profile", "tag: expected add TAG or remove TAG");
	c.add = streq(argv[1], "add");
	c.tag = argv[2];
	if (ctl_open_store(ctl))
		return 1;
	r = update_profile(ctl, name, change_tag, &c);
	ctl_close_store(ctl);
	return r;
}

/* --- whole profiles --------------------------------------------------- */

static int cmd_create(struct ctl *ctl, const char *name)
{
	struct weft_resource res = {0};
	_cleanup_free_ char *key = NULL, *value = NULL;
	int r;

	r = new_profile(name, &res);
	if (r)
		return r;
	key = weft_resource_key(&res);
	value = weft_resource_encode(&res, false);
	weft_resource_clear(&res);
	if (ctl_open_store(ctl))
		return 1;
	r = weft_store_create(ctl->store, key, value, strlen(value), NULL);
	if (r == -EEXIST)
		r = ctl_fail("profile %s already exists; nothing written", name);
	else if (r < 0)
		r = ctl_write_failed(ctl, r, "written");
	else
		printf("created Profile %s\n", name);
	ctl_close_store(ctl);
	return r;
}

static int cmd_delete(struct ctl *ctl, const char *name)
{
	_cleanup_free_ char *key = profile_key(name);
	int r;

	if (ctl_open_store(ctl))
		return 1;
	r = weft_store_delete(ctl->store, key, 0, NULL);
	if (r == -ENOENT)
		r = ctl_fail("profile %s not found; nothing deleted", name);
	else if (r < 0)
		r = ctl_write_failed(ctl, r, "deleted");
	else
		printf("deleted Profile %s\n", name);
	ctl_close_store(ctl);
	return r;
}

static int cmd_show(struct ctl *ctl, const char *name)
{
	struct weft_resource res = {0};
	const cJSON *it;
	int64_t rev;
	bool first = true;
	int r;

	if (ctl_open_store(ctl))
		return 1;
	r = load_profile(ctl, name, &res, &rev);
	ctl_close_store(ctl);
	if (r)
		return r;
	printf("Profile %s\nTags:", name);
	cJSON_ArrayForEach(it, spec_list(res.doc, "tags")) {
		printf("%s %s", first ? "" : ",", it->valuestring);
		first = false;
	}
	printf("%s\n", first ? " (none)" : "");
	first = true;
	cJSON_ArrayForEach(it, spec_list(res.doc, "labelsToApply")) {
		printf("%s %s=%s", first ? "Labels to apply:" : ",", it->string, it->valuestring);
		first = false;
	}
	if (!first)
		printf("\n");
	print_rules(res.doc);
	weft_resource_clear(&res);
	return 0;
}

static int cmd_list(struct ctl *ctl)
{
	struct weft_kv_list kl = {0};
	int r;

	if (ctl_open_store(ctl))
		return 1;
	r = weft_store_list(ctl->store, weft_kind_prefix(WEFT_KIND_PROFILE), &kl);
	if (r < 0) {
		r = ctl_fail("store list failed: %s", weft_store_errmsg(ctl->store));
		ctl_close_store(ctl);
		return r;
	}
	ctl_close_store(ctl);
	printf("%-24s %-8s %-8s %s\n", "NAME", "INBOUND", "OUTBOUND", "TAGS");
	for (size_t i = 0; i < kl.n; i++) {
		struct weft_resource res = {0};
		struct weft_buf tags = {0};
		const cJSON *it;

		if (weft_resource_decode(kl.items[i].value, kl.items[i].value_len, &res, NULL) < 0 ||
		    res.kind != WEFT_KIND_PROFILE) {
			weft_resource_clear(&res);
			fprintf(stderr, "weftctl: %s: not a valid profile (see weftctl store check)\n", kl.items[i].key);
			r = 1;
			continue;
		}
		cJSON_ArrayForEach(it, spec_list(res.doc, "tags"))
			weft_buf_printf(&tags, "%s%s", tags.len ? "," : "", it->valuestring);
		printf("%-24s %-8d %-8d %s\n", res.name, cJSON_GetArraySize(spec_list(res.doc, "inboundRules")),
		       cJSON_GetArraySize(spec_list(res.doc, "outboundRules")), tags.len ? tags.data : "");
		weft_buf_free(&tags);
		weft_resource_clear(&res);
	}
	weft_kv_list_clear(&kl);
	return r;
}

int ctl_cmd_profile(struct ctl *ctl, int argc, char **argv)
{
	struct weft_resource check = {0};
	const char *name;
	int r;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
			fputs(profile_usage, stdout);
			return 0;
		}
	}
	if (argc < 2)
		return ctl_usage("profile", "expected list or a profile name");
	if (argc == 2 && streq(argv[1], "list"))
		return cmd_list(ctl);
	if (argc < 3)
		return ctl_usage("profile", "profile %s: expected create, delete, show, rule or tag", argv[1]);
	name = argv[1];
	/* Refuse what can never be a profile name before it becomes a key. */
	r = new_profile(name, &check);
	if (r)
		return r;
	weft_resource_clear(&check);
	if (streq(argv[2], "rule"))
		return cmd_rule(ctl, name, argc - 2, argv + 2);
	if (streq(argv[2], "tag"))
		return cmd_tag(ctl, name, argc - 2, argv + 2);
	if (argc > 3)
		return ctl_usage("profile", "%s: unexpected argument \"%s\"", argv[2], argv[3]);
	if (streq(argv[2], "create"))
		return cmd_create(ctl, name);
	if (streq(argv[2], "delete"))
		return cmd_delete(ctl, name);
	if (streq(argv[2], "show"))
		return cmd_show(ctl, name);
	return ctl_usage("profile", "profile %s: expected create, delete, show, rule or tag, not \"%s\"", name, argv[2]);
}
