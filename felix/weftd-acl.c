/* weftd-acl.c - weftd's ACL half: the store's Profiles, Policies and
 * Endpoints compiled for this node (acl/) and programmed through a backend
 * (nftables or ipset + iptables).
 *
 * weftd keeps an in-memory copy of those three kinds, filled by one list at
 * start and kept current by a store watch (each entry remembers its
 * mod_rev, so an event older than what the copy holds is ignored and the
 * list/watch race is harmless). A change arms a deferred sync: a burst of
 * events costs one compile and one backend apply, and the backend only
 * sends the kernel what differs from its previous apply.
 *
 * The common event, an Endpoint coming, changing or going anywhere in the
 * cluster, skips even the backend's whole-program comparison: weftd keeps
 * the program of its last apply and notes the host addresses and the
 * interface of each changed Endpoint (old and new version); the next sync
 * turns just those into a change (weft_acl_program_change) and sends it
 * with weft_acl_update. Anything else (a Profile or Policy, a relist, drift,
 * a failure, an address that is not a host address) makes the next sync a
 * full apply, as does a change the backend cannot make (-EOPNOTSUPP) or
 * the programs differing in more than those addresses and interfaces
 * (-EAGAIN: a chain or set came or went).
 *
 * No window without policy: the backends drop traffic of any weft
 * interface they have no endpoint for (fail closed), and a CNI ADD calls
 * weftd_acl_endpoint_ready() after writing its Endpoint record, which puts
 * the record into the copy and compiles and applies at once, before the
 * plugin gets its answer. A failed apply fails the ADD (CNI code 11).
 *
 * A full relist runs every WEFTD_ACL_RESYNC (or after a broken watch) to
 * repair anything a lost event left behind.
 */
#include "acl/acl.h"
#include "felix/metrics.h"
#include "felix/weftd.h"
#include "lib/util.h"
#include "lib/json.h"
#include "lib/log.h"


#define ACL_RESYNC_NS (60 * 1000000000LL)
#define ACL_RETRY_NS (1000000000LL)

#define ACL_EP_PREFIX "/weft/v1/endpoints/"
/* More endpoint addresses or interfaces than this between two syncs (a
 * burst): the full apply costs no more than the change then. */
#define ACL_CHANGE_MAX 4096

static const char *const acl_prefixes[] = {"/weft/v1/profiles/", "/weft/v1/policies/", ACL_EP_PREFIX};

struct entry {
	char *key;
	int64_t mod_rev;
};

struct weftd_acl {
	struct weftd *d;
	struct weft_loop *loop;
	struct weft_acl_backend *backend;
	/* The copy: entries[i] describes res[i]; sorted by key. */
	struct entry *entries;
	struct weft_resource *res;
	size_t n, cap;
	/* Deletions seen for keys we do not hold, by revision: a list that
	 * raced with the deletion must not bring the key back. Cleared at
	 * each relist. */
	struct entry *tombs;
	size_t n_tombs;
	struct weftd_watch *watch;
	struct weft_source *sync_src, *resync_timer, *retry_timer;
	bool need_relist; /* the last relist failed */
	bool dirty;   /* the copy changed since the last successful apply */
	bool failed;  /* the last apply failed: retry */
	bool verify;  /* WEFT_ACL_VERIFY: check incremental syncs against full compiles */
	bool other_left; /* the other backend's rules could not be removed: retry */
	int64_t verify_inject; /* WEFT_ACL_VERIFY_INJECT (tests): the check that fails; 0 none */
	/* The program of the last successful apply or update (what the
	 * backend holds), NULL after a failure. Since then: full, or only
	 * Endpoints changed and these are their host addresses and
	 * interfaces, old and new versions (duplicates allowed). */
	struct weft_acl_program *last;
	bool full;
	struct weft_cidr *chg_addrs;
	size_t n_chg_addrs, cap_chg_addrs;
	char **chg_ifnames;
	size_t n_chg_ifnames, cap_chg_ifnames;
	/* ... and the changed Endpoints themselves: key and the version the
	 * last sync saw (moved out of the copy; none for a new key), for the
	 * incremental compile (try_endpoints). */
	struct chg_ep *chg_eps;
	size_t n_chg_eps, cap_chg_eps;
	/* ... and the Profiles and Policies whose rules alone changed (their
	 * keys), for try_rules. */
	char **chg_rules;
	size_t n_chg_rules;
	/* How many Endpoint records of the copy hold each host address: a
	 * member leaves a set incrementally only if no other record holds
	 * it. Open addressing, entries never removed (a relist rebuilds it). */
	struct addr_count *ac;
	size_t n_ac, cap_ac;
	/* How many Endpoint records of this node claim each host interface
	 * (sorted by name): a full compile leaves a claimed-twice interface
	 * without an entry, so any event about one is compiled in full. */
	struct if_count *ifc;
	size_t n_ifc;
};

struct if_count {
	char *ifname;
	uint32_t n;
};

struct chg_ep {
	char *key;
	struct weft_resource old;
	bool had_old;
};

struct addr_count {
	struct weft_cidr addr;
	uint32_t n;
	bool used;
};

/* --- what changed since the last sync ------------------------------------------ */

static void changes_reset(struct weftd_acl *a)
{
	for (size_t i = 0; i < a->n_chg_ifnames; i++)
		free(a->chg_ifnames[i]);
	a->n_chg_ifnames = 0;
	a->n_chg_addrs = 0;
	for (size_t i = 0; i < a->n_chg_eps; i++) {
		free(a->chg_eps[i].key);
		weft_resource_clear(&a->chg_eps[i].old);
	}
	a->n_chg_eps = 0;
	for (size_t i = 0; i < a->n_chg_rules; i++)
		free(a->chg_rules[i]);
	a->n_chg_rules = 0;
}

/* The next sync compiles and applies the whole program. */
static void want_full(struct weftd_acl *a)
{
	a->full = true;
	changes_reset(a);
}

/* The host addresses of an Endpoint (spec.ipNetworks, read as
 * acl/compile.c reads them) into *out (malloc'ed); -EINVAL for anything
 * else (not an Endpoint, not a list, a prefix). */
static int ep_addrs(const struct weft_resource *r, struct weft_cidr **out, size_t *n)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(r->doc, "spec"), *nets, *e;
	struct weft_cidr *v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	if (r->kind != WEFT_KIND_ENDPOINT || !cJSON_IsObject(spec))
		return -EINVAL;
	nets = cJSON_GetObjectItemCaseSensitive(spec, "ipNetworks");
	if (nets && !cJSON_IsArray(nets))
		return -EINVAL;
	v = wcalloc((size_t)cJSON_GetArraySize(nets) + 1, sizeof(*v));
	cJSON_ArrayForEach(e, nets) {
		struct weft_cidr x;

		if (!cJSON_IsString(e) || !e->valuestring ||
		    (weft_cidr_parse(e->valuestring, false, &x) < 0 && weft_cidr_parse_host(e->valuestring, &x) < 0) ||
		    x.prefixlen != weft_ip_bits(&x.ip)) {
			free(v);
			return -EINVAL;
		}
		v[k++] = x;
	}
	*out = v;
	*n = k;
	return 0;
}

/* One version of a resource of the copy with its Endpoint host addresses,
 * read once per event (ep_addrs; err < 0: not an Endpoint, or an address
 * that is not a host address). */
struct version {
	const struct weft_resource *r; /* NULL: none */
	struct weft_cidr *addrs;
	size_t n;
	int err;
};

static void version_read(struct version *v, const struct weft_resource *r)
{
	*v = (struct version){.r = r, .err = -EINVAL};
	if (r)
		v->err = ep_addrs(r, &v->addrs, &v->n);
}

/* One version of an Endpoint: its host addresses and spec.hostIfname.
 * Anything unexpected: a full apply. */
static void note_endpoint(struct weftd_acl *a, const struct version *ver)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(ver->r->doc, "spec"), *ifn;
	const struct weft_cidr *v = ver->addrs;
	size_t n = ver->n;

	if (ver->err < 0)
		goto full;
	for (size_t i = 0; i < n; i++) {
		if (a->n_chg_addrs == a->cap_chg_addrs) {
			a->cap_chg_addrs = a->cap_chg_addrs ? 2 * a->cap_chg_addrs : 16;
			a->chg_addrs = wrealloc(a->chg_addrs, a->cap_chg_addrs * sizeof(*a->chg_addrs));
		}
		a->chg_addrs[a->n_chg_addrs++] = v[i];
	}
	ifn = cJSON_GetObjectItemCaseSensitive(spec, "hostIfname");
	if (ifn && !cJSON_IsNull(ifn)) {
		if (!cJSON_IsString(ifn) || !ifn->valuestring)
			goto full;
		if (a->n_chg_ifnames == a->cap_chg_ifnames) {
			a->cap_chg_ifnames = a->cap_chg_ifnames ? 2 * a->cap_chg_ifnames : 16;
			a->chg_ifnames = wrealloc(a->chg_ifnames, a->cap_chg_ifnames * sizeof(*a->chg_ifnames));
		}
		a->chg_ifnames[a->n_chg_ifnames++] = wstrdup(ifn->valuestring);
	}
	if (a->n_chg_addrs > ACL_CHANGE_MAX || a->n_chg_ifnames > ACL_CHANGE_MAX)
		goto full;
	return;
full:
	want_full(a);
}

/* The copy's version of key changes from or to ver (one call per
 * version, ver->r NULL for none): only an Endpoint keeps the next sync a
 * change. */
static void note_change(struct weftd_acl *a, const char *key, const struct version *ver)
{
	if (a->full)
		return;
	if (strncmp(key, ACL_EP_PREFIX, strlen(ACL_EP_PREFIX)) != 0) {
		want_full(a);
		return;
	}
	if (ver->r)
		note_endpoint(a, ver);
}

/* --- the address index ------------------------------------------------------ */

static uint64_t addr_hash(const struct weft_cidr *x)
{
	return weft_fnv1a(x, sizeof(*x), WEFT_FNV_INIT);
}

static struct addr_count *ac_slot(struct addr_count *v, size_t cap, const struct weft_cidr *x)
{
	size_t i = addr_hash(x) & (cap - 1);

	while (v[i].used && memcmp(&v[i].addr, x, sizeof(*x)) != 0)
		i = (i + 1) & (cap - 1);
	return &v[i];
}

static void ac_add(struct weftd_acl *a, const struct weft_cidr *x, int delta)
{
	struct addr_count *e;

	if (2 * (a->n_ac + 1) > a->cap_ac) {
		size_t cap = a->cap_ac ? 2 * a->cap_ac : 256;
		struct addr_count *v = wcalloc(cap, sizeof(*v));

		for (size_t i = 0; i < a->cap_ac; i++)
			if (a->ac[i].used)
				*ac_slot(v, cap, &a->ac[i].addr) = a->ac[i];
		free(a->ac);
		a->ac = v;
		a->cap_ac = cap;
	}
	e = ac_slot(a->ac, a->cap_ac, x);
	if (!e->used) {
		e->used = true;
		e->addr = *x;
		a->n_ac++;
	}
	if (delta < 0 && e->n == 0)
		return;
	e->n = (uint32_t)((int64_t)e->n + delta);
}

static uint32_t ac_get(const struct weftd_acl *a, const struct weft_cidr *x)
{
	const struct addr_count *e = a->cap_ac ? ac_slot(a->ac, a->cap_ac, x) : NULL;

	return e && e->used ? e->n : 0;
}

static void ac_version(struct weftd_acl *a, const struct version *v, int delta)
{
	for (size_t i = 0; v->err == 0 && i < v->n; i++)
		ac_add(a, &v->addrs[i], delta);
}

static bool same_field(const cJSON *x, const cJSON *y, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(x, name), *b = cJSON_GetObjectItemCaseSensitive(y, name);

	return (!a && !b) || (a && b && cJSON_Compare(a, b, true));
}

/* Do two versions of a Profile or Policy differ in their rules alone, so
 * that only their chains change (not which endpoints they apply to, in
 * which order, nor anyone's labels or tags)? */
static bool rules_only(const struct weft_resource *o, const struct weft_resource *n)
{
	const cJSON *os = cJSON_GetObjectItemCaseSensitive(o->doc, "spec");
	const cJSON *ns = cJSON_GetObjectItemCaseSensitive(n->doc, "spec");
	static const char *const profile[] = {"tags", "labelsToApply"};
	static const char *const policy[] = {"order", "selector", "types"};
	const char *const *f = o->kind == WEFT_KIND_PROFILE ? profile : policy;
	size_t nf = o->kind == WEFT_KIND_PROFILE ? ARRAY_SIZE(profile) : ARRAY_SIZE(policy);

	if (o->kind != n->kind || (o->kind != WEFT_KIND_PROFILE && o->kind != WEFT_KIND_POLICY) ||
	    !cJSON_IsObject(os) || !cJSON_IsObject(ns) || !o->name || !n->name || !streq(o->name, n->name))
		return false;
	for (size_t i = 0; i < nf; i++)
		if (!same_field(os, ns, f[i]))
			return false;
	return true;
}

/* spec.hostIfname of an Endpoint of this node, or NULL. */
static const char *local_ifname(const struct weftd_acl *a, const struct weft_resource *r)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(r->doc, "spec");
	const cJSON *node = cJSON_GetObjectItemCaseSensitive(spec, "node");
	const cJSON *ifn = cJSON_GetObjectItemCaseSensitive(spec, "hostIfname");

	if (r->kind != WEFT_KIND_ENDPOINT || !cJSON_IsString(ifn) || !ifn->valuestring || !cJSON_IsString(node) ||
	    !node->valuestring || (a->d->node && !streq(node->valuestring, a->d->node)))
		return NULL;
	return ifn->valuestring;
}

/* Count a claim of ifname up or down; returns the count before. */
static uint32_t ifc_add(struct weftd_acl *a, const char *ifname, int delta)
{
	size_t lo = 0, hi = a->n_ifc;
	uint32_t before;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(a->ifc[mid].ifname, ifname);

		if (c == 0) {
			lo = mid;
			hi = mid + 1;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == hi || strcmp(a->ifc[lo].ifname, ifname) != 0) {
		if (delta < 0)
			return 0;
		a->ifc = wrealloc(a->ifc, (a->n_ifc + 1) * sizeof(*a->ifc));
		memmove(&a->ifc[lo + 1], &a->ifc[lo], (a->n_ifc - lo) * sizeof(*a->ifc));
		a->ifc[lo] = (struct if_count){wstrdup(ifname), 0};
		a->n_ifc++;
	}
	before = a->ifc[lo].n;
	if (delta > 0 || before > 0)
		a->ifc[lo].n = (uint32_t)((int64_t)before + delta);
	if (a->ifc[lo].n == 0) {
		free(a->ifc[lo].ifname);
		memmove(&a->ifc[lo], &a->ifc[lo + 1], (a->n_ifc - lo - 1) * sizeof(*a->ifc));
		a->n_ifc--;
	}
	return before;
}

static void ifc_clear(struct weftd_acl *a)
{
	for (size_t i = 0; i < a->n_ifc; i++)
		free(a->ifc[i].ifname);
	free(a->ifc);
	a->ifc = NULL;
	a->n_ifc = 0;
}

/* The copy's entry for key goes from *old (NULL: none) to nw (NULL:
 * none): the index, the notes for the next sync, and the version the last
 * sync saw kept for the incremental compile. Takes *old over (it is
 * zeroed). */
static void copy_track(struct weftd_acl *a, const char *key, struct weft_resource *old, const struct weft_resource *nw)
{
	struct chg_ep *ce = NULL;
	struct version ov, nv;
	const char *oif = old ? local_ifname(a, old) : NULL, *nif = nw ? local_ifname(a, nw) : NULL;

	version_read(&ov, old);
	version_read(&nv, nw);
	ac_version(a, &ov, -1);
	ac_version(a, &nv, +1);
	/* An interface claimed twice, before or after: compile in full. */
	if (oif && ifc_add(a, oif, -1) >= 2)
		want_full(a);
	if (nif && ifc_add(a, nif, +1) >= 1)
		want_full(a);
	if (!a->full && old && nw && !startswith(key, ACL_EP_PREFIX) && rules_only(old, nw)) {
		bool seen = false;

		for (size_t i = 0; i < a->n_chg_rules && !seen; i++)
			seen = streq(a->chg_rules[i], key);
		if (!seen) {
			a->chg_rules = wrealloc(a->chg_rules, (a->n_chg_rules + 1) * sizeof(*a->chg_rules));
			a->chg_rules[a->n_chg_rules++] = wstrdup(key);
		}
		goto out;
	}
	note_change(a, key, &nv);
	note_change(a, key, &ov);
	if (!a->full) {
		for (size_t i = 0; i < a->n_chg_eps && !ce; i++)
			if (streq(a->chg_eps[i].key, key))
				ce = &a->chg_eps[i];
		if (!ce) {
			if (a->n_chg_eps == a->cap_chg_eps) {
				a->cap_chg_eps = a->cap_chg_eps ? 2 * a->cap_chg_eps : 16;
				a->chg_eps = wrealloc(a->chg_eps, a->cap_chg_eps * sizeof(*a->chg_eps));
			}
			ce = &a->chg_eps[a->n_chg_eps++];
			*ce = (struct chg_ep){.key = wstrdup(key), .had_old = old != NULL};
			if (old) {
				ce->old = *old;
				*old = (struct weft_resource){0};
			}
		}
	}
out:
	free(ov.addrs);
	free(nv.addrs);
	if (old)
		weft_resource_clear(old);
}

/* --- the copy --------------------------------------------------------------- */

static bool acl_key(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(acl_prefixes); i++)
		if (strncmp(key, acl_prefixes[i], strlen(acl_prefixes[i])) == 0)
			return true;
	return false;
}

/* Index of key, or the insertion point as -(pos + 1). */
static ssize_t find(const struct weftd_acl *a, const char *key)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(a->entries[mid].key, key);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(ssize_t)lo - 1;
}

static void remove_at(struct weftd_acl *a, size_t i)
{
	free(a->entries[i].key);
	weft_resource_clear(&a->res[i]);
	memmove(&a->entries[i], &a->entries[i + 1], (a->n - i - 1) * sizeof(*a->entries));
	memmove(&a->res[i], &a->res[i + 1], (a->n - i - 1) * sizeof(*a->res));
	a->n--;
}

static int64_t tomb_rev(const struct weftd_acl *a, const char *key)
{
	for (size_t i = 0; i < a->n_tombs; i++)
		if (streq(a->tombs[i].key, key))
			return a->tombs[i].mod_rev;
	return 0;
}

static void tombs_clear(struct weftd_acl *a)
{
	for (size_t i = 0; i < a->n_tombs; i++)
		free(a->tombs[i].key);
	free(a->tombs);
	a->tombs = NULL;
	a->n_tombs = 0;
}

/* Put (key, value at mod_rev) into the copy unless the copy already holds
 * something as new. An undecodable value removes the key (logged): the
 * store is outside input, and a resource weft cannot read must not keep
 * an older meaning alive. Returns true when the copy changed. */
static bool upsert(struct weftd_acl *a, const char *key, const char *value, size_t len, int64_t mod_rev)
{
	_cleanup_free_ char *err = NULL;
	struct weft_resource r = {0};
	ssize_t i = find(a, key);

	if (i >= 0 && a->entries[i].mod_rev >= mod_rev)
		return false;
	if (i < 0 && tomb_rev(a, key) >= mod_rev)
		return false;
	if (weft_resource_decode(value, len, &r, &err) < 0) {
		log_warn("acl: %s: ignored: %s", key, err ? err : "undecodable");
		if (i >= 0) {
			copy_track(a, key, &a->res[i], NULL);
			remove_at(a, (size_t)i);
			return true;
		}
		return false;
	}
	if (i >= 0) {
		copy_track(a, key, &a->res[i], &r);
		a->res[i] = r;
		a->entries[i].mod_rev = mod_rev;
		return true;
	}
	i = -i - 1;
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 64;
		a->entries = wrealloc(a->entries, a->cap * sizeof(*a->entries));
		a->res = wrealloc(a->res, a->cap * sizeof(*a->res));
	}
	memmove(&a->entries[i + 1], &a->entries[i], (a->n - (size_t)i) * sizeof(*a->entries));
	memmove(&a->res[i + 1], &a->res[i], (a->n - (size_t)i) * sizeof(*a->res));
	a->entries[i] = (struct entry){wstrdup(key), mod_rev};
	a->res[i] = r;
	a->n++;
	copy_track(a, key, NULL, &a->res[i]);
	return true;
}

static bool erase(struct weftd_acl *a, const char *key, int64_t rev)
{
	ssize_t i = find(a, key);

	if (i >= 0 && a->entries[i].mod_rev < rev) {
		copy_track(a, key, &a->res[i], NULL);
		remove_at(a, (size_t)i);
		return true;
	}
	if (i < 0 && tomb_rev(a, key) < rev) {
		a->tombs = wrealloc(a->tombs, (a->n_tombs + 1) * sizeof(*a->tombs));
		a->tombs[a->n_tombs++] = (struct entry){wstrdup(key), rev};
	}
	return false;
}

static void copy_clear(struct weftd_acl *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->entries[i].key);
		weft_resource_clear(&a->res[i]);
	}
	a->n = 0;
	free(a->ac);
	a->ac = NULL;
	a->n_ac = a->cap_ac = 0;
	ifc_clear(a);
}

/* Read the three kinds afresh. The watch is already open, so nothing that
 * happens after the list is lost; entries the list no longer shows are
 * dropped unless the watch brought them in after the list's revision. */
static int relist(struct weftd_acl *a)
{
	struct weft_kv_list lists[ARRAY_SIZE(acl_prefixes)] = {0};
	int r = 0;

	for (size_t p = 0; p < ARRAY_SIZE(acl_prefixes); p++) {
		r = weft_store_list(a->d->store, acl_prefixes[p], &lists[p]);
		if (r < 0) {
			a->need_relist = true;
			log_warn_errno(r, "acl: listing %s: %s", acl_prefixes[p], weft_store_errmsg(a->d->store));
			goto out;
		}
	}
	want_full(a);
	copy_clear(a);
	tombs_clear(a);
	for (size_t p = 0; p < ARRAY_SIZE(acl_prefixes); p++)
		for (size_t i = 0; i < lists[p].n; i++) {
			const struct weft_kv *kv = &lists[p].items[i];

			(void)upsert(a, kv->key, kv->value, kv->value_len, kv->mod_rev);
		}
	a->dirty = true;
	a->need_relist = false;
out:
	for (size_t p = 0; p < ARRAY_SIZE(acl_prefixes); p++)
		weft_kv_list_clear(&lists[p]);
	return r;
}

/* --- compile and apply ------------------------------------------------------ */

/* How many members, chains and endpoint entries c changes. */
static size_t change_size(const struct weft_acl_change *c)
{
	size_t n = c->n_chains + c->n_endpoints + c->n_endpoints_removed;

	for (size_t i = 0; i < c->n_sets; i++)
		n += c->sets[i].n_add + c->sets[i].n_del;
	return n;
}

/* Where the Policies and Profiles start in the copy: it is sorted by key,
 * and they follow the Endpoints ("/weft/v1/endpoints/" <
 * "/weft/v1/policies/" < "/weft/v1/profiles/"). */
static size_t rules_start(const struct weftd_acl *a)
{
	ssize_t b = find(a, "/weft/v1/policies/");

	return b < 0 ? (size_t)(-b - 1) : (size_t)b;
}

static void declare_metrics(struct weftd_metrics *m)
{
	weftd_metric_declare(m, "weft_acl_applies_total", "counter", "ACL programs applied to the kernel");
	weftd_metric_declare(m, "weft_acl_apply_errors_total", "counter", "ACL applies that failed");
	weftd_metric_declare(m, "weft_acl_updates_total", "counter",
			     "ACL syncs by how the kernel got them: change (only what endpoint events changed), "
			     "full (the whole program to the backend), none (endpoint events that changed nothing)");
	weftd_metric_declare(m, "weft_acl_update_fallbacks_total", "counter",
			     "endpoint-only ACL syncs applied whole: the backend cannot make the change (unsupported), "
			     "the programs differ in more (program), the update failed (error)");
	weftd_metric_declare(m, "weft_acl_verify_failures_total", "counter",
			     "incremental ACL syncs that differed from a full compile (WEFT_ACL_VERIFY=1 only)");
	weftd_metric_declare(m, "weft_acl_compiles_total", "counter",
			     "ACL syncs by what was compiled: endpoints (Profiles and Policies with only the changed "
			     "Endpoints), members (the changed Endpoints have no entry on this node: their Profiles' "
			     "tags and labels and the programmed sets alone, no rule), rules (Profiles and Policies "
			     "whose rules alone changed), full (everything)");
	weftd_metric_declare(m, "weft_acl_apply_seconds", "gauge", "duration of the last ACL kernel batch");
	weftd_metric_declare(m, "weft_acl_compile_seconds", "gauge", "duration of the last ACL compile");
	weftd_metric_declare(m, "weft_acl_endpoints", "gauge", "endpoints of this node with ACLs programmed");
	weftd_metric_declare(m, "weft_acl_sets", "gauge", "address sets programmed");
	weftd_metric_declare(m, "weft_acl_chains", "gauge", "profile and policy chains programmed");
	weftd_metric_declare(m, "weft_acl_set_members", "gauge", "set elements programmed");
	weftd_metric_declare(m, "weft_store_events_total", "counter", "store watch events handled");
}

/* The change from a->last to p for the endpoint events noted since, sent
 * with weft_acl_update. Returns 1 when p is in the kernel that way (*kind
 * says how), 0 when p must be applied whole, or a negative errno
 * (logged) from an update that failed, p to be applied whole too. */
static int try_change(struct weftd_acl *a, const struct weft_acl_program *p, struct weft_acl_stats *st,
		      const char **kind)
{
	struct weft_acl_change chg = {0};
	_cleanup_free_ char *err = NULL;
	int r;

	if (!a->last || a->full || a->failed || a->n_chg_rules)
		return 0;
	r = weft_acl_program_change(a->last, p, a->chg_addrs, a->n_chg_addrs, a->chg_ifnames, a->n_chg_ifnames, &chg);
	if (r < 0) {
		if (r == -EAGAIN)
			log_debug("acl: the programs differ in more than %zu endpoint addresses and %zu interfaces: "
				  "applying the whole program", a->n_chg_addrs, a->n_chg_ifnames);
		else
			log_warn_errno(r, "acl: computing the change for %zu endpoint addresses and %zu interfaces "
					  "failed: applying the whole program", a->n_chg_addrs, a->n_chg_ifnames);
		weftd_metric_add(a->d->metrics, "weft_acl_update_fallbacks_total", "reason=\"program\"", 1);
		return 0;
	}
	if (change_size(&chg) == 0) {
		memset(st, 0, sizeof(*st));
		*kind = "none";
		weft_acl_change_clear(&chg);
		return 1;
	}
	r = weft_acl_update(a->backend, &chg, st, &err);
	weft_acl_change_clear(&chg);
	if (r == 0) {
		*kind = "change";
		return 1;
	}
	if (r == -EOPNOTSUPP) {
		log_debug("acl: the %s backend cannot make this change: applying the whole program",
			  weft_acl_backend_name(a->backend));
		weftd_metric_add(a->d->metrics, "weft_acl_update_fallbacks_total", "reason=\"unsupported\"", 1);
		return 0;
	}
	log_warn("acl: update (%s) failed: %s; applying the whole program", weft_acl_backend_name(a->backend),
		 err ? err : strerror(-r));
	weftd_metric_add(a->d->metrics, "weft_acl_update_fallbacks_total", "reason=\"error\"", 1);
	return r;
}

/* An incremental sync's change to the backend, then into a->last.
 * Returns 1 when both took it (*kind "change"; "none" for an empty
 * change, nothing sent), 0 to compile everything. */
static int send_change(struct weftd_acl *a, const struct weft_acl_change *c, struct weft_acl_stats *st,
		       const char **kind)
{
	int r;

	if (change_size(c) == 0) {
		memset(st, 0, sizeof(*st));
		*kind = "none";
		return 1;
	}
	r = weft_acl_update(a->backend, c, st, NULL);

	if (r < 0) {
		log_debug("acl: incremental change not taken by the %s backend (%s): compiling everything",
			  weft_acl_backend_name(a->backend), strerror(-r));
		return 0;
	}
	if (weft_acl_program_patch(a->last, c) < 0) {
		/* The kernel has it but our copy cannot follow: start over. */
		log_warn("acl: could not record an incremental change; reloading everything");
		weft_acl_program_free(a->last);
		a->last = NULL;
		return 0;
	}
	*kind = "change";
	return 1;
}

/* Does an Endpoint record of the copy other than the changed ones hold
 * x? The changed ones' current versions are in cur[0..n). */
static bool held_by_others(const struct weftd_acl *a, const struct weft_cidr *x, const struct weft_resource *cur,
			   size_t n)
{
	uint32_t mine = 0;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ struct weft_cidr *v = NULL;
		size_t k;

		if (ep_addrs(&cur[i], &v, &k) < 0)
			return true;
		for (size_t j = 0; j < k; j++)
			mine += memcmp(&v[j], x, sizeof(*x)) == 0;
	}
	return ac_get(a, x) > mine;
}

/* Every chain the endpoint entries of c name is in p. */
static bool chains_known(const struct weft_acl_program *p, const struct weft_acl_change *c)
{
	for (size_t i = 0; i < c->n_endpoints; i++) {
		const struct weft_acl_endpoint *e = &c->endpoints[i];
		char *const *lists[] = {e->in_policies, e->in_profiles, e->out_policies, e->out_profiles};
		size_t lens[] = {e->n_in_policies, e->n_in_profiles, e->n_out_policies, e->n_out_profiles};

		for (size_t l = 0; l < ARRAY_SIZE(lists); l++)
			for (size_t k = 0; k < lens[l]; k++)
				if (!weft_acl_program_chain(p, lists[l][k]))
					return false;
	}
	return true;
}

/* The incremental compile, for a burst of Endpoint events only: compile
 * the Profiles and Policies (all their chains and sets) with just the
 * changed Endpoints (when none of them has an entry on this node, old or
 * new: the Profiles alone, without their rules, and the last program's
 * tag and selector sets), once with the versions the last sync saw and once
 * with the current ones; what differs between the two for the changed
 * addresses and interfaces is what differs between the last program and a
 * full compile now, provided no other record holds one of the addresses
 * that leave a set and every chain a new entry names is programmed
 * already (else 0: the caller compiles everything). Sends the change and
 * patches a->last. Returns 1 when done (*kind "change" or "none"), 0 to
 * fall back. */
static int try_endpoints(struct weftd_acl *a, const char *want_ifname, struct weft_acl_stats *st, const char **kind,
			 int64_t *compile_ns, bool *members_only)
{
	struct weft_acl_options opt = {.node = a->d->node, .all_chains = true};
	struct weft_acl_program *po = NULL, *pn = NULL;
	struct weft_resource *ov = NULL, *nv = NULL;
	struct weft_acl_change chg = {0}, filt = {0};
	struct weft_acl_set_change *sets = NULL;
	size_t from, no, nn, n_eps = 0;
	int64_t t0 = weft_now_ns();
	bool remote = true; /* every changed endpoint, old and new, has no entry on this node */
	int done = 0;

	if (!a->last || a->full || a->failed || a->n_chg_eps == 0 || a->n_chg_rules)
		return 0;
	/* The arrays below borrow the copy's resources. */
	from = rules_start(a);
	ov = wcalloc(a->n - from + a->n_chg_eps + 1, sizeof(*ov));
	nv = wcalloc(a->n - from + a->n_chg_eps + 1, sizeof(*nv));
	no = nn = 0;
	for (size_t i = 0; i < a->n_chg_eps; i++) {
		ssize_t k = find(a, a->chg_eps[i].key);

		if (a->chg_eps[i].had_old) {
			ov[no++] = a->chg_eps[i].old;
			remote = remote && !local_ifname(a, &a->chg_eps[i].old);
		}
		if (k >= 0) {
			nv[nn++] = a->res[k];
			remote = remote && !local_ifname(a, &a->res[k]);
		}
	}
	n_eps = nn;
	*members_only = remote && !want_ifname;
	if (*members_only) {
		/* Endpoints without an entry here (of other nodes) change set
		 * members alone: the sets are the last program's, the
		 * Profiles give the tags and labels, and no rule is read. */
		opt.all_chains = false;
		opt.sets_only = true;
		opt.only_sets = a->last->sets;
		opt.n_only_sets = a->last->n_sets;
		for (size_t i = from; i < a->n; i++)
			if (a->res[i].kind == WEFT_KIND_PROFILE) {
				ov[no++] = a->res[i];
				nv[nn++] = a->res[i];
			}
	} else {
		memcpy(ov + no, a->res + from, (a->n - from) * sizeof(*ov));
		memcpy(nv + nn, a->res + from, (a->n - from) * sizeof(*nv));
		no += a->n - from;
		nn += a->n - from;
	}
	if (weft_acl_compile(ov, no, &opt, &po, NULL) < 0 || weft_acl_compile(nv, nn, &opt, &pn, NULL) < 0)
		goto out;
	*compile_ns = weft_now_ns() - t0;
	if (want_ifname && !weft_acl_program_endpoint(pn, want_ifname))
		goto out;
	if (weft_acl_program_change(po, pn, a->chg_addrs, a->n_chg_addrs, a->chg_ifnames, a->n_chg_ifnames, &chg) < 0)
		goto out;
	if (!chains_known(a->last, &chg))
		goto out;
	/* Only the sets the node programs (the rest exist for this compile
	 * alone), and a member leaves only if no other record holds it. */
	filt = chg;
	sets = wcalloc(chg.n_sets + 1, sizeof(*sets));
	filt.sets = sets;
	filt.n_sets = 0;
	for (size_t i = 0; i < chg.n_sets; i++) {
		if (!weft_acl_program_set(a->last, chg.sets[i].set))
			continue;
		for (size_t k = 0; k < chg.sets[i].n_del; k++)
			if (held_by_others(a, &chg.sets[i].del[k], nv, n_eps))
				goto out;
		sets[filt.n_sets++] = chg.sets[i];
	}
	done = send_change(a, &filt, st, kind);
out:
	free(sets);
	weft_acl_change_clear(&chg);
	weft_acl_program_free(po);
	weft_acl_program_free(pn);
	free(ov);
	free(nv);
	return done;
}

/* Forget the sets of p no chain of p references any more (a rule edit
 * took the last reference away). The backend keeps them in the kernel,
 * unreferenced, until the next full apply deletes them; but nothing keeps
 * their members current from now on (try_endpoints changes only the sets
 * the chains use, as a full compile has only those), so a later rule edit
 * that names the tag or selector again must not find the set in a->last
 * and reuse it with its old members: it then compiles in full, which
 * brings the set's members up to date. */
static void prune_sets(struct weft_acl_program *p)
{
	_cleanup_free_ bool *used = wcalloc(p->n_sets + 1, sizeof(*used));
	size_t k = 0;

	for (size_t c = 0; c < p->n_chains; c++)
		for (size_t ri = 0; ri < p->chains[c].n_rules; ri++)
			for (size_t ai = 0; ai < p->chains[c].rules[ri].n_addrs; ai++) {
				const struct weft_acl_set *s = weft_acl_program_set(p, p->chains[c].rules[ri].addrs[ai].set);

				if (s)
					used[s - p->sets] = true;
			}
	for (size_t i = 0; i < p->n_sets; i++) {
		if (used[i]) {
			p->sets[k++] = p->sets[i];
			continue;
		}
		log_debug("acl: set %s (%s) no longer used by a rule", p->sets[i].name,
			  p->sets[i].origin ? p->sets[i].origin : "?");
		free(p->sets[i].name);
		free(p->sets[i].origin);
		free(p->sets[i].elems);
	}
	p->n_sets = k;
}

/* The incremental compile for rule edits: when only the rules of some
 * Profiles and Policies changed since the last sync (nothing else), compile
 * those Profiles and Policies alone and send their chains as chain changes
 * (the backend changes the rules that differ), provided every set those
 * rules use is programmed already (in a->last, whose sets are exactly
 * those its chains use: prune_sets). Chains the node does not program (no
 * local endpoint uses them) need nothing. Returns 1 when done, 0 to fall
 * back to the full compile. */
static int try_rules(struct weftd_acl *a, struct weft_acl_stats *st, const char **kind, int64_t *compile_ns)
{
	struct weft_acl_options opt = {.node = a->d->node, .all_chains = true};
	struct weft_acl_program *pm = NULL;
	struct weft_acl_chain *chains = NULL;
	struct weft_acl_change chg = {0};
	struct weft_resource *sub = NULL;
	int64_t t0 = weft_now_ns();
	int done = 0;

	if (!a->last || a->full || a->failed || a->n_chg_rules == 0 || a->n_chg_eps || a->n_chg_addrs ||
	    a->n_chg_ifnames)
		return 0;
	/* The changed Profiles and Policies alone: a chain's name, rules and
	 * set names depend on its own record only, and reading the others'
	 * rules would grow with all the rules instead of the change. */
	sub = wcalloc(a->n_chg_rules + 1, sizeof(*sub));
	for (size_t i = 0; i < a->n_chg_rules; i++) {
		ssize_t k = find(a, a->chg_rules[i]);

		if (k < 0)
			goto out;
		sub[i] = a->res[k];
	}
	if (weft_acl_compile(sub, a->n_chg_rules, &opt, &pm, NULL) < 0)
		goto out;
	*compile_ns = weft_now_ns() - t0;
	chains = wcalloc(pm->n_chains + 1, sizeof(*chains));
	for (size_t i = 0; i < a->n_chg_rules; i++) {
		ssize_t k = find(a, a->chg_rules[i]);
		const struct weft_resource *r;
		_cleanup_free_ char *in = NULL, *out = NULL;

		if (k < 0)
			goto out;
		r = &a->res[k];
		in = wasprintf("%s %s %s", r->kind == WEFT_KIND_PROFILE ? "profile" : "policy", r->name,
			       r->kind == WEFT_KIND_PROFILE ? "inbound" : "ingress");
		out = wasprintf("%s %s %s", r->kind == WEFT_KIND_PROFILE ? "profile" : "policy", r->name,
				r->kind == WEFT_KIND_PROFILE ? "outbound" : "egress");
		for (size_t c = 0; c < pm->n_chains; c++) {
			const struct weft_acl_chain *ch = &pm->chains[c];

			if (!ch->origin || (!streq(ch->origin, in) && !streq(ch->origin, out)))
				continue;
			if (!weft_acl_program_chain(a->last, ch->name))
				continue; /* not programmed here */
			for (size_t ri = 0; ri < ch->n_rules; ri++)
				for (size_t ai = 0; ai < ch->rules[ri].n_addrs; ai++)
					if (!weft_acl_program_set(a->last, ch->rules[ri].addrs[ai].set))
						goto out; /* a new tag or selector: a new set */
			chains[chg.n_chains++] = *ch; /* shallow: pm owns it */
		}
	}
	chg.chains = chains;
	done = send_change(a, &chg, st, kind);
	if (done > 0 && a->last)
		prune_sets(a->last);
out:
	free(chains);
	free(sub);
	weft_acl_program_free(pm);
	return done;
}

/* WEFT_ACL_VERIFY=1 (the tests set it): after an incremental sync,
 * compile everything too and compare: every set and endpoint entry of the
 * full program must be in a->last alike (a->last may hold more: chains and
 * sets no endpoint uses any more stay until the next full sync). A
 * difference is logged and counted; returns true then, and the caller
 * makes the next sync a full apply (after its own bookkeeping, which
 * would otherwise clear that request again).
 * WEFT_ACL_VERIFY_INJECT=N (tests only) makes the Nth check report a
 * difference, to exercise that repair. */
static bool verify_incremental(struct weftd_acl *a)
{
	struct weft_acl_options opt = {.node = a->d->node};
	struct weft_acl_program *p = NULL;
	const char *bad = NULL, *what = "";

	if (!a->verify || weft_acl_compile(a->res, a->n, &opt, &p, NULL) < 0)
		goto out;
	for (size_t i = 0; i < p->n_sets && !bad; i++) {
		const struct weft_acl_set *s = &p->sets[i], *l = weft_acl_program_set(a->last, s->name);

		if (!l || l->n_elems != s->n_elems ||
		    (s->n_elems && memcmp(l->elems, s->elems, s->n_elems * sizeof(*s->elems)) != 0))
			bad = s->name, what = "set";
	}
	for (size_t i = 0; i < p->n_chains && !bad; i++) {
		const struct weft_acl_chain *c = &p->chains[i], *l = weft_acl_program_chain(a->last, c->name);
		bool same = l && l->n_rules == c->n_rules;

		for (size_t k = 0; same && k < c->n_rules; k++)
			same = weft_acl_rule_eq(&c->rules[k], &l->rules[k]);
		if (!same)
			bad = c->name, what = "chain";
	}
	if (!bad && p->n_endpoints != a->last->n_endpoints)
		bad = "(count)", what = "endpoints";
	for (size_t i = 0; i < p->n_endpoints && !bad; i++)
		if (!weft_acl_endpoint_eq(&p->endpoints[i], &a->last->endpoints[i]))
			bad = p->endpoints[i].ifname, what = "endpoint";
	if (!bad && a->verify_inject > 0 && --a->verify_inject == 0)
		bad = "(injected: WEFT_ACL_VERIFY_INJECT)", what = "test";
	if (bad) {
		log_error("acl: verify: the incremental program differs from a full compile in %s %s", what, bad);
		weftd_metric_add(a->d->metrics, "weft_acl_verify_failures_total", NULL, 1);
	}
out:
	weft_acl_program_free(p);
	return bad != NULL;
}

/* Compile the copy and bring it into the kernel: as a change when only
 * Endpoints changed since the last sync and the backend can make it, else
 * as a whole. With want_ifname, fail with -ENOENT unless the program has
 * an endpoint on that interface. */
static int sync_now(struct weftd_acl *a, const char *want_ifname, char **errmsg)
{
	struct weft_acl_options opt = {.node = a->d->node};
	struct weft_acl_program *p = NULL;
	struct weft_acl_stats st;
	_cleanup_free_ char *err = NULL;
	int64_t t0 = weft_now_ns(), t1;
	const char *kind = "full", *how;
	size_t members = 0;
	int64_t inc_ns = 0;
	bool incremental, diverged = false, members_only = false;
	int r;

	if (try_endpoints(a, want_ifname, &st, &kind, &inc_ns, &members_only) > 0) {
		incremental = true;
		weftd_metric_add(a->d->metrics, "weft_acl_compiles_total",
				 members_only ? "kind=\"members\"" : "kind=\"endpoints\"", 1);
	} else if (!want_ifname && try_rules(a, &st, &kind, &inc_ns) > 0) {
		incremental = true;
		weftd_metric_add(a->d->metrics, "weft_acl_compiles_total", "kind=\"rules\"", 1);
	} else {
		incremental = false;
		weftd_metric_add(a->d->metrics, "weft_acl_compiles_total", "kind=\"full\"", 1);
	}
	if (incremental) {
		p = a->last;
		t1 = t0 + inc_ns;
		diverged = verify_incremental(a);
		goto applied;
	}
	r = weft_acl_compile(a->res, a->n, &opt, &p, &err);
	if (r < 0) {
		log_warn("acl: compile: %s", err ? err : strerror(-r));
		goto fail;
	}
	t1 = weft_now_ns();
	if (want_ifname && !weft_acl_program_endpoint(p, want_ifname)) {
		r = -ENOENT;
		err = wasprintf("no ACL endpoint for %s after compiling", want_ifname);
		goto fail;
	}
	if (try_change(a, p, &st, &kind) <= 0) {
		kind = "full";
		r = weft_acl_apply(a->backend, p, &st, &err);
		if (r < 0) {
			log_warn("acl: apply (%s): %s", weft_acl_backend_name(a->backend), err ? err : strerror(-r));
			goto fail;
		}
	}
applied:
	for (size_t i = 0; i < p->n_sets; i++)
		members += p->sets[i].n_elems;
	weftd_metric_add(a->d->metrics, "weft_acl_applies_total", NULL, 1);
	if (streq(kind, "change"))
		weftd_metric_add(a->d->metrics, "weft_acl_updates_total", "kind=\"change\"", 1);
	else if (streq(kind, "none"))
		weftd_metric_add(a->d->metrics, "weft_acl_updates_total", "kind=\"none\"", 1);
	else
		weftd_metric_add(a->d->metrics, "weft_acl_updates_total", "kind=\"full\"", 1);
	if (!streq(kind, "none")) /* no kernel batch */
		weftd_metric_set(a->d->metrics, "weft_acl_apply_seconds", NULL, (double)st.apply_ns / 1e9);
	weftd_metric_set(a->d->metrics, "weft_acl_compile_seconds", NULL, (double)(t1 - t0) / 1e9);
	weftd_metric_set(a->d->metrics, "weft_acl_endpoints", NULL, (double)p->n_endpoints);
	weftd_metric_set(a->d->metrics, "weft_acl_sets", NULL, (double)p->n_sets);
	weftd_metric_set(a->d->metrics, "weft_acl_chains", NULL, (double)p->n_chains);
	weftd_metric_set(a->d->metrics, "weft_acl_set_members", NULL, (double)members);
	how = st.full ? ", full" : streq(kind, "change") ? ", change" : "";
	if (st.full || st.chains_created || st.chains_replaced || st.chains_deleted || st.endpoints_added ||
	    st.endpoints_removed || st.endpoints_replaced)
		log_info("acl: applied (%s%s): %zu endpoints, %zu sets, %zu chains; +%zu/-%zu members, "
			 "chains +%zu ~%zu -%zu, endpoints +%zu ~%zu -%zu in %.1f ms",
			 weft_acl_backend_name(a->backend), how, p->n_endpoints, p->n_sets, p->n_chains,
			 st.elems_added, st.elems_removed, st.chains_created, st.chains_replaced, st.chains_deleted,
			 st.endpoints_added, st.endpoints_replaced, st.endpoints_removed, (double)st.apply_ns / 1e6);
	else if (streq(kind, "none"))
		log_debug("acl: %zu endpoint addresses and %zu interfaces changed: nothing to program",
			  a->n_chg_addrs, a->n_chg_ifnames);
	else
		log_debug("acl: applied%s: +%zu/-%zu members in %.1f ms", how, st.elems_added, st.elems_removed,
			  (double)st.apply_ns / 1e6);
	/* What the backend holds now: the base of the next change (patched
	 * in place by an incremental sync). */
	if (!incremental) {
		weft_acl_program_free(a->last);
		a->last = p;
	}
	a->full = false;
	changes_reset(a);
	a->dirty = false;
	a->failed = false;
	if (diverged) {
		/* The kernel holds what a->last says, which is not what the
		 * copy means: the next sync applies the whole program. */
		a->dirty = true;
		want_full(a);
		(void)weft_source_defer_arm(a->sync_src);
	}
	return 0;
fail:
	weft_acl_program_free(p);
	weft_acl_program_free(a->last);
	a->last = NULL;
	want_full(a);
	weftd_metric_add(a->d->metrics, "weft_acl_apply_errors_total", NULL, 1);
	a->failed = true;
	(void)weft_source_timer_set(a->retry_timer, weft_now_ns() + ACL_RETRY_NS, 0);
	if (errmsg)
		*errmsg = err ? TAKE_PTR(err) : wstrdup(strerror(-r));
	return r;
}

static int on_sync(struct weft_source *s, void *userdata)
{
	struct weftd_acl *a = userdata;

	(void)s;
	if (a->dirty || a->failed)
		(void)sync_now(a, NULL, NULL);
	return 0;
}

/* A node switched between backends: what the other one programmed would
 * still filter (both hook the same paths), with rules nothing keeps
 * current. Called once this backend's first apply is in, so that the pods
 * are never unfiltered; a failure is retried with each relist. A node
 * whose other backend cannot even be opened (its tools are missing) has
 * nothing of it to remove. */
static void remove_other(struct weftd_acl *a)
{
	struct weft_acl_backend *other = NULL;
	bool nft = streq(weft_acl_backend_name(a->backend), "nft");
	const char *name = nft ? "ipt" : "nft";
	_cleanup_free_ char *err = NULL;
	int r;

	a->other_left = false;
	if ((nft ? weft_acl_ipt_open(getenv("WEFT_IPTABLES"), &other, NULL) : weft_acl_nft_open(&other, NULL)) < 0)
		return;
	r = weft_acl_remove(other, &err);
	weft_acl_backend_free(other);
	if (r < 0) {
		log_warn("acl: could not remove what the %s backend left: %s (trying again with the next relist)", name,
			 err ? err : strerror(-r));
		a->other_left = true;
		return;
	}
	log_debug("acl: removed what the %s backend left, if anything", name);
}

/* --- the watch ---------------------------------------------------------------- */

static void on_watch_event(const struct weft_event *ev, void *userdata)
{
	struct weftd_acl *a = userdata;
	bool changed;

	if (!acl_key(ev->kv.key))
		return;
	changed = ev->type == WEFT_EV_PUT ? upsert(a, ev->kv.key, ev->kv.value, ev->kv.value_len, ev->kv.mod_rev)
					  : erase(a, ev->kv.key, ev->kv.mod_rev);
	weftd_metric_add(a->d->metrics, "weft_store_events_total", "subsystem=\"acl\"", 1);
	if (changed) {
		a->dirty = true;
		(void)weft_source_defer_arm(a->sync_src);
	}
}

/* A new watch after a dead one: relist, since events in between are lost. */
static void on_watch_reset(void *userdata)
{
	struct weftd_acl *a = userdata;

	if (relist(a) < 0)
		(void)weft_source_timer_set(a->retry_timer, weft_now_ns() + ACL_RETRY_NS, 0);
	(void)weft_source_defer_arm(a->sync_src);
}

static int on_retry(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_acl *a = userdata;

	(void)s;
	(void)now_ns;
	if (a->need_relist && relist(a) < 0)
		(void)weft_source_timer_set(a->retry_timer, weft_now_ns() + ACL_RETRY_NS, 0);
	return weft_source_defer_arm(a->sync_src);
}

static int on_resync(struct weft_source *s, int64_t now_ns, void *userdata)
{
	struct weftd_acl *a = userdata;
	int r;

	(void)s;
	(void)now_ns;
	/* Drift: the kernel lost or changed what we programmed (e.g. `nft
	 * flush ruleset`, a rule added to or deleted from weft's table by
	 * hand): the backend reloads everything on the next apply. */
	r = weft_acl_check(a->backend);
	if (r < 0 && r != -ENOENT)
		log_warn("acl: drift check: %s (nothing known; the next check tries again)", strerror(-r));
	if (r == -ENOENT) {
		log_info("acl: drift: the %s ruleset is gone from the kernel or was changed there; reloading it",
			 weft_acl_backend_name(a->backend));
		weftd_metric_add(a->d->metrics, "weft_drift_repairs_total", "kind=\"acl\"", 1);
		a->dirty = true;
		want_full(a);
	}
	if (a->other_left && a->last)
		remove_other(a);
	if (relist(a) < 0)
		(void)weft_source_timer_set(a->retry_timer, weft_now_ns() + ACL_RETRY_NS, 0);
	(void)weft_source_defer_arm(a->sync_src);
	return 0;
}

/* --- public --------------------------------------------------------------------- */

int weftd_acl_start(struct weftd *d, struct weft_loop *loop, const char *backend, struct weftd_acl **out)
{
	struct weftd_acl *a = wcalloc(1, sizeof(*a));
	_cleanup_free_ char *err = NULL;
	int64_t resync_ns = ACL_RESYNC_NS;
	const char *env = getenv("WEFT_ACL_RESYNC_MS"), *inject = getenv("WEFT_ACL_VERIFY_INJECT");
	int64_t ms;
	int r;

	a->d = d;
	a->loop = loop;
	a->full = true;
	a->verify = getenv("WEFT_ACL_VERIFY") && streq(getenv("WEFT_ACL_VERIFY"), "1");
	if (a->verify && inject && weft_parse_int64(inject, 1, 1000000, &ms) == 0)
		a->verify_inject = ms;
	declare_metrics(d->metrics);
	if (env && weft_parse_int64(env, 10, 86400000, &ms) == 0)
		resync_ns = ms * 1000000LL;
	if (streq(backend, "nft"))
		r = weft_acl_nft_open(&a->backend, &err);
	else if (streq(backend, "ipt"))
		r = weft_acl_ipt_open(getenv("WEFT_IPTABLES"), &a->backend, &err);
	else
		r = -EINVAL;
	if (r < 0) {
		log_error_errno(r, "acl: backend %s: %s", backend, err ? err : "unknown backend");
		goto fail;
	}
	if ((r = weft_loop_add_defer(loop, on_sync, a, &a->sync_src)) < 0 ||
	    (r = weft_loop_add_timer(loop, resync_ns, resync_ns, on_resync, a, &a->resync_timer)) < 0 ||
	    (r = weft_loop_add_timer(loop, ACL_RETRY_NS, 0, on_retry, a, &a->retry_timer)) < 0)
		goto fail;
	(void)weft_source_timer_stop(a->retry_timer);
	weft_source_set_description(a->sync_src, "acl sync");
	/* The watch first, then the list: nothing in between is lost. */
	if ((r = weftd_watch_open(d, loop, "acl", on_watch_event, on_watch_reset, a, &a->watch)) < 0)
		goto fail;
	r = relist(a);
	if (r < 0)
		goto fail;
	/* The first program goes in before weftd serves: pods that survived a
	 * restart keep their policy, new ones find it. */
	free(err);
	err = NULL;
	r = sync_now(a, NULL, &err);
	if (r < 0) {
		log_error("acl: first apply failed: %s", err);
		goto fail;
	}
	/* Only now, with this backend's program in the kernel: until here a
	 * failed start leaves the other backend's rules filtering. */
	remove_other(a);
	log_info("acl: %s backend, %zu resources", weft_acl_backend_name(a->backend), a->n);
	*out = a;
	return 0;
fail:
	weftd_acl_stop(a);
	return r;
}

void weftd_acl_stop(struct weftd_acl *a)
{
	if (!a)
		return;
	weft_source_free(a->retry_timer);
	weft_source_free(a->resync_timer);
	weft_source_free(a->sync_src);
	weftd_watch_close(a->watch);
	weft_acl_backend_free(a->backend);
	copy_clear(a);
	tombs_clear(a);
	changes_reset(a);
	weft_acl_program_free(a->last);
	free(a->chg_addrs);
	free(a->chg_ifnames);
	free(a->chg_eps);
	free(a->chg_rules);
	free(a->ac);
	free(a->entries);
	free(a->res);
	free(a);
}

int weftd_acl_endpoint_ready(struct weftd_acl *a, const char *key, const char *value, size_t len, int64_t mod_rev,
			     const char *host_ifname, char **errmsg)
{
	if (!a)
		return 0;
	/* Whatever the watch has already brought (a profile or policy
	 * written just before this ADD) goes into the same compile. */
	weftd_watch_poll(a->watch);
	if (upsert(a, key, value, len, mod_rev))
		a->dirty = true;
	return sync_now(a, host_ifname, errmsg);
}

/* Put a resource this process just read or wrote into the copy, so that
 * the next compile (the CNI ADD's own) sees it without waiting for the
 * watch; the watch's event for it is then a no-op (same mod_rev). */
static void acl_note(struct weftd_acl *a, const char *key, const char *value, size_t len, int64_t mod_rev)
{
	if (a && mod_rev > 0 && upsert(a, key, value, len, mod_rev))
		a->dirty = true;
}

int weftd_default_profile(struct weftd *d, const char *name)
{
	_cleanup_free_ char *key = wasprintf("/weft/v1/profiles/%s", name), *err = NULL, *text = NULL;
	_cleanup_json_ cJSON *doc = NULL;
	struct weft_resource res = {0};
	struct weft_kv kv = {0};
	int64_t rev = 0;
	int r;

	r = weft_store_get(d->store, key, &kv);
	if (r == 0)
		acl_note(d->acl, key, kv.value, kv.value_len, kv.mod_rev);
	weft_kv_clear(&kv);
	if (r != -ENOENT)
		return r;
	/* The Calico v1 defaults (its own name as a tag, in from the tag, all
	 * out) are what the schema fills in for a profile that gives none. */
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "kind", "Profile");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(doc, "metadata"), "name", name);
	r = weft_resource_from_json(doc, name, &res, &err);
	if (r < 0)
		return log_warn_errno(r, "default profile %s: %s", name, err ? err : "invalid");
	text = weft_resource_encode(&res, false);
	weft_resource_clear(&res);
	r = weft_store_create(d->store, key, text, strlen(text), &rev);
	if (r == 0)
		acl_note(d->acl, key, text, strlen(text), rev);
	if (r == -EEXIST)
		return 0;
	if (r < 0)
		return log_warn_errno(r, "default profile %s: %s", name, weft_store_errmsg(d->store));
	log_info("created the default profile %s for CNI network %s", name, name);
	return 0;
}
