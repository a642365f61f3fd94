/* compile.c - Profiles, Policies and Endpoints compiled into a program.
 *
 * The work is done in passes so that the cost grows with the input, not
 * with its square:
 *
 *   1. The resources are sorted by (kind, name), so any input order gives
 *      the same program and the same first error.
 *   2. Every Profile and Policy is compiled into its chains (even those no
 *      endpoint of this node uses: a bad stored rule is reported whatever
 *      node compiles it). Rules register the address sets they need in a
 *      name-keyed table; a name collision is an error.
 *   3. Endpoints are read; their effective labels (own labels over the
 *      labelsToApply of their profiles) are grouped, so a selector is
 *      matched once per distinct label set rather than once per endpoint,
 *      and the groups are indexed by label: a selector whose top level is
 *      a conjunction with a term "key == 'value'" is only matched against
 *      the groups carrying that label.
 *   4. The node's endpoints get the policies whose selector matches their
 *      labels (sorted by order, then name) and their profiles' chains;
 *      those chains are marked used, and the sets they reference too.
 *   5. Only used sets get members: tags through an index from tag to set,
 *      selectors by label group, nets from the rule itself. Members are
 *      sorted, deduplicated and stripped of covered prefixes.
 *
 * Rule selectors follow Calico: "selector: all()" in a rule means any
 * endpoint's address (a set), not any address at all; only a policy's own
 * all() selector skips matching (weft_selector_is_all()).
 */
#include "lib/util.h"
#include "acl/acl.h"
#include "model/selector.h"

#include <math.h>
#include <sys/socket.h>

#define DEFAULT_FAILSAFE                                                                            \
	{                                                                                           \
		{IPPROTO_TCP, 22}, {IPPROTO_UDP, 68}, {IPPROTO_TCP, 179}, {IPPROTO_TCP, 2379},       \
			{IPPROTO_TCP, 2380}, {IPPROTO_TCP, 5473}, {IPPROTO_TCP, 6443}, {IPPROTO_TCP, 6666}, \
			{IPPROTO_TCP, 6667},                                                         \
	}

/* --- FNV-1a and a string-keyed hash map ---------------------------------- */

static uint64_t fnv1a64(const char *s)
{
	return weft_fnv1a(s, strlen(s), WEFT_FNV_INIT);
}

struct smap_ent {
	const char *key; /* borrowed from the value, which outlives the map */
	void *val;
};

struct smap {
	struct smap_ent *v;
	size_t cap, n;
};

static void *smap_get(const struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = fnv1a64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->v[i].key)
			return NULL;
		if (streq(m->v[i].key, key))
			return m->v[i].val;
	}
}

static void smap_insert(struct smap_ent *v, size_t cap, const char *key, void *val)
{
	size_t i = fnv1a64(key) & (cap - 1);

	while (v[i].key)
		i = (i + 1) & (cap - 1);
	v[i].key = key;
	v[i].val = val;
}

/* key must not be present yet. */
static void smap_put(struct smap *m, const char *key, void *val)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct smap_ent *v = wcalloc(cap, sizeof(*v));

		for (size_t i = 0; i < m->cap; i++)
			if (m->v[i].key)
				smap_insert(v, cap, m->v[i].key, m->v[i].val);
		free(m->v);
		m->v = v;
		m->cap = cap;
	}
	smap_insert(m->v, m->cap, key, val);
	m->n++;
}

static void smap_free(struct smap *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* A growable array of pointers the context owns. */
struct pvec {
	void **v;
	size_t n, cap;
};

static void pvec_push(struct pvec *p, void *x)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->v = wrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n++] = x;
}

/* --- the compile context -------------------------------------------------- */

enum cset_type { CSET_TAG, CSET_SEL, CSET_NETS };

struct cset {
	struct weft_acl_set s;
	enum cset_type type;
	size_t cap;
	bool used;
};

struct csel {
	char *text; /* canonical */
	struct weft_selector *sel;
	bool all;
	struct cset *set[2]; /* [0] IPv4, [1] IPv6; NULL until a rule needs it */
};

struct ctag {
	char *tag;
	struct cset *set[2];
};

struct cchain {
	struct weft_acl_chain c;
	size_t cap;
	bool used;
};

struct cprofile {
	const char *name;
	const char **tags;
	size_t n_tags;
	struct weft_label *lta; /* labelsToApply, borrowed strings */
	size_t n_lta;
	struct cchain *in, *out;
};

struct cpolicy {
	const char *name;
	bool has_order;
	double order;
	struct csel *sel;
	bool ingress, egress;
	struct cchain *in, *out;
};

struct lgroup;

struct cep {
	const char *name, *ifname;
	bool local;
	uint8_t mac[6];
	bool has_mac;
	struct weft_cidr *addrs;
	size_t n_addrs;
	struct cprofile **profiles;
	size_t n_profiles;
	struct weft_label *labels;
	size_t n_labels;
	struct lgroup *group;
};

struct lgroup {
	char *key;
	struct weft_labels labels; /* the first member's */
	struct pvec eps;
	bool local;
	struct pvec policies; /* struct cpolicy *: those that apply, in evaluation order */
};

/* The label groups that carry one label (key and value). */
struct lindex {
	char *kv;
	struct pvec groups;
};

struct cc {
	/* Error context: the resource and the field path being read. */
	const char *kind, *name;
	struct {
		const char *key; /* NULL: a list index */
		size_t index;
	} path[32];   /* written out only for an error; deeper steps are counted, not kept */
	size_t depth;
	char *err;

	struct smap sets, chains, sels, tags, profiles, groups, lindex;
	struct pvec all_sets, all_chains, all_sels, all_tags, all_profiles, all_policies, all_eps, all_groups;
	struct pvec all_lindex, local_groups;
	bool no_rules; /* weft_acl_options.sets_only */
};

/* Every field and rule read pushes a step (for the error that may come),
 * so a step is two words, not text. key must outlive the step. */
static size_t path_step(struct cc *c, const char *key, size_t index)
{
	if (c->depth < ARRAY_SIZE(c->path)) {
		c->path[c->depth].key = key;
		c->path[c->depth].index = index;
	}
	return c->depth++;
}

static size_t path_push(struct cc *c, const char *field)
{
	return path_step(c, field, 0);
}

static size_t path_push_index(struct cc *c, size_t i)
{
	return path_step(c, NULL, i);
}

static void path_pop(struct cc *c, size_t old)
{
	c->depth = old;
}

static int PRINTF_LIKE(2, 3) fail(struct cc *c, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	if (c->err)
		return -EINVAL;
	va_start(ap, fmt);
	msg = wvasprintf(fmt, ap);
	va_end(ap);
	if (c->depth) {
		struct weft_buf path = {0};
		for (size_t i = 0; i < c->depth && i < ARRAY_SIZE(c->path); i++) {
			if (c->path[i].key)
				weft_buf_printf(&path, "%s%s", i ? "." : "", c->path[i].key);
			else
				weft_buf_printf(&path, "[%zu]", c->path[i].index);
		}
		if (c->depth > ARRAY_SIZE(c->path))
			weft_buf_append(&path, "...", 3);
		c->err = wasprintf("%s %s: %s: %s", c->kind, c->name ? c->name : "(no name)", path.data, msg);
		weft_buf_free(&path);
	} else
		c->err = wasprintf("%s %s: %s", c->kind, c->name ? c->name : "(no name)", msg);
	return -EINVAL;
}

#define fail_at(c, field, ...)                               \
	({                                                   \
		size_t _old = path_push((c), (field));       \
		int _r = fail((c), __VA_ARGS__);             \
		path_pop((c), _old);                         \
		_r;                                          \
	})

/* --- reading the canonical documents defensively -------------------------- */

/* null reads as absent, as in the model. */
static const cJSON *get(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return v && !cJSON_IsNull(v) ? v : NULL;
}

static int check_fields(struct cc *c, const cJSON *obj, const char *const *allowed)
{
	const cJSON *f;

	if (!cJSON_IsObject(obj))
		return fail(c, "is not an object");
	cJSON_ArrayForEach(f, obj) {
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = f->string && streq(f->string, allowed[i]);
		/* An unknown field may be a restriction we would silently drop,
		 * making the rule broader than written: refuse it. */
		if (!ok)
			return fail_at(c, f->string ? f->string : "?", "unknown field");
	}
	return 0;
}

static int want_string(struct cc *c, const cJSON *obj, const char *name, bool required, const char **out)
{
	const cJSON *v = get(obj, name);

	*out = NULL;
	if (!v)
		return required ? fail_at(c, name, "is required") : 0;
	if (!cJSON_IsString(v) || !v->valuestring)
		return fail_at(c, name, "is not a string");
	*out = v->valuestring;
	return 0;
}

static int want_array(struct cc *c, const cJSON *obj, const char *name, const cJSON **out)
{
	const cJSON *v = get(obj, name);

	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsArray(v))
		return fail_at(c, name, "is not a list");
	*out = v;
	return 0;
}

static bool as_int(const cJSON *v, long lo, long hi, long *out)
{
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < lo || v->valuedouble > hi)
		return false;
	*out = (long)v->valuedouble;
	return true;
}

/* Names that end up in origins, log prefixes and messages. */
static bool safe_name(const char *s, size_t max)
{
	size_t l = strlen(s);

	if (l == 0 || l > max)
		return false;
	for (size_t i = 0; i < l; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		      ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

static bool printable_name(const char *s)
{
	size_t l = strlen(s);

	if (l == 0 || l > 253)
		return false;
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '/')
			return false;
	return true;
}

/* A label map: an object of strings, returned sorted by key. */
static int read_labels(struct cc *c, const cJSON *obj, const char *name, struct weft_label **out, size_t *n)
{
	const cJSON *m = get(obj, name), *f;
	struct weft_label *v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (!m)
		return 0;
	if (!cJSON_IsObject(m))
		return fail_at(c, name, "is not a map");
	v = wcalloc((size_t)cJSON_GetArraySize(m) + 1, sizeof(*v));
	cJSON_ArrayForEach(f, m) {
		if (!f->string || !cJSON_IsString(f) || !f->valuestring) {
			size_t old = path_push(c, name);
			fail_at(c, f->string ? f->string : "?", "is not a string");
			path_pop(c, old);
			free(v);
			return -EINVAL;
		}
		v[k].key = f->string;
		v[k].value = f->valuestring;
		k++;
	}
	weft_selector_labels_sort(v, k);
	for (size_t i = 1; i < k; i++) {
		if (streq(v[i - 1].key, v[i].key)) {
			size_t old = path_push(c, name);
			fail_at(c, v[i].key, "is listed twice");
			path_pop(c, old);
			free(v);
			return -EINVAL;
		}
	}
	*out = v;
	*n = k;
	return 0;
}

/* --- sets ---------------------------------------------------------------- */

static int fam_index(int family)
{
	return family == AF_INET6 ? 1 : 0;
}

static int cidr_cmp(const void *pa, const void *pb)
{
	const struct weft_cidr *a = pa, *b = pb;
	int r = weft_ip_cmp(&a->ip, &b->ip);

	if (r)
		return r;
	return a->prefixlen < b->prefixlen ? -1 : a->prefixlen > b->prefixlen;
}

/* Sort, deduplicate and drop every element another one covers. After the
 * sort a covering prefix comes before what it covers, and the kept elements
 * are disjoint, so only the last kept one can cover the next. */
static size_t cidrs_normalize(struct weft_cidr *v, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		weft_cidr_mask(&v[i]);
	qsort(v, n, sizeof(*v), cidr_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && weft_cidr_covers(&v[k - 1], &v[i]))
			continue;
		v[k++] = v[i];
	}
	return k;
}

static void cset_add(struct cset *s, const struct weft_cidr *e)
{
	if (s->s.n_elems == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->s.elems = wrealloc(s->s.elems, s->cap * sizeof(*s->s.elems));
	}
	s->s.elems[s->s.n_elems++] = *e;
}

/* The set for origin text and family, created on first use. The name is
 * the prefix, the family digit and 48 bits of FNV-1a over the origin. */
static int get_set(struct cc *c, enum cset_type type, int family, const char *origin, struct cset **out)
{
	static const char letters[] = {[CSET_TAG] = 't', [CSET_SEL] = 's', [CSET_NETS] = 'n'};
	char name[WEFT_ACL_NAME_MAX + 1];
	struct cset *s;

	snprintf(name, sizeof(name), "w%c%c-%012llx", letters[type], family == AF_INET6 ? '6' : '4',
		 (unsigned long long)(fnv1a64(origin) & 0xffffffffffffULL));
	s = smap_get(&c->sets, name);
	if (s) {
		if (!streq(s->s.origin, origin))
			return fail(c, "set name %s is the same for \"%s\" and \"%s\" (hash collision)", name,
				    s->s.origin, origin);
		*out = s;
		return 0;
	}
	s = wcalloc(1, sizeof(*s));
	s->s.name = wstrdup(name);
	s->s.origin = wstrdup(origin);
	s->s.family = family;
	s->type = type;
	pvec_push(&c->all_sets, s);
	smap_put(&c->sets, s->s.name, s);
	*out = s;
	return 0;
}

static int tag_set(struct cc *c, const char *tag, int family, struct cset **out)
{
	struct ctag *t = smap_get(&c->tags, tag);
	_cleanup_free_ char *origin = NULL;
	int r;

	if (!t) {
		t = wcalloc(1, sizeof(*t));
		t->tag = wstrdup(tag);
		pvec_push(&c->all_tags, t);
		smap_put(&c->tags, t->tag, t);
	}
	if (t->set[fam_index(family)]) {
		*out = t->set[fam_index(family)];
		return 0;
	}
	origin = wasprintf("tag %s", tag);
	r = get_set(c, CSET_TAG, family, origin, &t->set[fam_index(family)]);
	if (r < 0)
		return r;
	*out = t->set[fam_index(family)];
	return 0;
}

static int sel_set(struct cc *c, struct csel *s, int family, struct cset **out)
{
	_cleanup_free_ char *origin = NULL;
	int r;

	if (!s->set[fam_index(family)]) {
		origin = wasprintf("selector %s", s->text);
		r = get_set(c, CSET_SEL, family, origin, &s->set[fam_index(family)]);
		if (r < 0)
			return r;
	}
	*out = s->set[fam_index(family)];
	return 0;
}

/* A nets set holds exactly the (normalized) nets of one family. */
static int nets_set(struct cc *c, const struct weft_cidr *nets, size_t n, int family, struct cset **out)
{
	struct weft_buf b = {0};
	struct cset *s;
	int r;

	weft_buf_printf(&b, "nets ");
	for (size_t i = 0; i < n; i++) {
		char buf[WEFT_CIDR_STRLEN];
		weft_buf_printf(&b, "%s%s", i ? "," : "", weft_cidr_str(&nets[i], buf, sizeof(buf)));
	}
	r = get_set(c, CSET_NETS, family, b.data, &s);
	weft_buf_free(&b);
	if (r < 0)
		return r;
	if (s->s.n_elems == 0)
		for (size_t i = 0; i < n; i++)
			cset_add(s, &nets[i]);
	*out = s;
	return 0;
}

/* --- selectors ----------------------------------------------------------- */

static int get_selector(struct cc *c, const char *text, struct csel **out)
{
	struct weft_selector *sel = NULL;
	_cleanup_free_ char *why = NULL, *canon = NULL;
	struct csel *s;

	/* validate() also refuses the empty selector, which parse() would read
	 * as all(): for notSelector that would silently mean "nothing". */
	if (weft_selector_validate(text, &why) < 0)
		return fail(c, "\"%s\" %s", text, why ? why : "is not a valid selector");
	if (weft_selector_parse(text, &sel, NULL) < 0)
		return fail(c, "\"%s\" is not a valid selector", text);
	canon = weft_selector_str(sel);
	s = smap_get(&c->sels, canon);
	if (s) {
		weft_selector_free(sel);
		*out = s;
		return 0;
	}
	s = wcalloc(1, sizeof(*s));
	s->text = TAKE_PTR(canon);
	s->sel = sel;
	s->all = weft_selector_is_all(sel);
	pvec_push(&c->all_sels, s);
	smap_put(&c->sels, s->text, s);
	*out = s;
	return 0;
}

/* --- rules ----------------------------------------------------------------- */

struct side {
	const char *tag, *not_tag;
	struct csel *sel, *not_sel;
	struct weft_cidr *nets, *not_nets;
	size_t n_nets, n_not_nets;
	struct weft_acl_portrange *ports, *not_ports;
	size_t n_ports, n_not_ports;
};

static void side_clear(struct side *s)
{
	free(s->nets);
	free(s->not_nets);
	free(s->ports);
	free(s->not_ports);
}

static bool side_has_addr(const struct side *s)
{
	return s->tag || s->not_tag || s->sel || s->not_sel || s->n_nets || s->n_not_nets;
}

static int protocol_number(const cJSON *v)
{
	static const struct {
		const char *name;
		int num;
	} names[] = {{"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"icmpv6", 58}, {"sctp", 132}, {"udplite", 136}};
	long n;

	if (cJSON_IsString(v) && v->valuestring) {
		for (size_t i = 0; i < ARRAY_SIZE(names); i++)
			if (streq(v->valuestring, names[i].name))
				return names[i].num;
		return -1;
	}
	return as_int(v, 0, 255, &n) ? (int)n : -1;
}

static int want_protocol(struct cc *c, const cJSON *rule, const char *name, int *out)
{
	const cJSON *v = get(rule, name);

	*out = -1;
	if (!v)
		return 0;
	*out = protocol_number(v);
	if (*out < 0)
		return fail_at(c, name, "is not a protocol (tcp, udp, icmp, icmpv6, sctp, udplite or 0..255)");
	return 0;
}

static int want_icmp(struct cc *c, const cJSON *rule, const char *name, int *type, int *code)
{
	static const char *const fields[] = {"type", "code", NULL};
	const cJSON *v = get(rule, name), *t, *k;
	size_t old;
	long n;
	int r = 0;

	*type = *code = -1;
	if (!v)
		return 0;
	old = path_push(c, name);
	r = check_fields(c, v, fields);
	if (r == 0) {
		t = get(v, "type");
		k = get(v, "code");
		if (!t || !as_int(t, 0, 255, &n))
			r = fail_at(c, "type", "is required and must be 0..255");
		else
			*type = (int)n;
		if (r == 0 && k) {
			if (!as_int(k, 0, 255, &n))
				r = fail_at(c, "code", "must be 0..255");
			else
				*code = (int)n;
		}
	}
	path_pop(c, old);
	return r;
}

static int range_cmp(const void *pa, const void *pb)
{
	const struct weft_acl_portrange *a = pa, *b = pb;

	if (a->lo != b->lo)
		return a->lo < b->lo ? -1 : 1;
	return a->hi < b->hi ? -1 : a->hi > b->hi;
}

/* Ports: numbers or "lo:hi"; sorted, overlapping and adjacent ranges
 * merged (the same set of ports, one canonical way). */
static int want_ports(struct cc *c, const cJSON *side, const char *name, struct weft_acl_portrange **out, size_t *n)
{
	const cJSON *l, *p;
	struct weft_acl_portrange *v;
	size_t k = 0, i = 0, m = 0;
	int r;

	r = want_array(c, side, name, &l);
	if (r < 0 || !l || cJSON_GetArraySize(l) == 0)
		return r;
	v = wcalloc((size_t)cJSON_GetArraySize(l), sizeof(*v));
	cJSON_ArrayForEach(p, l) {
		long lo, hi;
		bool ok;

		if (cJSON_IsString(p) && p->valuestring) {
			const char *colon = strchr(p->valuestring, ':');
			int64_t a, b;
			_cleanup_free_ char *left = colon ? wstrndup(p->valuestring, (size_t)(colon - p->valuestring)) : NULL;

			ok = colon && weft_parse_int64(left, 0, 65535, &a) == 0 && weft_parse_int64(colon + 1, 0, 65535, &b) == 0 &&
			     a <= b;
			lo = ok ? (long)a : 0;
			hi = ok ? (long)b : 0;
		} else {
			ok = as_int(p, 0, 65535, &lo);
			hi = lo;
		}
		if (!ok) {
			size_t old = path_push(c, name);
			path_push_index(c, i);
			fail(c, "is not a port (0..65535) or a port range \"lo:hi\"");
			path_pop(c, old);
			free(v);
			return -EINVAL;
		}
		v[k].lo = (uint16_t)lo;
		v[k].hi = (uint16_t)hi;
		k++;
		i++;
	}
	qsort(v, k, sizeof(*v), range_cmp);
	for (i = 0; i < k; i++) {
		if (m && (uint32_t)v[i].lo <= (uint32_t)v[m - 1].hi + 1) {
			if (v[i].hi > v[m - 1].hi)
				v[m - 1].hi = v[i].hi;
			continue;
		}
		v[m++] = v[i];
	}
	*out = v;
	*n = m;
	return 0;
}

static int want_nets(struct cc *c, const cJSON *side, const char *name, int ipv, struct weft_cidr **out, size_t *n)
{
	const cJSON *l, *e;
	struct weft_cidr *v;
	size_t k = 0;
	int r;

	r = want_array(c, side, name, &l);
	if (r < 0 || !l || cJSON_GetArraySize(l) == 0)
		return r;
	v = wcalloc((size_t)cJSON_GetArraySize(l), sizeof(*v));
	cJSON_ArrayForEach(e, l) {
		struct weft_cidr x;
		const char *why = NULL;

		if (!cJSON_IsString(e) || !e->valuestring)
			why = "is not a string";
		else if (strchr(e->valuestring, '/') ? weft_cidr_parse(e->valuestring, true, &x) < 0
						     : weft_cidr_parse_host(e->valuestring, &x) < 0)
			why = "is not a CIDR (with the host bits zero)";
		else if (ipv && (x.ip.family == AF_INET6) != (ipv == 6))
			why = "is not of the rule's ipVersion";
		if (why) {
			size_t old = path_push(c, name);
			path_push_index(c, k);
			fail(c, "%s", why);
			path_pop(c, old);
			free(v);
			return -EINVAL;
		}
		v[k++] = x;
	}
	*out = v;
	*n = cidrs_normalize(v, k);
	return 0;
}

static int want_tag(struct cc *c, const cJSON *side, const char *name, const char **out)
{
	int r = want_string(c, side, name, false, out);

	if (r == 0 && *out && !safe_name(*out, 253))
		return fail_at(c, name, "\"%s\" is not a valid tag", *out);
	return r;
}

static int want_selector(struct cc *c, const cJSON *side, const char *name, struct csel **out)
{
	const char *text;
	size_t old;
	int r;

	*out = NULL;
	r = want_string(c, side, name, false, &text);
	if (r < 0 || !text)
		return r;
	old = path_push(c, name);
	r = get_selector(c, text, out);
	path_pop(c, old);
	return r;
}

static int read_side(struct cc *c, const cJSON *rule, const char *name, int ipv, struct side *s)
{
	static const char *const fields[] = {"tag", "notTag", "nets", "notNets", "selector", "notSelector", "ports", "notPorts", NULL};
	const cJSON *e = get(rule, name);
	size_t old;
	int r;

	if (!e)
		return 0;
	old = path_push(c, name);
	r = check_fields(c, e, fields);
	if (r == 0)
		r = want_tag(c, e, "tag", &s->tag);
	if (r == 0)
		r = want_tag(c, e, "notTag", &s->not_tag);
	if (r == 0)
		r = want_nets(c, e, "nets", ipv, &s->nets, &s->n_nets);
	if (r == 0)
		r = want_nets(c, e, "notNets", ipv, &s->not_nets, &s->n_not_nets);
	if (r == 0)
		r = want_selector(c, e, "selector", &s->sel);
	if (r == 0)
		r = want_selector(c, e, "notSelector", &s->not_sel);
	if (r == 0)
		r = want_ports(c, e, "ports", &s->ports, &s->n_ports);
	if (r == 0)
		r = want_ports(c, e, "notPorts", &s->not_ports, &s->n_not_ports);
	path_pop(c, old);
	return r;
}

/* A log prefix like "weft P WEB i2 ": kind letter, owner name (cut with a
 * '~' when too long), direction letter and rule number. */
static char *log_prefix(char kind, const char *owner, char dir, size_t num)
{
	char tail[32];
	size_t room, len = strlen(owner);

	snprintf(tail, sizeof(tail), " %c%zu ", dir, num);
	room = WEFT_ACL_LOG_PREFIX_MAX - strlen("weft P ") - strlen(tail);
	if (len <= room)
		return wasprintf("weft %c %s%s", kind, owner, tail);
	return wasprintf("weft %c %.*s~%s", kind, (int)room - 1, owner, tail);
}

static void chain_push(struct cchain *ch, const struct weft_acl_rule *r)
{
	if (ch->c.n_rules == ch->cap) {
		ch->cap = ch->cap ? ch->cap * 2 : 4;
		ch->c.rules = wrealloc(ch->c.rules, ch->cap * sizeof(*ch->c.rules));
	}
	ch->c.rules[ch->c.n_rules++] = *r;
}

static void addr_push(struct weft_acl_rule *r, bool src, bool negate, const struct cset *s)
{
	r->addrs = wrealloc(r->addrs, (r->n_addrs + 1) * sizeof(*r->addrs));
	r->addrs[r->n_addrs].src = src;
	r->addrs[r->n_addrs].negate = negate;
	r->addrs[r->n_addrs].set = wstrdup(s->s.name);
	r->n_addrs++;
}

/* The address matches of one side for one family. Returns 1 when the rule
 * can match packets of that family, 0 when it cannot (its nets have no
 * address of the family), or a negative errno. */
static int side_addrs(struct cc *c, const struct side *s, bool src, int family, struct weft_acl_rule *r)
{
	struct cset *set;
	int rc;

	if (s->tag) {
		if ((rc = tag_set(c, s->tag, family, &set)) < 0)
			return rc;
		addr_push(r, src, false, set);
	}
	if (s->not_tag) {
		if ((rc = tag_set(c, s->not_tag, family, &set)) < 0)
			return rc;
		addr_push(r, src, true, set);
	}
	if (s->sel) {
		if ((rc = sel_set(c, s->sel, family, &set)) < 0)
			return rc;
		addr_push(r, src, false, set);
	}
	if (s->not_sel) {
		if ((rc = sel_set(c, s->not_sel, family, &set)) < 0)
			return rc;
		addr_push(r, src, true, set);
	}
	for (int neg = 0; neg < 2; neg++) {
		const struct weft_cidr *v = neg ? s->not_nets : s->nets;
		size_t n = neg ? s->n_not_nets : s->n_nets, first = n, k = 0;

		for (size_t i = 0; i < n; i++) {
			if (v[i].ip.family == family) {
				if (first == n)
					first = i;
				k++;
			}
		}
		if (n && !k) {
			/* nets without an address of this family never hold;
			 * notNets without one always hold. */
			if (!neg)
				return 0;
			continue;
		}
		if (!n)
			continue;
		/* Normalized: the elements of one family are contiguous. */
		if ((rc = nets_set(c, v + first, k, family, &set)) < 0)
			return rc;
		addr_push(r, src, neg, set);
	}
	return 1;
}

static void rule_free_fields(struct weft_acl_rule *r)
{
	for (size_t i = 0; i < r->n_addrs; i++)
		free(r->addrs[i].set);
	free(r->addrs);
	free(r->sports);
	free(r->not_sports);
	free(r->dports);
	free(r->not_dports);
	free(r->origin);
	free(r->log_prefix);
}

static bool port_proto(int p)
{
	return p == 6 || p == 17 || p == 132 || p == 136;
}

struct owner {
	bool profile;
	const char *name;
	bool ingress;
};

static int compile_rule(struct cc *c, const cJSON *rule, const struct owner *o, size_t num, struct cchain *ch)
{
	static const char *const fields[] = {"action", "protocol", "notProtocol", "ipVersion", "icmp", "notICMP", "source", "destination", NULL};
	static const char *const actions[] = {"allow", "deny", "log", "pass"};
	struct side src = {0}, dst = {0};
	struct weft_acl_rule base = {0};
	const char *action;
	const cJSON *ipvj;
	int families[2], nf = 0, ipv = 0, r, act = -1;
	long n;

	r = check_fields(c, rule, fields);
	if (r < 0)
		return r;
	if ((r = want_string(c, rule, "action", true, &action)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++)
		if (streq(action, actions[i]))
			act = (int)i;
	if (act < 0)
		return fail_at(c, "action", "\"%s\" is not allow, deny, log or pass", action);
	if (act == WEFT_ACL_PASS && o->profile)
		return fail_at(c, "action", "\"pass\" is only allowed in policies");
	base.action = (enum weft_acl_action)act;
	if ((r = want_protocol(c, rule, "protocol", &base.proto)) < 0 ||
	    (r = want_protocol(c, rule, "notProtocol", &base.not_proto)) < 0)
		return r;
	ipvj = get(rule, "ipVersion");
	if (ipvj) {
		if (!as_int(ipvj, 4, 6, &n) || n == 5)
			return fail_at(c, "ipVersion", "is not 4 or 6");
		ipv = (int)n;
		if ((ipv == 4 && base.proto == 58) || (ipv == 6 && base.proto == 1))
			return fail_at(c, "protocol", "does not go with ipVersion %d", ipv);
	}
	if ((r = want_icmp(c, rule, "icmp", &base.icmp_type, &base.icmp_code)) < 0 ||
	    (r = want_icmp(c, rule, "notICMP", &base.not_icmp_type, &base.not_icmp_code)) < 0)
		return r;
	if ((base.icmp_type >= 0 || base.not_icmp_type >= 0) && base.proto != 1 && base.proto != 58)
		return fail_at(c, base.icmp_type >= 0 ? "icmp" : "notICMP", "needs protocol icmp or icmpv6");
	r = read_side(c, rule, "source", ipv, &src);
	if (r == 0)
		r = read_side(c, rule, "destination", ipv, &dst);
	if (r == 0 && (src.n_ports || src.n_not_ports || dst.n_ports || dst.n_not_ports) && !port_proto(base.proto))
		r = fail(c, "ports need protocol tcp, udp, sctp or udplite");
	if (r < 0)
		goto out;

	if (ipv)
		families[nf++] = ipv == 4 ? AF_INET : AF_INET6;
	else if (base.proto == 1)
		families[nf++] = AF_INET;
	else if (base.proto == 58)
		families[nf++] = AF_INET6;
	else {
		families[nf++] = AF_INET;
		families[nf++] = AF_INET6;
	}
	if (nf == 2 && !side_has_addr(&src) && !side_has_addr(&dst)) {
		nf = 1;
		families[0] = 0;
	}
	for (int i = 0; i < nf; i++) {
		struct weft_acl_rule x = base;
		int ok;

		x.family = families[i];
		x.addrs = NULL;
		x.n_addrs = 0;
		ok = families[i] ? side_addrs(c, &src, true, families[i], &x) : 1;
		if (ok > 0 && families[i])
			ok = side_addrs(c, &dst, false, families[i], &x);
		if (ok <= 0) {
			rule_free_fields(&x);
			if (ok < 0) {
				r = ok;
				goto out;
			}
			continue;
		}
#define DUP_PORTS(field, nfield, from, nfrom)                                                  \
	do {                                                                                  \
		x.nfield = (nfrom);                                                           \
		x.field = (nfrom) ? wmemdup((from), (nfrom) * sizeof(*(from))) : NULL;        \
	} while (0)
		DUP_PORTS(sports, n_sports, src.ports, src.n_ports);
		DUP_PORTS(not_sports, n_not_sports, src.not_ports, src.n_not_ports);
		DUP_PORTS(dports, n_dports, dst.ports, dst.n_ports);
		DUP_PORTS(not_dports, n_not_dports, dst.not_ports, dst.n_not_ports);
#undef DUP_PORTS
		x.origin = wasprintf("%s %s %s rule %zu", o->profile ? "profile" : "policy", o->name,
				     o->profile ? (o->ingress ? "inbound" : "outbound") : (o->ingress ? "ingress" : "egress"), num);
		x.log_prefix = x.action == WEFT_ACL_LOG
				       ? log_prefix(o->profile ? 'P' : 'G', o->name, o->ingress ? 'i' : (o->profile ? 'o' : 'e'), num)
				       : NULL;
		chain_push(ch, &x);
	}
out:
	side_clear(&src);
	side_clear(&dst);
	return r;
}

static int compile_chain(struct cc *c, const cJSON *spec, const char *field, const struct owner *o, struct cchain **out)
{
	const char *prefix = o->profile ? (o->ingress ? "wpi" : "wpo") : (o->ingress ? "wgi" : "wge");
	char name[WEFT_ACL_NAME_MAX + 1];
	const cJSON *rules = NULL, *rule;
	struct cchain *ch;
	size_t old, i = 0;
	int r = 0;

	snprintf(name, sizeof(name), "%s-%012llx", prefix, (unsigned long long)(fnv1a64(o->name) & 0xffffffffffffULL));
	ch = smap_get(&c->chains, name);
	if (ch)
		return fail(c, "chain name %s is the same as for %s (hash collision)", name, ch->c.origin);
	if (field && (r = want_array(c, spec, field, &rules)) < 0)
		return r;
	ch = wcalloc(1, sizeof(*ch));
	ch->c.name = wstrdup(name);
	ch->c.origin = wasprintf("%s %s %s", o->profile ? "profile" : "policy", o->name,
				 o->profile ? (o->ingress ? "inbound" : "outbound") : (o->ingress ? "ingress" : "egress"));
	ch->c.kind = o->profile ? WEFT_ACL_CHAIN_PROFILE : WEFT_ACL_CHAIN_POLICY;
	ch->c.ingress = o->ingress;
	pvec_push(&c->all_chains, ch);
	smap_put(&c->chains, ch->c.name, ch);
	if (!rules) {
		*out = ch;
		return 0;
	}
	old = path_push(c, field);
	cJSON_ArrayForEach(rule, rules) {
		size_t o2 = path_push_index(c, i);
		r = compile_rule(c, rule, o, i + 1, ch);
		path_pop(c, o2);
		if (r < 0)
			break;
		i++;
	}
	path_pop(c, old);
	if (r < 0)
		return r;
	*out = ch;
	return 0;
}

/* --- resources ------------------------------------------------------------- */

static const char *res_name(const struct weft_resource *r)
{
	const cJSON *md;

	if (r->name)
		return r->name;
	md = cJSON_GetObjectItemCaseSensitive(r->doc, "metadata");
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name"));
}

static int begin(struct cc *c, const struct weft_resource *r, const cJSON **spec, const cJSON **md)
{
	c->kind = weft_kind_info(r->kind)->name;
	c->name = res_name(r);
	path_pop(c, 0);
	if (!c->name)
		return fail(c, "has no name");
	if (!cJSON_IsObject(r->doc))
		return fail(c, "the document is not an object");
	*md = get(r->doc, "metadata");
	*spec = get(r->doc, "spec");
	if (!*spec || !cJSON_IsObject(*spec))
		return fail(c, "spec is missing or not an object");
	if (*md && !cJSON_IsObject(*md))
		return fail(c, "metadata is not an object");
	return 0;
}

/* The spec fields this compiler knows. A field it does not know could
 * narrow what a rule or policy applies to; ignoring it would widen it. */
static const char *const profile_fields[] = {"tags", "labelsToApply", "inboundRules", "outboundRules", NULL};
static const char *const policy_fields[] = {"order", "selector", "ingress", "egress", "types", NULL};

static int read_profile(struct cc *c, const struct weft_resource *res)
{
	const cJSON *spec, *md, *tags, *t;
	struct cprofile *p;
	size_t old, i = 0;
	int r;

	if ((r = begin(c, res, &spec, &md)) < 0)
		return r;
	if (!safe_name(c->name, 253))
		return fail(c, "\"%s\" is not a valid profile name", c->name);
	old = path_push(c, "spec");
	if ((r = check_fields(c, spec, profile_fields)) < 0)
		return r;
	path_pop(c, old);
	p = wcalloc(1, sizeof(*p));
	p->name = c->name;
	pvec_push(&c->all_profiles, p);
	smap_put(&c->profiles, p->name, p);
	old = path_push(c, "spec");
	if ((r = want_array(c, spec, "tags", &tags)) < 0)
		return r;
	p->tags = wcalloc((size_t)cJSON_GetArraySize(tags) + 1, sizeof(*p->tags));
	cJSON_ArrayForEach(t, tags) {
		if (!cJSON_IsString(t) || !t->valuestring || !safe_name(t->valuestring, 253)) {
			path_push(c, "tags");
			path_push_index(c, i);
			return fail(c, "is not a valid tag");
		}
		p->tags[p->n_tags++] = t->valuestring;
		i++;
	}
	if ((r = read_labels(c, spec, "labelsToApply", &p->lta, &p->n_lta)) < 0)
		return r;
	if (!c->no_rules &&
	    ((r = compile_chain(c, spec, "inboundRules", &(struct owner){true, p->name, true}, &p->in)) < 0 ||
	     (r = compile_chain(c, spec, "outboundRules", &(struct owner){true, p->name, false}, &p->out)) < 0))
		return r;
	path_pop(c, old);
	return 0;
}

static int read_policy(struct cc *c, const struct weft_resource *res)
{
	const cJSON *spec, *md, *order, *types, *t;
	struct cpolicy *p;
	const char *text;
	size_t old, i = 0;
	int r;

	if ((r = begin(c, res, &spec, &md)) < 0)
		return r;
	if (!safe_name(c->name, 253))
		return fail(c, "\"%s\" is not a valid policy name", c->name);
	old = path_push(c, "spec");
	if ((r = check_fields(c, spec, policy_fields)) < 0)
		return r;
	path_pop(c, old);
	p = wcalloc(1, sizeof(*p));
	p->name = c->name;
	pvec_push(&c->all_policies, p);
	old = path_push(c, "spec");
	order = get(spec, "order");
	if (order) {
		if (!cJSON_IsNumber(order) || !isfinite(order->valuedouble))
			return fail_at(c, "order", "is not a finite number");
		p->has_order = true;
		p->order = order->valuedouble;
	}
	if ((r = want_string(c, spec, "selector", false, &text)) < 0)
		return r;
	{
		size_t o2 = path_push(c, "selector");
		r = get_selector(c, text ? text : "all()", &p->sel);
		path_pop(c, o2);
		if (r < 0)
			return r;
	}
	if ((r = want_array(c, spec, "types", &types)) < 0)
		return r;
	if (types) {
		cJSON_ArrayForEach(t, types) {
			if (cJSON_IsString(t) && t->valuestring && streq(t->valuestring, "Ingress")) {
				p->ingress = true;
			} else if (cJSON_IsString(t) && t->valuestring && streq(t->valuestring, "Egress")) {
				p->egress = true;
			} else {
				path_push(c, "types");
				path_push_index(c, i);
				return fail(c, "is not Ingress or Egress");
			}
			i++;
		}
	} else {
		const cJSON *eg = get(spec, "egress");
		p->ingress = true;
		p->egress = cJSON_GetArraySize(eg) > 0;
	}
	if (cJSON_GetArraySize(get(spec, "ingress")) > 0 && !p->ingress)
		return fail_at(c, "ingress", "ingress rules need \"Ingress\" in spec.types");
	if (cJSON_GetArraySize(get(spec, "egress")) > 0 && !p->egress)
		return fail_at(c, "egress", "egress rules need \"Egress\" in spec.types");
	/* A policy with a type and no rules still applies: it ends the policies
	 * with a deny. Its chain is then empty. */
	if ((r = compile_chain(c, spec, "ingress", &(struct owner){false, p->name, true}, &p->in)) < 0 ||
	    (r = compile_chain(c, spec, "egress", &(struct owner){false, p->name, false}, &p->out)) < 0)
		return r;
	path_pop(c, old);
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char ch = s[i * 3 + j];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else
				return -EINVAL;
		}
		if (i < 5 && s[i * 3 + 2] != ':')
			return -EINVAL;
		mac[i] = (uint8_t)v;
	}
	return 0;
}

/* A label and its position, to sort by key keeping the first of equal
 * keys (qsort is not stable). */
struct lbl_pos {
	struct weft_label l;
	size_t pos;
};

static int lbl_pos_cmp(const void *pa, const void *pb)
{
	const struct lbl_pos *a = pa, *b = pb;
	int r = strcmp(a->l.key, b->l.key);

	if (r)
		return r;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int read_endpoint(struct cc *c, const struct weft_resource *res, const char *node)
{
	const cJSON *spec, *md, *nets, *profs, *e;
	const char *ep_node, *ifname, *mac, *mode = NULL;
	struct weft_label *own = NULL;
	size_t n_own = 0, old, i = 0;
	struct cep *ep;
	int r;

	if ((r = begin(c, res, &spec, &md)) < 0)
		return r;
	if (!printable_name(c->name))
		return fail(c, "is not a valid endpoint name");
	ep = wcalloc(1, sizeof(*ep));
	ep->name = c->name;
	pvec_push(&c->all_eps, ep);
	if (md) {
		const cJSON *ann = get(md, "annotations");

		old = path_push(c, "metadata");
		if (ann && !cJSON_IsObject(ann))
			return fail_at(c, "annotations", "is not a map");
		if (ann) {
			path_push(c, "annotations");
			r = want_string(c, ann, "weft.io/mode", false, &mode);
			path_pop(c, old);
			if (r < 0)
				return r;
			path_push(c, "metadata");
		}
		r = read_labels(c, md, "labels", &own, &n_own);
		path_pop(c, old);
		if (r < 0)
			return r;
	}
	ep->labels = own; /* freed with ep */
	ep->n_labels = n_own;
	old = path_push(c, "spec");
	if ((r = want_string(c, spec, "node", true, &ep_node)) < 0 ||
	    (r = want_string(c, spec, "hostIfname", false, &ifname)) < 0 ||
	    (r = want_string(c, spec, "mac", false, &mac)) < 0)
		return r;
	if (ifname && (!safe_name(ifname, 15) || streq(ifname, ".") || streq(ifname, "..")))
		return fail_at(c, "hostIfname", "\"%s\" is not an interface name weft can program", ifname);
	if (mac) {
		if (parse_mac(mac, ep->mac) < 0)
			return fail_at(c, "mac", "\"%s\" is not a MAC address", mac);
		ep->has_mac = true;
	}
	if ((r = want_array(c, spec, "ipNetworks", &nets)) < 0)
		return r;
	ep->addrs = wcalloc((size_t)cJSON_GetArraySize(nets) + 1, sizeof(*ep->addrs));
	cJSON_ArrayForEach(e, nets) {
		struct weft_cidr x;

		if (!cJSON_IsString(e) || !e->valuestring ||
		    (weft_cidr_parse(e->valuestring, false, &x) < 0 && weft_cidr_parse_host(e->valuestring, &x) < 0)) {
			path_push(c, "ipNetworks");
			path_push_index(c, i);
			return fail(c, "is not an address with a prefix length");
		}
		x.prefixlen = weft_ip_bits(&x.ip);
		ep->addrs[ep->n_addrs++] = x;
		i++;
	}
	ep->n_addrs = cidrs_normalize(ep->addrs, ep->n_addrs);
	if ((r = want_array(c, spec, "profiles", &profs)) < 0)
		return r;
	ep->profiles = wcalloc((size_t)cJSON_GetArraySize(profs) + 1, sizeof(*ep->profiles));
	i = 0;
	cJSON_ArrayForEach(e, profs) {
		struct cprofile *p;
		bool dup = false;

		if (!cJSON_IsString(e) || !e->valuestring) {
			path_push(c, "profiles");
			path_push_index(c, i);
			return fail(c, "is not a string");
		}
		/* A missing profile contributes nothing: the endpoint fails
		 * closed unless something else allows. */
		p = smap_get(&c->profiles, e->valuestring);
		for (size_t k = 0; p && k < ep->n_profiles; k++)
			dup = dup || ep->profiles[k] == p;
		if (p && !dup)
			ep->profiles[ep->n_profiles++] = p;
		i++;
	}
	path_pop(c, old);

	/* Effective labels: its own, then each profile's labelsToApply in the
	 * endpoint's order, the first giving a key winning. */
	{
		size_t total = n_own, m = 0;
		struct lbl_pos *v;

		for (size_t k = 0; k < ep->n_profiles; k++)
			total += ep->profiles[k]->n_lta;
		if (total > n_own) {
			v = wcalloc(total, sizeof(*v));
			for (size_t k = 0; k < n_own; k++)
				v[m] = (struct lbl_pos){own[k], m}, m++;
			for (size_t k = 0; k < ep->n_profiles; k++)
				for (size_t j = 0; j < ep->profiles[k]->n_lta; j++)
					v[m] = (struct lbl_pos){ep->profiles[k]->lta[j], m}, m++;
			qsort(v, total, sizeof(*v), lbl_pos_cmp);
			ep->labels = wcalloc(total, sizeof(*ep->labels));
			m = 0;
			for (size_t k = 0; k < total; k++)
				if (!m || !streq(ep->labels[m - 1].key, v[k].l.key))
					ep->labels[m++] = v[k].l;
			ep->n_labels = m;
			free(v);
			free(own);
		}
	}
	ep->ifname = ifname;
	ep->local = ifname && (!mode || streq(mode, "routed")) && (!node || streq(node, ep_node));
	return 0;
}

/* --- label groups and policies -------------------------------------------- */

static void group_endpoint(struct cc *c, struct cep *ep)
{
	struct weft_buf b = {0};
	struct lgroup *g;

	for (size_t i = 0; i < ep->n_labels; i++)
		weft_buf_printf(&b, "%zu:%s%zu:%s", strlen(ep->labels[i].key), ep->labels[i].key,
				strlen(ep->labels[i].value ? ep->labels[i].value : ""),
				ep->labels[i].value ? ep->labels[i].value : "");
	if (!b.data)
		weft_buf_append(&b, "", 0);
	g = smap_get(&c->groups, b.data);
	if (!g) {
		g = wcalloc(1, sizeof(*g));
		g->key = weft_buf_steal(&b);
		g->labels.v = ep->labels;
		g->labels.n = ep->n_labels;
		pvec_push(&c->all_groups, g);
		smap_put(&c->groups, g->key, g);
	}
	weft_buf_free(&b);
	pvec_push(&g->eps, ep);
	g->local = g->local || ep->local;
	ep->group = g;
}

/* The key of the label index: key and value with a separator labels
 * cannot hold (a clash would only add candidates, which matching then
 * sorts out). */
static char *kv_key(const char *key, size_t klen, const char *value, size_t vlen)
{
	return wasprintf("%.*s\x01%.*s", (int)klen, key, (int)vlen, value);
}

static void index_groups(struct cc *c)
{
	for (size_t g = 0; g < c->all_groups.n; g++) {
		struct lgroup *grp = c->all_groups.v[g];

		if (grp->local)
			pvec_push(&c->local_groups, grp);
		for (size_t i = 0; i < grp->labels.n; i++) {
			const struct weft_label *l = &grp->labels.v[i];
			const char *v = l->value ? l->value : "";
			char *kv = kv_key(l->key, strlen(l->key), v, strlen(v));
			struct lindex *x = smap_get(&c->lindex, kv);

			if (!x) {
				x = wcalloc(1, sizeof(*x));
				x->kv = kv;
				pvec_push(&c->all_lindex, x);
				smap_put(&c->lindex, x->kv, x);
			} else {
				free(kv);
			}
			pvec_push(&x->groups, grp);
		}
	}
}

static bool sel_key_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '/' || ch == '-';
}

/* Is [s, e) exactly "key == 'value'" (or with double quotes)? */
static bool eq_term(const char *s, const char *e, const char **key, size_t *klen, const char **val, size_t *vlen)
{
	const char *k = s, *q;

	while (s < e && sel_key_char(*s))
		s++;
	if (s == k || e - s < 6 || strncmp(s, " == ", 4) != 0)
		return false;
	s += 4;
	if (*s != '\'' && *s != '"')
		return false;
	q = memchr(s + 1, *s, (size_t)(e - s - 1));
	if (!q || q != e - 1)
		return false;
	*key = k;
	*klen = (size_t)(s - 4 - k);
	*val = s + 1;
	*vlen = (size_t)(q - s - 1);
	return true;
}

/* The groups a selector can match, from its canonical text: when the
 * top level is a conjunction (no || outside parentheses, braces and
 * quotes) with a term "key == 'value'", only groups carrying that label
 * can match. Returns NULL when any group may (the caller then scans all);
 * the candidates are still matched in full, so this only saves work. */
static const struct pvec *sel_candidates(struct cc *c, const struct csel *s)
{
	static const struct pvec none;
	const char *t = s->text, *start = t;
	int depth = 0;
	char quote = 0;
	const char *key = NULL, *val = NULL;
	size_t klen = 0, vlen = 0;
	bool found = false;

	for (const char *p = t;; p++) {
		if (quote) {
			if (!*p)
				return NULL;
			if (*p == quote)
				quote = 0;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '(' || *p == '{') {
			depth++;
		} else if (*p == ')' || *p == '}') {
			depth--;
		} else if (depth == 0 && strncmp(p, " || ", 4) == 0) {
			return NULL;
		} else if (!*p || (depth == 0 && strncmp(p, " && ", 4) == 0)) {
			if (depth == 0 && !found && eq_term(start, p, &key, &klen, &val, &vlen))
				found = true;
			if (!*p)
				break;
			start = p + 4;
			p += 3;
		}
	}
	if (!found)
		return NULL;
	{
		_cleanup_free_ char *kv = kv_key(key, klen, val, vlen);
		const struct lindex *x = smap_get(&c->lindex, kv);
		return x ? &x->groups : &none;
	}
}

static bool sel_matches(const struct csel *s, const struct lgroup *g)
{
	return s->all || weft_selector_match(s->sel, &g->labels);
}

static int policy_cmp(const void *pa, const void *pb)
{
	const struct cpolicy *a = *(struct cpolicy *const *)pa, *b = *(struct cpolicy *const *)pb;

	if (a->has_order != b->has_order)
		return a->has_order ? -1 : 1;
	if (a->has_order && a->order != b->order)
		return a->order < b->order ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int cep_ifname_cmp(const void *pa, const void *pb)
{
	const struct cep *a = *(struct cep *const *)pa, *b = *(struct cep *const *)pb;
	int r = strcmp(a->ifname, b->ifname);

	return r ? r : strcmp(a->name, b->name);
}

static void mark_set_refs(struct cc *c, const struct cchain *ch)
{
	for (size_t i = 0; i < ch->c.n_rules; i++)
		for (size_t j = 0; j < ch->c.rules[i].n_addrs; j++) {
			struct cset *s = smap_get(&c->sets, ch->c.rules[i].addrs[j].set);
			if (s)
				s->used = true;
		}
}

static void use_chain(struct cc *c, struct cchain *ch)
{
	if (!ch->used) {
		ch->used = true;
		mark_set_refs(c, ch);
	}
}

static char **chain_names(struct cchain **v, size_t n)
{
	char **out = wcalloc(n + 1, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = wstrdup(v[i]->c.name);
	return out;
}

static void fill_endpoint(struct cc *c, const struct cep *ep, struct weft_acl_endpoint *e)
{
	const struct lgroup *g = ep->group;
	struct cchain **tmp = wcalloc(g->policies.n + ep->n_profiles + 1, sizeof(*tmp));
	size_t n;

	e->name = wstrdup(ep->name);
	e->ifname = wstrdup(ep->ifname);
	e->addrs = ep->n_addrs ? wmemdup(ep->addrs, ep->n_addrs * sizeof(*ep->addrs)) : NULL;
	e->n_addrs = ep->n_addrs;
	memcpy(e->mac, ep->mac, 6);
	e->has_mac = ep->has_mac;
	for (int dir = 0; dir < 2; dir++) {
		bool in = dir == 0;

		n = 0;
		for (size_t i = 0; i < g->policies.n; i++) {
			const struct cpolicy *p = g->policies.v[i];
			if (in ? p->ingress : p->egress)
				tmp[n++] = in ? p->in : p->out;
		}
		for (size_t i = 0; i < n; i++)
			use_chain(c, tmp[i]);
		if (in) {
			e->in_policies = chain_names(tmp, n);
			e->n_in_policies = n;
		} else {
			e->out_policies = chain_names(tmp, n);
			e->n_out_policies = n;
		}
		n = 0;
		for (size_t i = 0; i < ep->n_profiles; i++)
			tmp[n++] = in ? ep->profiles[i]->in : ep->profiles[i]->out;
		for (size_t i = 0; i < n; i++)
			use_chain(c, tmp[i]);
		if (in) {
			e->in_profiles = chain_names(tmp, n);
			e->n_in_profiles = n;
		} else {
			e->out_profiles = chain_names(tmp, n);
			e->n_out_profiles = n;
		}
	}
	free(tmp);
}

/* --- members ------------------------------------------------------------- */

static void add_members(struct cset *const set[2], const struct cep *ep)
{
	for (size_t i = 0; i < ep->n_addrs; i++) {
		struct cset *s = set[fam_index(ep->addrs[i].ip.family)];
		if (s && s->used)
			cset_add(s, &ep->addrs[i]);
	}
}

static void fill_members(struct cc *c)
{
	/* Tags: each endpoint's profiles' tags, looked up in the tag index. */
	for (size_t i = 0; i < c->all_eps.n; i++) {
		const struct cep *ep = c->all_eps.v[i];

		for (size_t k = 0; k < ep->n_profiles; k++) {
			const struct cprofile *p = ep->profiles[k];
			for (size_t t = 0; t < p->n_tags; t++) {
				struct ctag *tag = smap_get(&c->tags, p->tags[t]);
				if (tag)
					add_members(tag->set, ep);
			}
		}
	}
	/* Selectors: matched once per label group, among the candidates the
	 * label index gives. */
	for (size_t i = 0; i < c->all_sels.n; i++) {
		struct csel *s = c->all_sels.v[i];
		const struct pvec *cand;

		if (!(s->set[0] && s->set[0]->used) && !(s->set[1] && s->set[1]->used))
			continue;
		cand = s->all ? NULL : sel_candidates(c, s);
		if (!cand)
			cand = &c->all_groups;
		for (size_t g = 0; g < cand->n; g++) {
			const struct lgroup *grp = cand->v[g];
			if (!sel_matches(s, grp))
				continue;
			for (size_t e = 0; e < grp->eps.n; e++)
				add_members(s->set, grp->eps.v[e]);
		}
	}
}

/* --- the program ------------------------------------------------------------ */

static int set_name_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct weft_acl_set *)pa)->name, ((const struct weft_acl_set *)pb)->name);
}

static int chain_name_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct weft_acl_chain *)pa)->name, ((const struct weft_acl_chain *)pb)->name);
}

static int failsafe_cmp(const void *pa, const void *pb)
{
	const struct weft_acl_failsafe *a = pa, *b = pb;

	if (a->proto != b->proto)
		return a->proto < b->proto ? -1 : 1;
	return a->port < b->port ? -1 : a->port > b->port;
}

static void cc_free(struct cc *c)
{
	for (size_t i = 0; i < c->all_sets.n; i++) {
		struct cset *s = c->all_sets.v[i];
		free(s->s.name);
		free(s->s.origin);
		free(s->s.elems);
		free(s);
	}
	for (size_t i = 0; i < c->all_chains.n; i++) {
		struct cchain *ch = c->all_chains.v[i];
		for (size_t j = 0; j < ch->c.n_rules; j++)
			rule_free_fields(&ch->c.rules[j]);
		free(ch->c.rules);
		free(ch->c.name);
		free(ch->c.origin);
		free(ch);
	}
	for (size_t i = 0; i < c->all_sels.n; i++) {
		struct csel *s = c->all_sels.v[i];
		weft_selector_free(s->sel);
		free(s->text);
		free(s);
	}
	for (size_t i = 0; i < c->all_tags.n; i++) {
		struct ctag *t = c->all_tags.v[i];
		free(t->tag);
		free(t);
	}
	for (size_t i = 0; i < c->all_profiles.n; i++) {
		struct cprofile *p = c->all_profiles.v[i];
		free(p->tags);
		free(p->lta);
		free(p);
	}
	for (size_t i = 0; i < c->all_policies.n; i++)
		free(c->all_policies.v[i]);
	for (size_t i = 0; i < c->all_eps.n; i++) {
		struct cep *ep = c->all_eps.v[i];
		free(ep->addrs);
		free(ep->profiles);
		free(ep->labels);
		free(ep);
	}
	for (size_t i = 0; i < c->all_groups.n; i++) {
		struct lgroup *g = c->all_groups.v[i];
		free(g->key);
		free(g->eps.v);
		free(g->policies.v);
		free(g);
	}
	for (size_t i = 0; i < c->all_lindex.n; i++) {
		struct lindex *x = c->all_lindex.v[i];
		free(x->kv);
		free(x->groups.v);
		free(x);
	}
	struct pvec *vecs[] = {&c->all_sets, &c->all_chains, &c->all_sels, &c->all_tags, &c->all_profiles,
			       &c->all_policies, &c->all_eps, &c->all_groups, &c->all_lindex, &c->local_groups};
	for (size_t i = 0; i < ARRAY_SIZE(vecs); i++)
		free(vecs[i]->v);
	smap_free(&c->sets);
	smap_free(&c->chains);
	smap_free(&c->sels);
	smap_free(&c->tags);
	smap_free(&c->profiles);
	smap_free(&c->groups);
	smap_free(&c->lindex);
	free(c->err);
}

struct res_ref {
	const struct weft_resource *r;
	const char *name;
};

static int res_cmp(const void *pa, const void *pb)
{
	const struct res_ref *a = pa, *b = pb;

	if (a->r->kind != b->r->kind)
		return a->r->kind < b->r->kind ? -1 : 1;
	if (!a->name || !b->name)
		return a->name ? 1 : b->name ? -1 : 0;
	return strcmp(a->name, b->name);
}

/* weft_acl_options.sets_only: the sets only_sets names by origin, as the
 * rules that reference them would have made them, and used. */
static int probe_sets(struct cc *c, const struct weft_acl_options *opt)
{
	for (size_t i = 0; i < opt->n_only_sets; i++) {
		const struct weft_acl_set *w = &opt->only_sets[i];
		struct cset *s = NULL;
		struct csel *sel = NULL;
		int r;

		if (!w->origin || (w->family != AF_INET && w->family != AF_INET6))
			continue;
		if (startswith(w->origin, "tag ")) {
			r = tag_set(c, w->origin + strlen("tag "), w->family, &s);
		} else if (startswith(w->origin, "selector ")) {
			r = get_selector(c, w->origin + strlen("selector "), &sel);
			if (r == 0)
				r = sel_set(c, sel, w->family, &s);
		} else {
			continue; /* nets: no endpoint changes them */
		}
		if (r < 0)
			return r;
		s->used = true;
	}
	return 0;
}

static int build(struct cc *c, const struct weft_resource *res, size_t n, const struct weft_acl_options *opt,
		 struct weft_acl_program *p)
{
	static const struct weft_acl_failsafe defaults[] = DEFAULT_FAILSAFE;
	_cleanup_free_ struct res_ref *refs = wcalloc(n + 1, sizeof(*refs));
	_cleanup_free_ struct cpolicy **pols = NULL;
	_cleanup_free_ struct cep **local = NULL;
	size_t nr = 0, n_local = 0, k;
	int r;

	for (size_t i = 0; i < n; i++) {
		if (res[i].kind != WEFT_KIND_PROFILE && res[i].kind != WEFT_KIND_POLICY && res[i].kind != WEFT_KIND_ENDPOINT)
			continue;
		refs[nr].r = &res[i];
		refs[nr].name = res_name(&res[i]);
		nr++;
	}
	qsort(refs, nr, sizeof(*refs), res_cmp);
	for (size_t i = 0; i + 1 < nr; i++) {
		if (refs[i].name && refs[i + 1].name && refs[i].r->kind == refs[i + 1].r->kind &&
		    streq(refs[i].name, refs[i + 1].name)) {
			c->kind = weft_kind_info(refs[i].r->kind)->name;
			c->name = refs[i].name;
			return fail(c, "listed twice in the input");
		}
	}
	/* Profiles first (endpoints look them up), then policies, then
	 * endpoints: the kind enum has them in that order. */
	for (size_t i = 0; i < nr; i++) {
		const struct weft_resource *x = refs[i].r;

		if (x->kind == WEFT_KIND_PROFILE)
			r = read_profile(c, x);
		else if (x->kind == WEFT_KIND_POLICY)
			r = c->no_rules ? 0 : read_policy(c, x);
		else
			r = read_endpoint(c, x, opt ? opt->node : NULL);
		if (r < 0)
			return r;
	}
	c->kind = "ACL";
	c->name = "program";
	path_pop(c, 0);
	if (c->no_rules && (r = probe_sets(c, opt)) < 0)
		return r;

	for (size_t i = 0; i < c->all_eps.n; i++)
		group_endpoint(c, c->all_eps.v[i]);

	/* Policies that apply, per label group with a local endpoint. */
	pols = wcalloc(c->all_policies.n + 1, sizeof(*pols));
	if (c->all_policies.n)
		memcpy(pols, c->all_policies.v, c->all_policies.n * sizeof(*pols));
	qsort(pols, c->all_policies.n, sizeof(*pols), policy_cmp);
	/* In policy order, so each group's list comes out sorted. */
	index_groups(c);
	for (size_t i = 0; i < c->all_policies.n; i++) {
		const struct pvec *cand = pols[i]->sel->all ? NULL : sel_candidates(c, pols[i]->sel);

		if (!cand)
			cand = &c->local_groups;
		for (size_t g = 0; g < cand->n; g++) {
			struct lgroup *grp = cand->v[g];
			if (grp->local && sel_matches(pols[i]->sel, grp))
				pvec_push(&grp->policies, pols[i]);
		}
	}

	/* Local endpoints by interface; two records claiming one interface
	 * (a stale one, say) leave it without an entry, so it fails closed
	 * instead of getting a guessed policy. */
	local = wcalloc(c->all_eps.n + 1, sizeof(*local));
	for (size_t i = 0; i < c->all_eps.n; i++)
		if (((struct cep *)c->all_eps.v[i])->local && !c->no_rules) /* sets_only: no entries */
			local[n_local++] = c->all_eps.v[i];
	qsort(local, n_local, sizeof(*local), cep_ifname_cmp);
	p->endpoints = wcalloc(n_local + 1, sizeof(*p->endpoints));
	for (size_t i = 0; i < n_local;) {
		size_t j = i + 1;
		while (j < n_local && streq(local[j]->ifname, local[i]->ifname))
			j++;
		if (j == i + 1)
			fill_endpoint(c, local[i], &p->endpoints[p->n_endpoints++]);
		i = j;
	}

	/* Everything the profiles and policies define, used or not (an
	 * incremental compile of some endpoints: the sets must all be there
	 * to see which of them those endpoints' addresses are members of). */
	if (opt && opt->all_chains)
		for (size_t i = 0; i < c->all_chains.n; i++)
			use_chain(c, c->all_chains.v[i]);

	fill_members(c);

	k = 0;
	for (size_t i = 0; i < c->all_sets.n; i++)
		k += ((struct cset *)c->all_sets.v[i])->used;
	p->sets = wcalloc(k + 1, sizeof(*p->sets));
	for (size_t i = 0; i < c->all_sets.n; i++) {
		struct cset *s = c->all_sets.v[i];
		if (!s->used)
			continue;
		s->s.n_elems = cidrs_normalize(s->s.elems, s->s.n_elems);
		p->sets[p->n_sets++] = s->s;
		memset(&s->s, 0, sizeof(s->s));
	}
	qsort(p->sets, p->n_sets, sizeof(*p->sets), set_name_cmp);

	k = 0;
	for (size_t i = 0; i < c->all_chains.n; i++)
		k += ((struct cchain *)c->all_chains.v[i])->used;
	p->chains = wcalloc(k + 1, sizeof(*p->chains));
	for (size_t i = 0; i < c->all_chains.n; i++) {
		struct cchain *ch = c->all_chains.v[i];
		if (!ch->used)
			continue;
		p->chains[p->n_chains++] = ch->c;
		memset(&ch->c, 0, sizeof(ch->c));
	}
	qsort(p->chains, p->n_chains, sizeof(*p->chains), chain_name_cmp);

	if (opt && opt->failsafe) {
		p->failsafe = wcalloc(opt->n_failsafe + 1, sizeof(*p->failsafe));
		memcpy(p->failsafe, opt->failsafe, opt->n_failsafe * sizeof(*p->failsafe));
		p->n_failsafe = opt->n_failsafe;
	} else {
		p->failsafe = wmemdup(defaults, sizeof(defaults));
		p->n_failsafe = ARRAY_SIZE(defaults);
	}
	qsort(p->failsafe, p->n_failsafe, sizeof(*p->failsafe), failsafe_cmp);
	k = 0;
	for (size_t i = 0; i < p->n_failsafe; i++)
		if (!k || failsafe_cmp(&p->failsafe[k - 1], &p->failsafe[i]) != 0)
			p->failsafe[k++] = p->failsafe[i];
	p->n_failsafe = k;
	return 0;
}

int weft_acl_compile(const struct weft_resource *res, size_t n, const struct weft_acl_options *opt,
		     struct weft_acl_program **out, char **errmsg)
{
	struct cc c = {0};
	struct weft_acl_program *p = wcalloc(1, sizeof(*p));
	int r;

	c.no_rules = opt && opt->sets_only;
	r = build(&c, res, n, opt, p);
	if (r < 0) {
		weft_acl_program_free(p);
		if (errmsg)
			*errmsg = TAKE_PTR(c.err);
		cc_free(&c);
		return r;
	}
	cc_free(&c);
	*out = p;
	return 0;
}
