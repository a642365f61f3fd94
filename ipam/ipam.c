/* ipam.c - pool/block IPAM, range IPAM, release and queries over the
 * datastore. The protocol is in docs/ipam.md; in short: every write is one
 * weft_store_txn() whose compares name every record the decision was
 * based on (the block or range, the handle, and for a claim the affinity),
 * at the mod_rev it was read at (0 = absent). A compare that fails means
 * someone else changed one of them: nothing was written, and the whole
 * step is redone from fresh reads after a short random wait.
 */
#include "ipam/ipam-records.h"

#include "lib/json.h"
#include "lib/log.h"
#include "model/resource.h"
#include "model/selector.h"

#include <arpa/inet.h>
#include <time.h>

struct weft_ipam {
	struct weft_store *s;
	unsigned max_retries;
	uint64_t rng;
	char errmsg[512];
};

/* Records above this size are refused (the store takes 1 MiB values; etcd
 * 1.5 MiB), so a range cannot grow a record the store would reject. */
#define IPAM_RECORD_MAX (768 * 1024)

static int PRINTF_LIKE(3, 4) fail(struct weft_ipam *m, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->errmsg, sizeof(m->errmsg), fmt, ap);
	va_end(ap);
	log_debug("ipam: %s", m->errmsg);
	return r;
}

/* A store failure: keep the store's message. -ENOSPC from the store (etcd
 * out of quota) becomes -EIO so that callers can read -ENOSPC as "no free
 * address" without ambiguity. */
static int store_fail(struct weft_ipam *m, int r, const char *what, const char *key)
{
	if (r == -ENOSPC)
		r = -EIO;
	return fail(m, r, "%s %s: %s (%s)", what, key, weft_store_errmsg(m->s), strerror(-r));
}

int weft_ipam_new(struct weft_store *store, struct weft_ipam **out)
{
	struct weft_ipam *m;

	if (!store || !out)
		return -EINVAL;
	m = wcalloc(1, sizeof(*m));
	m->s = store;
	m->max_retries = 100;
	m->rng = (uint64_t)weft_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)m;
	if (!m->rng)
		m->rng = 1;
	*out = m;
	return 0;
}

void weft_ipam_free(struct weft_ipam *m)
{
	free(m);
}

const char *weft_ipam_errmsg(const struct weft_ipam *m)
{
	return m ? m->errmsg : "";
}

void weft_ipam_set_max_retries(struct weft_ipam *m, unsigned n)
{
	m->max_retries = n;
}

static uint64_t rnd(struct weft_ipam *m)
{
	/* xorshift64: only for jitter, not security. */
	m->rng ^= m->rng << 13;
	m->rng ^= m->rng >> 7;
	m->rng ^= m->rng << 17;
	return m->rng;
}

/* Jittered backoff before retry number attempt (0-based): a random wait
 * of 0..min(2^attempt, 32) ms, so that colliding writers spread out. */
static void backoff(struct weft_ipam *m, unsigned attempt)
{
	unsigned cap_ms = attempt < 5 ? 1u << attempt : 32;
	uint64_t us = rnd(m) % ((uint64_t)cap_ms * 1000 + 1);
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(us * 1000)};

	log_debug("ipam: conflict, retry %u after %llu us", attempt + 1, (unsigned long long)us);

	nanosleep(&ts, NULL);
}

int weft_ipam_handle_id(const char *container_id, const char *ifname, char **out)
{
	if (!container_id || !*container_id || !ifname || !*ifname)
		return -EINVAL;
	for (const char *p = container_id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '.' || *p == '-'))
			return -EINVAL;
	if (strchr(ifname, ':') || !ipam_name_ok(ifname) || strlen(ifname) > 15)
		return -EINVAL;
	if (strlen(container_id) + 1 + strlen(ifname) > WEFT_IPAM_NAME_MAX)
		return -EINVAL;
	*out = wasprintf("%s:%s", container_id, ifname);
	return 0;
}

static int check_attrs(struct weft_ipam *m, const struct weft_ipam_attrs *a)
{
	if (!a)
		return 0;
	if (!ipam_attr_ok(a->namespace) || !ipam_attr_ok(a->pod) || !ipam_attr_ok(a->node) ||
	    !ipam_attr_ok(a->container_id) || !ipam_attr_ok(a->ifname) || !ipam_attr_ok(a->network) ||
	    !ipam_attr_ok(a->plugin))
		return fail(m, -EINVAL, "an attribute is longer than %d bytes or has control characters",
			    WEFT_IPAM_NAME_MAX);
	return 0;
}

/* --- pools ---------------------------------------------------------------- */

struct ipam_pool {
	char *name;
	struct weft_cidr cidr;
	unsigned block_size;
	bool disabled;
	char *selector;
	/* Another pool whose cidr overlaps this one's (the first in name
	 * order), or NULL. No block is claimed from either: two nodes claiming
	 * at once could take overlapping blocks of different blockSizes, whose
	 * keys differ, so no compare would catch it. Every node reads the same
	 * list, so every node refuses the same pools. */
	const char *overlaps;
};

static void pools_free(struct ipam_pool *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].name);
		free(p[i].selector);
	}
	free(p);
}

/* Every IPPool in the store, in name order. The only place that knows the
 * resource model: a pool is read through weft_resource_decode(), which
 * validates it (a pool that does not validate is -EBADMSG). */
static int load_pools(struct weft_ipam *m, struct ipam_pool **out, size_t *n)
{
	const char *prefix = weft_kind_prefix(WEFT_KIND_IPPOOL);
	struct weft_kv_list l = {0};
	struct ipam_pool *p;
	size_t np = 0;
	int r;

	r = weft_store_list(m->s, prefix, &l);
	if (r < 0)
		return store_fail(m, r, "list", prefix);
	p = wcalloc(l.n ? l.n : 1, sizeof(*p));
	for (size_t i = 0; i < l.n; i++) {
		struct weft_resource res = {0};
		_cleanup_free_ char *err = NULL;
		const cJSON *spec;
		const char *cidr, *sel = "all()";
		int64_t bs = -1;
		bool dis = false;

		r = weft_resource_decode(l.items[i].value, l.items[i].value_len, &res, &err);
		if (r < 0) {
			r = fail(m, -EBADMSG, "%s: %s", l.items[i].key, err ? err : "undecodable IPPool");
			goto fail;
		}
		spec = cJSON_GetObjectItemCaseSensitive(res.doc, "spec");
		if (weft_json_get_string(spec, "cidr", &cidr) < 0 || weft_cidr_parse(cidr, true, &p[np].cidr) < 0 ||
		    weft_json_get_int64(spec, "blockSize", &bs) < 0 || bs < p[np].cidr.prefixlen ||
		    bs > weft_ip_bits(&p[np].cidr.ip) || weft_ip_bits(&p[np].cidr.ip) - bs > 12) {
			weft_resource_clear(&res);
			r = fail(m, -EBADMSG, "%s: spec.cidr/spec.blockSize unusable", l.items[i].key);
			goto fail;
		}
		(void)weft_json_get_bool(spec, "disabled", &dis);
		(void)weft_json_get_string(spec, "nodeSelector", &sel);
		p[np].name = wstrdup(res.name);
		p[np].block_size = (unsigned)bs;
		p[np].disabled = dis;
		p[np].selector = wstrdup(sel);
		np++;
		weft_resource_clear(&res);
	}
	weft_kv_list_clear(&l);
	/* A disabled pool gets no claims (nor static addresses), so it races
	 * with nobody: only enabled pools count. */
	for (size_t i = 0; i < np; i++)
		for (size_t j = 0; j < np && !p[i].overlaps; j++)
			if (j != i && !p[i].disabled && !p[j].disabled && weft_cidr_overlaps(&p[i].cidr, &p[j].cidr))
				p[i].overlaps = p[j].name;
	*out = p;
	*n = np;
	return 0;
fail:
	weft_kv_list_clear(&l);
	pools_free(p, np);
	return r;
}

/* The labels of node (metadata.labels of its Node resource) for pool
 * nodeSelectors. A node without a Node record has no labels, so only
 * selectors such as all() match it. *doc keeps the strings alive. */
static int node_labels(struct weft_ipam *m, const char *node, struct weft_resource *res, struct weft_label **v,
		       size_t *n)
{
	struct weft_resource probe = {.kind = WEFT_KIND_NODE, .name = (char *)node};
	_cleanup_free_ char *key = weft_resource_key(&probe), *err = NULL;
	struct weft_kv kv = {0};
	const cJSON *labels, *l;
	size_t i = 0;
	int r;

	*v = NULL;
	*n = 0;
	r = weft_store_get(m->s, key, &kv);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return fail(m, r, "read %s: %s", key, weft_store_errmsg(m->s));
	r = weft_resource_decode(kv.value, kv.value_len, res, &err);
	weft_kv_clear(&kv);
	if (r < 0)
		return fail(m, -EBADMSG, "%s: %s", key, err ? err : "undecodable");
	labels = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res->doc, "metadata"), "labels");
	if (!cJSON_IsObject(labels))
		return 0;
	*v = wcalloc((size_t)cJSON_GetArraySize(labels) + 1, sizeof(**v));
	cJSON_ArrayForEach(l, labels) {
		if (!cJSON_IsString(l))
			continue;
		(*v)[i].key = l->string;
		(*v)[i].value = l->valuestring;
		i++;
	}
	weft_selector_labels_sort(*v, i);
	*n = i;
	return 0;
}

/* Does pool's nodeSelector choose node? 1 yes, 0 no, or a negative errno
 * for a selector that does not parse (the model validates selectors, so
 * only a corrupt record gets here). */
static int pool_selects(struct weft_ipam *m, const struct ipam_pool *pool, const struct weft_labels *labels)
{
	struct weft_selector *sel = NULL;
	_cleanup_free_ char *err = NULL;
	int r;

	if (weft_selector_parse(pool->selector, &sel, &err) < 0)
		return fail(m, -EBADMSG, "pool %s: nodeSelector \"%s\": %s", pool->name, pool->selector,
			    err ? err : "invalid");
	r = weft_selector_match(sel, labels);
	weft_selector_free(sel);
	return r;
}

/* Keep of the n pools in c those whose nodeSelector selects node (in
 * order); *unselected names one that does not. Returns 0 or a negative
 * errno (a selector that does not parse). */
static int keep_selecting(struct weft_ipam *m, const char *node, struct ipam_pool **c, size_t *n,
			  const char **unselected)
{
	struct weft_resource res = {0};
	struct weft_label *lv = NULL;
	size_t nl = 0, k = 0;
	int r = node_labels(m, node, &res, &lv, &nl);
	struct weft_labels labels = {lv, nl};

	for (size_t j = 0; r >= 0 && j < *n; j++) {
		r = pool_selects(m, c[j], &labels);
		if (r == 0)
			*unselected = c[j]->name;
		if (r > 0)
			c[k++] = c[j];
	}
	free(lv);
	weft_resource_clear(&res);
	if (r < 0)
		return r;
	*n = k;
	return 0;
}

/* The pools a request may use, in the order to try them (pointers into
 * pools). */
static int choose_pools(struct weft_ipam *m, const char *node, const char *const *want, size_t nwant, bool by_selector,
			int family, struct ipam_pool *pools, size_t np, struct ipam_pool ***out, size_t *nout)
{
	struct ipam_pool **c = wcalloc(np + nwant + 1, sizeof(*c));
	size_t n = 0;
	const char *unselected = NULL;
	int r;

	if (want && nwant) {
		for (size_t i = 0; i < nwant; i++) {
			struct weft_cidr wc;
			bool is_cidr = weft_cidr_parse(want[i], true, &wc) == 0;
			struct ipam_pool *hit = NULL;
			for (size_t j = 0; j < np && !hit; j++)
				if (is_cidr ? (pools[j].cidr.prefixlen == wc.prefixlen && weft_ip_eq(&pools[j].cidr.ip, &wc.ip))
					    : streq(pools[j].name, want[i]))
					hit = &pools[j];
			if (!hit) {
				free(c);
				return fail(m, -ENOENT, "pool %s does not exist", want[i]);
			}
			if (hit->disabled) {
				free(c);
				return fail(m, -ENOENT, "pool %s is disabled", hit->name);
			}
			if (hit->cidr.ip.family != family) {
				free(c);
				return fail(m, -EINVAL, "pool %s is not an IPv%d pool", hit->name,
					    family == AF_INET6 ? 6 : 4);
			}
			c[n++] = hit;
		}
		/* Named pools are used whatever their selector says, unless
		 * by_selector. */
		if (by_selector) {
			if ((r = keep_selecting(m, node, c, &n, &unselected)) < 0) {
				free(c);
				return r;
			}
			if (!n) {
				free(c);
				return fail(m, -ENOENT, "none of the pools selects node %s (pool %s's nodeSelector does not "
						      "match its labels)", node, unselected);
			}
		}
	} else {
		for (size_t j = 0; j < np; j++)
			if (!pools[j].disabled && pools[j].cidr.ip.family == family)
				c[n++] = &pools[j];
		if ((r = keep_selecting(m, node, c, &n, &unselected)) < 0) {
			free(c);
			return r;
		}
		if (!n && unselected) {
			free(c);
			return fail(m, -ENOENT,
				    "no enabled IPv%d pool selects node %s (pool %s's nodeSelector does not match its "
				    "labels)",
				    family == AF_INET6 ? 6 : 4, node, unselected);
		}
		if (!n) {
			free(c);
			return fail(m, -ENOENT, "no enabled IPv%d pool", family == AF_INET6 ? 6 : 4);
		}
	}
	*out = c;
	*nout = n;
	return 0;
}

static bool in_pools(struct ipam_pool **c, size_t n, const struct weft_cidr *block)
{
	for (size_t i = 0; i < n; i++)
		if (weft_cidr_covers(&c[i]->cidr, block) && block->prefixlen == c[i]->block_size)
			return true;
	return false;
}

/* --- records in the store --------------------------------------------------- */

/* Read a block or range record: 0, -ENOENT when absent, -EBADMSG, or a
 * store error. */
static int rec_get(struct weft_ipam *m, enum ipam_rec_type type, const char *key, struct ipam_rec *out)
{
	struct weft_kv kv = {0};
	_cleanup_free_ char *err = NULL;
	int r;

	r = weft_store_get(m->s, key, &kv);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return store_fail(m, r, "get", key);
	r = ipam_rec_decode(type, key, kv.value, kv.value_len, out, &err);
	if (r == 0)
		out->mod_rev = kv.mod_rev;
	weft_kv_clear(&kv);
	if (r < 0)
		return fail(m, r, "%s", err);
	return 0;
}

static enum ipam_rec_type key_type(const char *key)
{
	return startswith(key, WEFT_IPAM_RANGES_PREFIX) ? IPAM_REC_RANGE : IPAM_REC_BLOCK;
}

/* Read a handle record; an absent one comes back empty with mod_rev 0. */
static int handle_get(struct weft_ipam *m, const char *handle, struct ipam_handle_rec *out)
{
	_cleanup_free_ char *key = ipam_handle_key(handle);
	_cleanup_free_ char *err = NULL;
	struct weft_kv kv = {0};
	int r;

	r = weft_store_get(m->s, key, &kv);
	if (r == -ENOENT) {
		*out = (struct ipam_handle_rec){.handle = wstrdup(handle)};
		return 0;
	}
	if (r < 0)
		return store_fail(m, r, "get", key);
	r = ipam_handle_decode(key, kv.value, kv.value_len, out, &err);
	if (r == 0)
		out->mod_rev = kv.mod_rev;
	weft_kv_clear(&kv);
	if (r < 0)
		return fail(m, r, "%s", err);
	return 0;
}

static int block_key_cidr(const char *key, struct weft_cidr *out);

/* List and decode every block (or range) record. A record that does not
 * decode does not stop the others (one corrupt record would stop every
 * claim, query and check): it is logged and left out, except that a
 * corrupt block whose key names a CIDR stays in the list as a placeholder
 * (corrupt, no allocations), so that no block is claimed over it; callers
 * never write or borrow from a corrupt one. weft_ipam_check() reports
 * them. Logging here, against the module's rule of leaving it to the
 * caller, because the callers would otherwise never learn of them. */
static int recs_list(struct weft_ipam *m, enum ipam_rec_type type, struct ipam_rec **out, size_t *n)
{
	const char *prefix = type == IPAM_REC_BLOCK ? WEFT_IPAM_BLOCKS_PREFIX : WEFT_IPAM_RANGES_PREFIX;
	struct weft_kv_list l = {0};
	struct ipam_rec *recs;
	size_t k = 0;
	int r;

	r = weft_store_list(m->s, prefix, &l);
	if (r < 0)
		return store_fail(m, r, "list", prefix);
	recs = wcalloc(l.n ? l.n : 1, sizeof(*recs));
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_free_ char *err = NULL;
		r = ipam_rec_decode(type, l.items[i].key, l.items[i].value, l.items[i].value_len, &recs[k], &err);
		if (r < 0) {
			log_warn("ipam: corrupt record left out (weftctl ipam check reports it): %s", err);
			if (type == IPAM_REC_BLOCK && block_key_cidr(l.items[i].key, &recs[k].cidr) == 0) {
				recs[k].type = IPAM_REC_BLOCK;
				recs[k].corrupt = true;
				recs[k++].mod_rev = l.items[i].mod_rev;
			}
			continue;
		}
		recs[k++].mod_rev = l.items[i].mod_rev;
	}
	*n = k;
	weft_kv_list_clear(&l);
	*out = recs;
	return 0;
}

static void recs_free(struct ipam_rec *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		ipam_rec_clear(&r[i]);
	free(r);
}

static char *rec_key(const struct ipam_rec *r)
{
	return r->type == IPAM_REC_BLOCK ? ipam_block_key(&r->cidr) : ipam_range_key(r->network, &r->cidr);
}

/* Write rec and the handle record h (and, claiming a block, its affinity
 * record) in one transaction that compares rec and h at the revisions they
 * were read at, and the nextra records of extra (read only) too. h with no
 * entries is deleted. -ECANCELED when any of them changed meanwhile. */
static int commit_cmp(struct weft_ipam *m, const struct ipam_rec *rec, const struct ipam_handle_rec *h,
		      const char *aff_node, const struct ipam_rec *extra, size_t nextra)
{
	_cleanup_free_ char *rkey = rec_key(rec), *rval = ipam_rec_encode(rec);
	_cleanup_free_ char *hkey = NULL, *hval = NULL, *akey = NULL, *aval = NULL;
	_cleanup_free_ struct weft_txn_cmp *cmps = wcalloc(nextra + 2, sizeof(*cmps));
	_cleanup_free_ struct weft_txn_op *ops = wcalloc(nextra + 3, sizeof(*ops));
	char **xkeys, **xvals;
	size_t nc = 0, no = 0;
	int r;

	if (strlen(rval) > IPAM_RECORD_MAX)
		return fail(m, -ENOSPC, "%s: the record would exceed %d bytes", rkey, IPAM_RECORD_MAX);
	cmps[nc++] = (struct weft_txn_cmp){rkey, rec->mod_rev};
	ops[no++] = (struct weft_txn_op){WEFT_OP_PUT, rkey, rval, strlen(rval)};
	if (h) {
		hkey = ipam_handle_key(h->handle);
		cmps[nc++] = (struct weft_txn_cmp){hkey, h->mod_rev};
		if (h->n) {
			hval = ipam_handle_encode(h);
			ops[no++] = (struct weft_txn_op){WEFT_OP_PUT, hkey, hval, strlen(hval)};
		} else if (h->mod_rev) {
			ops[no++] = (struct weft_txn_op){WEFT_OP_DELETE, hkey, NULL, 0};
		}
	}
	if (aff_node) {
		/* No compare on the affinity: it is an index of the block's own
		 * "affinity" member, and the block compare (absent) already
		 * makes this claim exclusive. A stale affinity record left by
		 * hand must not make the block unclaimable forever. */
		akey = ipam_affinity_key(aff_node, &rec->cidr);
		aval = ipam_affinity_encode(aff_node, &rec->cidr);
		ops[no++] = (struct weft_txn_op){WEFT_OP_PUT, akey, aval, strlen(aval)};
	}
	/* The extra records are compared; when this commit creates its
	 * record they are also written back unchanged. An allocation in one
	 * of them that read before this record existed compares only its
	 * own: the rewrite makes that compare fail, so it reads again and
	 * sees this record's addresses. */
	xkeys = wcalloc(nextra + 1, sizeof(*xkeys));
	xvals = wcalloc(nextra + 1, sizeof(*xvals));
	for (size_t i = 0; i < nextra; i++) {
		xkeys[i] = rec_key(&extra[i]);
		cmps[nc++] = (struct weft_txn_cmp){xkeys[i], extra[i].mod_rev};
		if (!rec->mod_rev) {
			xvals[i] = ipam_rec_encode(&extra[i]);
			ops[no++] = (struct weft_txn_op){WEFT_OP_PUT, xkeys[i], xvals[i], strlen(xvals[i])};
		}
	}
	r = weft_store_txn(m->s, cmps, nc, ops, no, NULL);
	for (size_t i = 0; i < nextra; i++) {
		free(xkeys[i]);
		free(xvals[i]);
	}
	free(xkeys);
	free(xvals);
	if (r == -ECANCELED)
		return r;
	if (r < 0)
		return store_fail(m, r, "txn on", rkey);
	return 0;
}

static int commit(struct weft_ipam *m, const struct ipam_rec *rec, const struct ipam_handle_rec *h, const char *aff_node)
{
	return commit_cmp(m, rec, h, aff_node, NULL, 0);
}

/* Run step until it does not report a conflict, with jittered backoff;
 * -EAGAIN after max_retries conflicts. */
#define RETRY(m, what, call)                                                                              \
	({                                                                                                \
		int _r;                                                                                   \
		for (unsigned _a = 0;; _a++) {                                                            \
			_r = (call);                                                                      \
			if (_r != -ECANCELED)                                                             \
				break;                                                                    \
			if (_a >= (m)->max_retries) {                                                     \
				_r = fail((m), -EAGAIN, "%s: gave up after %u conflicting concurrent updates", \
					  (what), _a + 1);                                                \
				break;                                                                    \
			}                                                                                 \
			backoff((m), _a);                                                                 \
		}                                                                                         \
		_r;                                                                                       \
	})

/* The lowest free address of a block: 0 and *out, or -ENOSPC. */
static int block_free_ip(const struct ipam_rec *b, struct weft_ip *out)
{
	uint64_t size = ipam_cidr_size(&b->cidr);
	struct weft_ip cand = b->cidr.ip;

	if (b->n >= size)
		return -ENOSPC;
	/* Allocations are sorted and inside the block: the first gap. */
	for (size_t i = 0; i < b->n; i++) {
		if (!weft_ip_eq(&b->allocs[i].ip, &cand))
			break;
		if (weft_ip_add(&cand, 1, &cand) < 0)
			return -ENOSPC;
	}
	*out = cand;
	return 0;
}

/* --- auto-assign ------------------------------------------------------------ */

static int alloc_in(struct weft_ipam *m, struct ipam_rec *b, struct ipam_handle_rec *h,
		    const struct weft_ipam_request *req, const char *aff_node, struct weft_ip *out)
{
	_cleanup_free_ char *key = rec_key(b);
	struct weft_ip ip;
	int r;

	if (block_free_ip(b, &ip) < 0)
		return -ENOSPC;
	ipam_rec_add(b, &ip, req->handle, &req->attrs);
	ipam_handle_add(h, &ip, key);
	r = commit(m, b, h, aff_node);
	if (r == 0) {
		*out = ip;
		return 0;
	}
	/* Nothing was written: take the address out of b and h again, so that
	 * the caller's next try (another block, after -ENOSPC for a record
	 * grown past its cap) does not write a handle record listing it. */
	(void)ipam_handle_remove(h, &ip, key);
	ipam_rec_remove_at(b, (size_t)ipam_rec_find(b, &ip));
	return r;
}

static int cmp_rec_ip(const void *a, const void *b)
{
	const struct ipam_rec *x = a, *y = b;
	return weft_ip_cmp(&x->cidr.ip, &y->cidr.ip);
}

/* One attempt at one address: 0, -ECANCELED (conflict: retry), -ENOSPC or
 * another error. */
static int assign_one_once(struct weft_ipam *m, const struct weft_ipam_request *req, struct ipam_pool **pools,
			   size_t np, struct weft_ip *out)
{
	struct ipam_handle_rec h = {0};
	struct weft_kv_list aff = {0};
	struct ipam_rec *blocks = NULL;
	const struct ipam_pool *overlapping = NULL;
	size_t nb = 0;
	_cleanup_free_ char *aprefix = wasprintf("%s%s/", WEFT_IPAM_AFFINITIES_PREFIX, req->node);
	int r;

	r = handle_get(m, req->handle, &h);
	if (r < 0)
		return r;

	/* 1. The node's own blocks. */
	r = weft_store_list(m->s, aprefix, &aff);
	if (r < 0) {
		r = store_fail(m, r, "list", aprefix);
		goto out;
	}
	for (size_t i = 0; i < aff.n; i++) {
		_cleanup_free_ char *node = NULL, *err = NULL, *bkey = NULL;
		struct ipam_rec b = {0};
		struct weft_cidr c;

		r = ipam_affinity_decode(aff.items[i].key, aff.items[i].value, aff.items[i].value_len, &node, &c, &err);
		if (r < 0) {
			r = fail(m, r, "%s", err);
			goto out;
		}
		if (!in_pools(pools, np, &c))
			continue;
		bkey = ipam_block_key(&c);
		r = rec_get(m, IPAM_REC_BLOCK, bkey, &b);
		if (r == -ENOENT)
			continue; /* released meanwhile; ipam check reports a stale affinity */
		if (r == -EBADMSG) {
			/* Not this one, but the node's other blocks or a new one. */
			log_warn("ipam: corrupt record left out (weftctl ipam check reports it): %s", m->errmsg);
			continue;
		}
		if (r < 0)
			goto out;
		if (b.affinity && streq(b.affinity, req->node)) {
			r = alloc_in(m, &b, &h, req, NULL, out);
			if (r != -ENOSPC) {
				ipam_rec_clear(&b);
				goto out;
			}
		}
		ipam_rec_clear(&b);
	}

	/* 2. Claim the first free block of the first pool that has one. A
	 * candidate must not overlap any existing block, whatever its size
	 * (a pool re-created with another blockSize leaves old blocks). */
	r = recs_list(m, IPAM_REC_BLOCK, &blocks, &nb);
	if (r < 0)
		goto out;
	qsort(blocks, nb, sizeof(*blocks), cmp_rec_ip);
	for (size_t p = 0; p < np; p++) {
		struct weft_cidr cand = {.ip = pools[p]->cidr.ip, .prefixlen = pools[p]->block_size};
		size_t j = 0;

		if (pools[p]->overlaps) {
			if (!overlapping)
				overlapping = pools[p];
			continue;
		}
		for (;;) {
			struct weft_ip cend, next;
			bool overlap = false;

			weft_cidr_last(&cand, &cend);
			/* Skip the blocks that end before the candidate starts. */
			while (j < nb) {
				struct weft_ip bend;
				weft_cidr_last(&blocks[j].cidr, &bend);
				if (blocks[j].cidr.ip.family == cand.ip.family && weft_ip_cmp(&bend, &cand.ip) >= 0)
					break;
				j++;
			}
			if (j < nb && blocks[j].cidr.ip.family == cand.ip.family &&
			    weft_ip_cmp(&blocks[j].cidr.ip, &cend) <= 0)
				overlap = true;
			if (!overlap) {
				struct ipam_rec nbk = {.type = IPAM_REC_BLOCK, .cidr = cand,
						       .affinity = wstrdup(req->node)};
				r = alloc_in(m, &nbk, &h, req, req->node, out);
				ipam_rec_clear(&nbk);
				goto out;
			}
			if (weft_ip_add(&cend, 1, &next) < 0 || !weft_cidr_contains(&pools[p]->cidr, &next))
				break;
			cand.ip = next;
		}
	}

	/* 3. No block left to claim: borrow from any block of the pools. */
	for (size_t i = 0; i < nb; i++) {
		if (blocks[i].corrupt || !in_pools(pools, np, &blocks[i].cidr))
			continue;
		r = alloc_in(m, &blocks[i], &h, req, NULL, out);
		if (r != -ENOSPC)
			goto out;
	}
	if (overlapping)
		r = fail(m, -ENOSPC,
			 "no free address in the pool%s %s%s: pool %s's spec.cidr overlaps pool %s's, so no new block "
			 "is claimed from either (delete or change one of them)",
			 np > 1 ? "s" : "", pools[0]->name, np > 1 ? ", ..." : "", overlapping->name,
			 overlapping->overlaps);
	else
		r = fail(m, -ENOSPC, "no free address in the pool%s %s%s", np > 1 ? "s" : "", pools[0]->name,
			 np > 1 ? ", ..." : "");
out:
	recs_free(blocks, nb);
	weft_kv_list_clear(&aff);
	ipam_handle_rec_clear(&h);
	return r;
}

static int release_ip_for(struct weft_ipam *m, const struct weft_ip *ip, const char *handle);

int weft_ipam_auto_assign(struct weft_ipam *m, const struct weft_ipam_request *req, struct weft_ip *out)
{
	struct ipam_pool *pools = NULL, **chosen = NULL;
	size_t np = 0, nc = 0;
	unsigned count = req->count ? req->count : 1;
	int family = req->family ? req->family : AF_INET;
	struct weft_ip got[WEFT_IPAM_COUNT_MAX];
	unsigned k;
	int r;

	m->errmsg[0] = 0;
	if (!ipam_name_ok(req->handle))
		return fail(m, -EINVAL, "invalid handle");
	if (!ipam_name_ok(req->node))
		return fail(m, -EINVAL, "invalid node name");
	if (count > WEFT_IPAM_COUNT_MAX)
		return fail(m, -EINVAL, "at most %d addresses per request", WEFT_IPAM_COUNT_MAX);
	if (family != AF_INET && family != AF_INET6)
		return fail(m, -EINVAL, "unknown address family %d", family);
	r = check_attrs(m, &req->attrs);
	if (r < 0)
		return r;
	r = load_pools(m, &pools, &np);
	if (r < 0)
		return r;
	r = choose_pools(m, req->node, req->pools, req->npools, req->by_selector, family, pools, np, &chosen, &nc);
	if (r < 0)
		goto out;
	for (k = 0; k < count; k++) {
		r = RETRY(m, "allocate", assign_one_once(m, req, chosen, nc, &got[k]));
		if (r < 0)
			break;
	}
	if (r < 0) {
		/* All or nothing: give back what this call took. The error
		 * message of the failure is the one worth keeping. */
		char keep[sizeof(m->errmsg)];
		memcpy(keep, m->errmsg, sizeof(keep));
		for (unsigned i = 0; i < k; i++)
			(void)RETRY(m, "release", release_ip_for(m, &got[i], req->handle));
		memcpy(m->errmsg, keep, sizeof(keep));
		goto out;
	}
	memcpy(out, got, count * sizeof(*out));
	r = (int)count;
out:
	free(chosen);
	pools_free(pools, np);
	return r;
}

/* --- static assignment ------------------------------------------------------- */

static int assign_ip_once(struct weft_ipam *m, const char *handle, const struct weft_ip *ip, const char *node,
			  const struct weft_ipam_attrs *attrs, const struct ipam_pool *pool, const struct weft_cidr *bc)
{
	_cleanup_free_ char *bkey = ipam_block_key(bc);
	struct ipam_handle_rec h = {0};
	struct ipam_rec b = {0};
	const char *aff = NULL;
	char ips[WEFT_IP_STRLEN];
	ssize_t i;
	int r;

	r = rec_get(m, IPAM_REC_BLOCK, bkey, &b);
	if (r == -ENOENT && pool->overlaps)
		return fail(m, -EINVAL,
			    "%s: pool %s's spec.cidr overlaps pool %s's, so no new block is claimed from either "
			    "(delete or change one of them)",
			    weft_ip_str(ip, ips, sizeof(ips)), pool->name, pool->overlaps);
	if (r == -ENOENT) {
		struct ipam_rec *all = NULL;
		size_t na = 0;
		/* A block of another size (a pool re-created with another
		 * blockSize) may already cover the address. */
		r = recs_list(m, IPAM_REC_BLOCK, &all, &na);
		if (r < 0)
			return r;
		for (size_t j = 0; j < na; j++)
			if (weft_cidr_overlaps(&all[j].cidr, bc)) {
				char cs[WEFT_CIDR_STRLEN];
				recs_free(all, na);
				return fail(m, -EEXIST, "block %s overlaps the block of %s; was the pool's blockSize changed?",
					    weft_cidr_str(&all[j].cidr, cs, sizeof(cs)), weft_ip_str(ip, ips, sizeof(ips)));
			}
		recs_free(all, na);
		b = (struct ipam_rec){.type = IPAM_REC_BLOCK, .cidr = *bc, .affinity = node ? wstrdup(node) : NULL};
		aff = node;
	} else if (r < 0) {
		return r;
	}
	i = ipam_rec_find(&b, ip);
	if (i >= 0) {
		r = streq(b.allocs[i].handle, handle)
			    ? 0
			    : fail(m, -EEXIST, "%s is in use by handle %s", weft_ip_str(ip, ips, sizeof(ips)),
				   b.allocs[i].handle);
		ipam_rec_clear(&b);
		return r;
	}
	r = handle_get(m, handle, &h);
	if (r < 0)
		goto out;
	ipam_rec_add(&b, ip, handle, attrs);
	ipam_handle_add(&h, ip, bkey);
	r = commit(m, &b, &h, aff);
out:
	ipam_handle_rec_clear(&h);
	ipam_rec_clear(&b);
	return r;
}

int weft_ipam_assign_ip(struct weft_ipam *m, const char *handle, const struct weft_ip *ip, const char *node,
			const struct weft_ipam_attrs *attrs)
{
	struct ipam_pool *pools = NULL, *pool = NULL;
	size_t np = 0;
	char ips[WEFT_IP_STRLEN];
	struct weft_cidr bc;
	int r;

	m->errmsg[0] = 0;
	if (!ipam_name_ok(handle))
		return fail(m, -EINVAL, "invalid handle");
	if (node && !ipam_name_ok(node))
		return fail(m, -EINVAL, "invalid node name");
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6))
		return fail(m, -EINVAL, "no address");
	r = check_attrs(m, attrs);
	if (r < 0)
		return r;
	r = load_pools(m, &pools, &np);
	if (r < 0)
		return r;
	for (size_t i = 0; i < np && !pool; i++)
		if (!pools[i].disabled && weft_cidr_contains(&pools[i].cidr, ip))
			pool = &pools[i];
	if (!pool) {
		r = fail(m, -EINVAL, "%s is not inside an enabled pool", weft_ip_str(ip, ips, sizeof(ips)));
		goto out;
	}
	bc = (struct weft_cidr){.ip = *ip, .prefixlen = pool->block_size};
	weft_cidr_mask(&bc);
	r = RETRY(m, "assign", assign_ip_once(m, handle, ip, node, attrs, pool, &bc));
out:
	pools_free(pools, np);
	return r;
}

/* --- release ------------------------------------------------------------------ */

/* Parse the CIDR a block key names ("10.65.0.64-26"): 0 or -EINVAL. */
static int block_key_cidr(const char *key, struct weft_cidr *out)
{
	char buf[WEFT_CIDR_STRLEN];
	char *dash;

	if (!startswith(key, WEFT_IPAM_BLOCKS_PREFIX) ||
	    weft_strlcpy(buf, key + strlen(WEFT_IPAM_BLOCKS_PREFIX), sizeof(buf)) < 0)
		return -EINVAL;
	dash = strrchr(buf, '-');
	if (!dash)
		return -EINVAL;
	*dash = '/';
	return weft_cidr_parse(buf, true, out);
}

/* Find the record holding ip (blocks first, then ranges; the first range
 * in key order when ranges of several networks overlap): 0 and *out (its
 * mod_rev set), or -ENOENT. */
static int find_holder(struct weft_ipam *m, const struct weft_ip *ip, struct ipam_rec *out)
{
	struct weft_kv_list l = {0};
	int r;

	r = weft_store_list(m->s, WEFT_IPAM_BLOCKS_PREFIX, &l);
	if (r < 0)
		return store_fail(m, r, "list", WEFT_IPAM_BLOCKS_PREFIX);
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_free_ char *err = NULL;
		struct weft_cidr c;
		struct ipam_rec b = {0};

		/* The key names the CIDR: decode only the block that can hold ip. */
		if (block_key_cidr(l.items[i].key, &c) == 0 && !weft_cidr_contains(&c, ip))
			continue;
		r = ipam_rec_decode(IPAM_REC_BLOCK, l.items[i].key, l.items[i].value, l.items[i].value_len, &b, &err);
		if (r < 0) {
			weft_kv_list_clear(&l);
			return fail(m, r, "%s", err);
		}
		if (ipam_rec_find(&b, ip) >= 0) {
			b.mod_rev = l.items[i].mod_rev;
			*out = b;
			weft_kv_list_clear(&l);
			return 0;
		}
		ipam_rec_clear(&b);
	}
	weft_kv_list_clear(&l);

	struct ipam_rec *ranges = NULL;
	size_t nr = 0;
	r = recs_list(m, IPAM_REC_RANGE, &ranges, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr; i++)
		if (ipam_rec_find(&ranges[i], ip) >= 0) {
			*out = ranges[i];
			ranges[i] = (struct ipam_rec){0};
			recs_free(ranges, nr);
			return 0;
		}
	recs_free(ranges, nr);
	return -ENOENT;
}

/* Release ip when handle (any handle when NULL) holds it: 1, 0 when not
 * allocated (to it), -ECANCELED on a conflict. */
static int release_ip_for(struct weft_ipam *m, const struct weft_ip *ip, const char *handle)
{
	struct ipam_handle_rec h = {0};
	struct ipam_rec rec = {0};
	_cleanup_free_ char *key = NULL;
	ssize_t i;
	int r;

	r = find_holder(m, ip, &rec);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	i = ipam_rec_find(&rec, ip);
	if (handle && !streq(rec.allocs[i].handle, handle)) {
		r = 0;
		goto out;
	}
	r = handle_get(m, rec.allocs[i].handle, &h);
	if (r < 0)
		goto out;
	key = rec_key(&rec);
	ipam_handle_remove(&h, ip, key);
	ipam_rec_remove_at(&rec, (size_t)i);
	r = commit(m, &rec, &h, NULL);
	if (r == 0)
		r = 1;
out:
	ipam_handle_rec_clear(&h);
	ipam_rec_clear(&rec);
	return r;
}

int weft_ipam_release_ip(struct weft_ipam *m, const struct weft_ip *ip)
{
	m->errmsg[0] = 0;
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6))
		return fail(m, -EINVAL, "no address");
	return RETRY(m, "release", release_ip_for(m, ip, NULL));
}

/* One step of a release by handle: free the handle's addresses in the
 * holder of its first entry. *released gets the count; returns 1 when
 * there is more to do, 0 when the handle record is gone, -ECANCELED on a
 * conflict. */
static int release_handle_step(struct weft_ipam *m, const char *handle, int *released)
{
	_cleanup_free_ char *hkey = ipam_handle_key(handle);
	struct ipam_handle_rec h = {0};
	struct ipam_rec rec = {0};
	char *key;
	int r, n = 0;

	r = handle_get(m, handle, &h);
	if (r < 0)
		return r;
	if (!h.mod_rev) {
		ipam_handle_rec_clear(&h);
		return 0;
	}
	if (h.n == 0) {
		struct weft_txn_cmp c = {hkey, h.mod_rev};
		struct weft_txn_op o = {WEFT_OP_DELETE, hkey, NULL, 0};
		ipam_handle_rec_clear(&h);
		r = weft_store_txn(m->s, &c, 1, &o, 1, NULL);
		return r == -ECANCELED ? r : r < 0 ? store_fail(m, r, "delete", hkey) : 0;
	}
	key = wstrdup(h.entries[0].key);
	r = rec_get(m, key_type(key), key, &rec);
	if (r == -ENOENT) {
		/* The holder is gone (deleted by hand?): drop its entries, with
		 * a compare that it is still absent. */
		struct weft_txn_cmp c[2] = {{hkey, h.mod_rev}, {key, 0}};
		struct weft_txn_op o;
		_cleanup_free_ char *hval = NULL;
		for (size_t i = h.n; i-- > 0;)
			if (streq(h.entries[i].key, key))
				ipam_handle_remove(&h, &h.entries[i].ip, key);
		if (h.n) {
			hval = ipam_handle_encode(&h);
			o = (struct weft_txn_op){WEFT_OP_PUT, hkey, hval, strlen(hval)};
		} else {
			o = (struct weft_txn_op){WEFT_OP_DELETE, hkey, NULL, 0};
		}
		r = weft_store_txn(m->s, c, 2, &o, 1, NULL);
		if (r < 0 && r != -ECANCELED)
			r = store_fail(m, r, "txn on", hkey);
		else if (r == 0)
			r = 1;
		goto out;
	}
	if (r < 0)
		goto out;
	/* Every address of this handle in that record goes, and its entries. */
	for (size_t i = rec.n; i-- > 0;)
		if (streq(rec.allocs[i].handle, handle)) {
			ipam_handle_remove(&h, &rec.allocs[i].ip, key);
			ipam_rec_remove_at(&rec, i);
			n++;
		}
	for (size_t i = h.n; i-- > 0;)
		if (streq(h.entries[i].key, key))
			ipam_handle_remove(&h, &h.entries[i].ip, key);
	r = commit(m, &rec, &h, NULL);
	if (r == 0) {
		*released = n;
		r = 1;
	}
out:
	free(key);
	ipam_rec_clear(&rec);
	ipam_handle_rec_clear(&h);
	return r;
}

int weft_ipam_release_handle(struct weft_ipam *m, const char *handle)
{
	int total = 0;

	m->errmsg[0] = 0;
	if (!ipam_name_ok(handle))
		return fail(m, -EINVAL, "invalid handle");
	for (;;) {
		int n = 0;
		int r = RETRY(m, "release", release_handle_step(m, handle, &n));
		if (r < 0)
			return r;
		total += n;
		if (r == 0)
			return total;
	}
}

/* Release the empty blocks affine to node (see ipam.h); with all, also
 * give up node's blocks that still hold addresses: they stay, affine to
 * nobody. */
static int release_blocks(struct weft_ipam *m, const char *node, bool all)
{
	_cleanup_free_ char *prefix = NULL;
	struct weft_kv_list aff = {0};
	struct ipam_rec *blocks = NULL;
	size_t nb = 0;
	int r, released = 0;

	m->errmsg[0] = 0;
	if (node && !ipam_name_ok(node))
		return fail(m, -EINVAL, "invalid node name");
	prefix = node ? wasprintf("%s%s/", WEFT_IPAM_AFFINITIES_PREFIX, node) : wstrdup(WEFT_IPAM_AFFINITIES_PREFIX);
	r = weft_store_list(m->s, prefix, &aff);
	if (r < 0)
		return store_fail(m, r, "list", prefix);
	for (size_t i = 0; i < aff.n; i++) {
		_cleanup_free_ char *anode = NULL, *err = NULL, *bkey = NULL;
		struct ipam_rec b = {0};
		struct weft_cidr c;

		r = ipam_affinity_decode(aff.items[i].key, aff.items[i].value, aff.items[i].value_len, &anode, &c, &err);
		if (r < 0) {
			r = fail(m, r, "%s", err);
			goto out;
		}
		bkey = ipam_block_key(&c);
		r = rec_get(m, IPAM_REC_BLOCK, bkey, &b);
		if (r == -EBADMSG) {
			/* A corrupt block is kept, with its affinity. */
			log_warn("ipam: corrupt record left out (weftctl ipam check reports it): %s", m->errmsg);
			continue;
		}
		bool mine = r == 0 && b.affinity && streq(b.affinity, anode);
		if (r == -ENOENT || (r == 0 && !mine) || (mine && b.n == 0)) {
			/* An empty block goes with its affinity, in one txn comparing
			 * both: if an address was taken meanwhile, the compare fails
			 * and the block stays. A stale affinity (its block is gone or
			 * affine to another node) goes alone, with the same compares. */
			struct weft_txn_cmp cmps[2] = {{aff.items[i].key, aff.items[i].mod_rev}, {bkey, b.mod_rev}};
			struct weft_txn_op ops[2] = {{WEFT_OP_DELETE, aff.items[i].key, NULL, 0},
						     {WEFT_OP_DELETE, bkey, NULL, 0}};
			ipam_rec_clear(&b);
			r = weft_store_txn(m->s, cmps, 2, ops, mine ? 2 : 1, NULL);
			if (r == -ECANCELED && all && mine) {
				/* It gained an address meanwhile: giving the node
				 * up must not leave it affine. */
				r = fail(m, -EAGAIN, "%s changed meanwhile: try again", bkey);
				goto out;
			}
			if (r < 0 && r != -ECANCELED) {
				r = store_fail(m, r, "txn on", bkey);
				goto out;
			}
			if (r == 0 && mine)
				released++;
			continue;
		}
		if (r == 0 && all) {
			/* Not empty (addresses other nodes borrowed): the block
			 * stays, affine to nobody, and its affinity goes, in one
			 * txn comparing both. */
			_cleanup_free_ char *val = NULL;
			struct weft_txn_cmp cmps[2] = {{aff.items[i].key, aff.items[i].mod_rev}, {bkey, b.mod_rev}};
			free(b.affinity);
			b.affinity = NULL;
			val = ipam_rec_encode(&b);
			struct weft_txn_op ops[2] = {{WEFT_OP_DELETE, aff.items[i].key, NULL, 0},
						     {WEFT_OP_PUT, bkey, val, strlen(val)}};
			ipam_rec_clear(&b);
			r = weft_store_txn(m->s, cmps, 2, ops, 2, NULL);
			if (r == -ECANCELED) {
				r = fail(m, -EAGAIN, "%s changed meanwhile: try again", bkey);
				goto out;
			}
			if (r < 0) {
				r = store_fail(m, r, "txn on", bkey);
				goto out;
			}
			released++;
			continue;
		}
		ipam_rec_clear(&b);
		if (r < 0)
			goto out;
	}
	if (!node) {
		/* Empty blocks affine to nobody (claimed for a static address). */
		r = recs_list(m, IPAM_REC_BLOCK, &blocks, &nb);
		if (r < 0)
			goto out;
		for (size_t i = 0; i < nb; i++) {
			if (blocks[i].affinity || blocks[i].n || blocks[i].corrupt)
				continue;
			_cleanup_free_ char *bkey = ipam_block_key(&blocks[i].cidr);
			struct weft_txn_cmp cmp = {bkey, blocks[i].mod_rev};
			struct weft_txn_op op = {WEFT_OP_DELETE, bkey, NULL, 0};
			r = weft_store_txn(m->s, &cmp, 1, &op, 1, NULL);
			if (r < 0 && r != -ECANCELED) {
				r = store_fail(m, r, "txn on", bkey);
				goto out;
			}
			if (r == 0)
				released++;
		}
	}
	r = released;
out:
	recs_free(blocks, nb);
	weft_kv_list_clear(&aff);
	return r;
}

int weft_ipam_release_empty_blocks(struct weft_ipam *m, const char *node)
{
	return release_blocks(m, node, false);
}

int weft_ipam_release_node_blocks(struct weft_ipam *m, const char *node)
{
	if (!node) {
		m->errmsg[0] = 0;
		return fail(m, -EINVAL, "no node given");
	}
	return release_blocks(m, node, true);
}

/* --- queries -------------------------------------------------------------------- */

void weft_ipam_usage_free(struct weft_ipam_usage *u, size_t n)
{
	for (size_t i = 0; u && i < n; i++) {
		free(u[i].name);
		free(u[i].affinity);
	}
	free(u);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int weft_ipam_usage(struct weft_ipam *m, struct weft_ipam_usage **out, size_t *n)
{
	struct ipam_pool *pools = NULL;
	struct ipam_rec *blocks = NULL, *ranges = NULL;
	size_t np = 0, nb = 0, nr = 0, k = 0;
	struct weft_ipam_usage *u;
	int r;

	m->errmsg[0] = 0;
	r = load_pools(m, &pools, &np);
	if (r < 0)
		return r;
	r = recs_list(m, IPAM_REC_BLOCK, &blocks, &nb);
	if (r < 0)
		goto out;
	r = recs_list(m, IPAM_REC_RANGE, &ranges, &nr);
	if (r < 0)
		goto out;
	u = wcalloc(np + nb + nr + 1, sizeof(*u));
	for (size_t i = 0; i < np; i++, k++) {
		u[k] = (struct weft_ipam_usage){.kind = WEFT_IPAM_USAGE_POOL, .name = wstrdup(pools[i].name),
						.cidr = pools[i].cidr, .total = ipam_cidr_size(&pools[i].cidr),
						.disabled = pools[i].disabled};
		for (size_t j = 0; j < nb; j++)
			if (weft_cidr_covers(&pools[i].cidr, &blocks[j].cidr))
				u[k].used = sat_add(u[k].used, blocks[j].n);
	}
	for (size_t j = 0; j < nb; j++) {
		if (blocks[j].corrupt)
			continue; /* logged by recs_list(); weft_ipam_check() reports it */
		u[k++] = (struct weft_ipam_usage){.kind = WEFT_IPAM_USAGE_BLOCK, .name = rec_key(&blocks[j]),
						.cidr = blocks[j].cidr,
						.affinity = blocks[j].affinity ? wstrdup(blocks[j].affinity) : NULL,
						.total = ipam_cidr_size(&blocks[j].cidr), .used = blocks[j].n};
	}
	for (size_t j = 0; j < nr; j++, k++)
		u[k] = (struct weft_ipam_usage){.kind = WEFT_IPAM_USAGE_RANGE, .name = rec_key(&ranges[j]),
						.cidr = ranges[j].cidr, .affinity = wstrdup(ranges[j].network),
						.total = ipam_cidr_size(&ranges[j].cidr), .used = ranges[j].n};
	*out = u;
	*n = k;
	r = (int)k;
out:
	recs_free(blocks, nb);
	recs_free(ranges, nr);
	pools_free(pools, np);
	return r;
}

static void alloc_copy(struct weft_ipam_allocation *dst, const struct weft_ipam_allocation *src, const char *holder)
{
	*dst = (struct weft_ipam_allocation){.ip = src->ip, .handle = wstrdup(src->handle), .holder = wstrdup(holder)};
	dst->attrs.namespace = src->attrs.namespace ? wstrdup(src->attrs.namespace) : NULL;
	dst->attrs.pod = src->attrs.pod ? wstrdup(src->attrs.pod) : NULL;
	dst->attrs.node = src->attrs.node ? wstrdup(src->attrs.node) : NULL;
	dst->attrs.container_id = src->attrs.container_id ? wstrdup(src->attrs.container_id) : NULL;
	dst->attrs.ifname = src->attrs.ifname ? wstrdup(src->attrs.ifname) : NULL;
	dst->attrs.network = src->attrs.network ? wstrdup(src->attrs.network) : NULL;
	dst->attrs.plugin = src->attrs.plugin ? wstrdup(src->attrs.plugin) : NULL;
}

int weft_ipam_lookup_ip(struct weft_ipam *m, const struct weft_ip *ip, struct weft_ipam_allocation *out)
{
	struct ipam_rec rec = {0};
	char ips[WEFT_IP_STRLEN];
	int r;

	m->errmsg[0] = 0;
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6))
		return fail(m, -EINVAL, "no address");
	r = find_holder(m, ip, &rec);
	if (r == -ENOENT)
		return fail(m, r, "%s is not allocated", weft_ip_str(ip, ips, sizeof(ips)));
	if (r < 0)
		return r;
	_cleanup_free_ char *key = rec_key(&rec);
	alloc_copy(out, &rec.allocs[ipam_rec_find(&rec, ip)], key);
	ipam_rec_clear(&rec);
	return 0;
}

int weft_ipam_list_allocations(struct weft_ipam *m, struct weft_ipam_allocation **out, size_t *n)
{
	struct ipam_rec *recs[2] = {NULL, NULL};
	size_t nrec[2] = {0, 0}, total = 0, k = 0;
	struct weft_ipam_allocation *a;
	int r;

	m->errmsg[0] = 0;
	r = recs_list(m, IPAM_REC_BLOCK, &recs[0], &nrec[0]);
	if (r < 0)
		return r;
	r = recs_list(m, IPAM_REC_RANGE, &recs[1], &nrec[1]);
	if (r < 0) {
		recs_free(recs[0], nrec[0]);
		return r;
	}
	for (int t = 0; t < 2; t++) {
		qsort(recs[t], nrec[t], sizeof(struct ipam_rec), cmp_rec_ip);
		for (size_t i = 0; i < nrec[t]; i++)
			total += recs[t][i].n;
	}
	a = wcalloc(total + 1, sizeof(*a));
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < nrec[t]; i++) {
			_cleanup_free_ char *key = rec_key(&recs[t][i]);
			for (size_t j = 0; j < recs[t][i].n; j++)
				alloc_copy(&a[k++], &recs[t][i].allocs[j], key);
		}
	recs_free(recs[0], nrec[0]);
	recs_free(recs[1], nrec[1]);
	*out = a;
	*n = k;
	return (int)k;
}

/* --- check ------------------------------------------------------------------------ */

struct problems {
	char **v;
	size_t n, cap;
};

static void PRINTF_LIKE(2, 3) problem(struct problems *p, const char *fmt, ...)
{
	va_list ap;

	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->v = wrealloc(p->v, p->cap * sizeof(*p->v));
	}
	va_start(ap, fmt);
	p->v[p->n++] = wvasprintf(fmt, ap);
	va_end(ap);
}

static const struct weft_kv *kv_find(const struct weft_kv_list *l, const char *key)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->items[mid].key, key);
		if (c == 0)
			return &l->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int weft_ipam_check(struct weft_ipam *m, char ***problems_out, size_t *n)
{
	struct weft_kv_list all = {0};
	struct problems p = {0};
	char ips[WEFT_IP_STRLEN], cs[WEFT_CIDR_STRLEN], cs2[WEFT_CIDR_STRLEN];
	struct ipam_rec *blocks;
	size_t nb = 0;
	int r;

	m->errmsg[0] = 0;
	/* One read of everything, so the records are seen at one revision. */
	r = weft_store_list(m->s, WEFT_IPAM_PREFIX, &all);
	if (r < 0)
		return store_fail(m, r, "list", WEFT_IPAM_PREFIX);
	blocks = wcalloc(all.n + 1, sizeof(*blocks));
	for (size_t i = 0; i < all.n; i++) {
		const struct weft_kv *kv = &all.items[i];
		_cleanup_free_ char *err = NULL;

		if (startswith(kv->key, WEFT_IPAM_BLOCKS_PREFIX) || startswith(kv->key, WEFT_IPAM_RANGES_PREFIX)) {
			struct ipam_rec rec = {0};
			if (ipam_rec_decode(key_type(kv->key), kv->key, kv->value, kv->value_len, &rec, &err) < 0) {
				problem(&p, "corrupt record: %s", err);
				continue;
			}
			for (size_t j = 0; j < rec.n; j++) {
				const struct weft_ipam_allocation *a = &rec.allocs[j];
				_cleanup_free_ char *hkey = ipam_handle_key(a->handle);
				const struct weft_kv *hkv = kv_find(&all, hkey);
				struct ipam_handle_rec h = {0};
				bool listed = false;
				if (hkv && ipam_handle_decode(hkey, hkv->value, hkv->value_len, &h, NULL) == 0)
					for (size_t e = 0; e < h.n && !listed; e++)
						listed = weft_ip_eq(&h.entries[e].ip, &a->ip) && streq(h.entries[e].key, kv->key);
				ipam_handle_rec_clear(&h);
				if (!listed)
					problem(&p, "%s: %s is held by handle %s, whose handle record does not list it",
						kv->key, weft_ip_str(&a->ip, ips, sizeof(ips)), a->handle);
			}
			if (rec.type == IPAM_REC_BLOCK) {
				if (rec.affinity) {
					_cleanup_free_ char *akey = ipam_affinity_key(rec.affinity, &rec.cidr);
					if (!kv_find(&all, akey))
						problem(&p, "%s: affine to %s but %s is missing", kv->key, rec.affinity, akey);
				}
				blocks[nb++] = rec;
			} else {
				ipam_rec_clear(&rec);
			}
		} else if (startswith(kv->key, WEFT_IPAM_HANDLES_PREFIX)) {
			struct ipam_handle_rec h = {0};
			if (ipam_handle_decode(kv->key, kv->value, kv->value_len, &h, &err) < 0) {
				problem(&p, "corrupt record: %s", err);
				continue;
			}
			for (size_t e = 0; e < h.n; e++) {
				const struct weft_kv *rkv = kv_find(&all, h.entries[e].key);
				struct ipam_rec rec = {0};
				ssize_t j = -1;
				weft_ip_str(&h.entries[e].ip, ips, sizeof(ips));
				if (!rkv) {
					problem(&p, "%s: %s: record %s is missing", kv->key, ips, h.entries[e].key);
					continue;
				}
				if (ipam_rec_decode(key_type(rkv->key), rkv->key, rkv->value, rkv->value_len, &rec, NULL) < 0)
					continue; /* reported above */
				j = ipam_rec_find(&rec, &h.entries[e].ip);
				if (j < 0 || !streq(rec.allocs[j].handle, h.handle))
					problem(&p, "%s: %s is not held by this handle in %s", kv->key, ips, rkv->key);
				ipam_rec_clear(&rec);
			}
			if (h.n == 0)
				problem(&p, "%s: handle record with no addresses", kv->key);
			ipam_handle_rec_clear(&h);
		} else if (startswith(kv->key, WEFT_IPAM_AFFINITIES_PREFIX)) {
			_cleanup_free_ char *node = NULL, *bkey = NULL;
			struct weft_cidr c;
			const struct weft_kv *bkv;
			struct ipam_rec b = {0};
			if (ipam_affinity_decode(kv->key, kv->value, kv->value_len, &node, &c, &err) < 0) {
				problem(&p, "corrupt record: %s", err);
				continue;
			}
			bkey = ipam_block_key(&c);
			bkv = kv_find(&all, bkey);
			if (!bkv) {
				problem(&p, "%s: block %s is missing", kv->key, weft_cidr_str(&c, cs, sizeof(cs)));
				continue;
			}
			if (ipam_rec_decode(IPAM_REC_BLOCK, bkey, bkv->value, bkv->value_len, &b, NULL) == 0 &&
			    (!b.affinity || !streq(b.affinity, node)))
				problem(&p, "%s: block %s is affine to %s", kv->key, bkey, b.affinity ? b.affinity : "nobody");
			ipam_rec_clear(&b);
		} else {
			problem(&p, "%s: unknown IPAM key", kv->key);
		}
	}
	/* In start order, each block against the one before it that reaches
	 * farthest: a small block between a big one and a third one inside the
	 * big one does not hide the overlap of the outer two. */
	qsort(blocks, nb, sizeof(*blocks), cmp_rec_ip);
	for (size_t i = 1, far = 0; i < nb; i++) {
		struct weft_ip end_i, end_far;
		if (weft_cidr_overlaps(&blocks[far].cidr, &blocks[i].cidr))
			problem(&p, "blocks %s and %s overlap", weft_cidr_str(&blocks[far].cidr, cs, sizeof(cs)),
				weft_cidr_str(&blocks[i].cidr, cs2, sizeof(cs2)));
		weft_cidr_last(&blocks[i].cidr, &end_i);
		weft_cidr_last(&blocks[far].cidr, &end_far);
		if (weft_ip_cmp(&end_i, &end_far) > 0)
			far = i;
	}
	recs_free(blocks, nb);
	weft_kv_list_clear(&all);
	*problems_out = p.v;
	*n = p.n;
	return (int)p.n;
}

/* --- range IPAM --------------------------------------------------------------------- */

int weft_ipam_range_parse(const char *s, struct weft_ipam_range *r)
{
	char buf[2 * WEFT_IP_STRLEN + 8];
	const char *dash, *slash;
	struct weft_cidr sub;
	struct weft_ip a, b;

	if (!s || !r || weft_strlcpy(buf, s, sizeof(buf)) < 0)
		return -EINVAL;
	slash = strchr(s, '/');
	dash = strchr(s, '-');
	if (!slash)
		return -EINVAL;
	if (!dash || dash > slash) {
		if (weft_cidr_parse(s, false, &sub) < 0)
			return -EINVAL;
		weft_cidr_mask(&sub);
		r->subnet = sub;
		return 0;
	}
	/* first-last/prefix */
	buf[dash - s] = 0;
	if (weft_ip_parse(buf, &a) < 0)
		return -EINVAL;
	buf[slash - s] = 0;
	if (weft_ip_parse(buf + (dash - s) + 1, &b) < 0 || a.family != b.family)
		return -EINVAL;
	{
		_cleanup_free_ char *first = wasprintf("%s%s", buf, slash); /* "first/prefix" */
		if (weft_cidr_parse(first, false, &sub) < 0)
			return -EINVAL;
	}
	weft_cidr_mask(&sub);
	if (!weft_cidr_contains(&sub, &b) || weft_ip_cmp(&a, &b) > 0)
		return -EINVAL;
	r->subnet = sub;
	r->start = a;
	r->end = b;
	return 0;
}

char *weft_ipam_range_key(const struct weft_ipam_range *r)
{
	struct weft_cidr sub = r->subnet;

	weft_cidr_mask(&sub);
	return ipam_range_key(r->network, &sub);
}

int weft_ipam_range_validate(struct weft_ipam *m, const struct weft_ipam_range *r)
{
	char a[WEFT_IP_STRLEN], cs[WEFT_CIDR_STRLEN];
	int fam = r->subnet.ip.family;
	struct weft_cidr sub = r->subnet;

	if (!ipam_name_ok(r->network))
		return fail(m, -EINVAL, "network: not a usable network name");
	if (fam != AF_INET && fam != AF_INET6)
		return fail(m, -EINVAL, "range: no subnet");
	weft_cidr_mask(&sub);
	weft_cidr_str(&sub, cs, sizeof(cs));
	if (r->start.family && (r->start.family != fam || !weft_cidr_contains(&sub, &r->start)))
		return fail(m, -EINVAL, "range_start: %s is outside %s", weft_ip_str(&r->start, a, sizeof(a)), cs);
	if (r->end.family && (r->end.family != fam || !weft_cidr_contains(&sub, &r->end)))
		return fail(m, -EINVAL, "range_end: %s is outside %s", weft_ip_str(&r->end, a, sizeof(a)), cs);
	if (r->start.family && r->end.family && weft_ip_cmp(&r->start, &r->end) > 0)
		return fail(m, -EINVAL, "range_start is after range_end");
	if (r->gateway.family && (r->gateway.family != fam || !weft_cidr_contains(&sub, &r->gateway)))
		return fail(m, -EINVAL, "gateway: %s is outside %s", weft_ip_str(&r->gateway, a, sizeof(a)), cs);
	for (size_t i = 0; i < r->nexclude; i++)
		if (r->exclude[i].ip.family != fam)
			return fail(m, -EINVAL, "exclude[%zu]: wrong address family", i);
	return 0;
}

/* Is ip never to be handed out: the network or broadcast address (IPv4 up
 * to /30; /31 and /32 have none, RFC 3021), the IPv6 subnet-router anycast
 * address (up to /126), or the gateway. */
static bool range_reserved(const struct weft_ipam_range *r, const struct weft_cidr *sub, const struct weft_ip *ip)
{
	struct weft_ip last;

	if (r->gateway.family && weft_ip_eq(&r->gateway, ip))
		return true;
	if (sub->ip.family == AF_INET) {
		if (sub->prefixlen > 30)
			return false;
		weft_cidr_last(sub, &last);
		return weft_ip_eq(&sub->ip, ip) || weft_ip_eq(&last, ip);
	}
	return sub->prefixlen <= 126 && weft_ip_eq(&sub->ip, ip);
}

/* The lowest free address of the range, held neither in rec nor in the
 * nothers records of the same network whose subnets overlap it: 0 and
 * *out, or -ENOSPC. */
static int range_free_ip(const struct weft_ipam_range *r, const struct weft_cidr *sub, const struct ipam_rec *rec,
			 const struct ipam_rec *others, size_t nothers, struct weft_ip *out)
{
	struct weft_ip cand = r->start.family ? r->start : sub->ip, end;

	if (r->end.family)
		end = r->end;
	else
		weft_cidr_last(sub, &end);
	for (;;) {
		bool skip_to = false;
		struct weft_ip next;

		if (weft_ip_cmp(&cand, &end) > 0)
			return -ENOSPC;
		for (size_t i = 0; i < r->nexclude; i++)
			if (weft_cidr_contains(&r->exclude[i], &cand)) {
				/* Jump past the whole excluded prefix. */
				weft_cidr_last(&r->exclude[i], &next);
				skip_to = true;
				break;
			}
		if (!skip_to) {
			bool taken = range_reserved(r, sub, &cand) || ipam_rec_find(rec, &cand) >= 0;
			for (size_t i = 0; i < nothers && !taken; i++)
				taken = ipam_rec_find(&others[i], &cand) >= 0;
			if (!taken) {
				*out = cand;
				return 0;
			}
			next = cand;
		}
		if (weft_ip_add(&next, 1, &cand) < 0)
			return -ENOSPC;
	}
}

/* Parse the subnet a range key names ("<prefix>192.168.91.0-24", prefix
 * being the network's): 0 or -EINVAL. */
static int range_key_cidr(const char *key, const char *prefix, struct weft_cidr *out)
{
	char buf[WEFT_CIDR_STRLEN];
	char *dash;

	if (!startswith(key, prefix) || weft_strlcpy(buf, key + strlen(prefix), sizeof(buf)) < 0)
		return -EINVAL;
	dash = strrchr(buf, '-');
	if (!dash)
		return -EINVAL;
	*dash = '/';
	return weft_cidr_parse(buf, true, out);
}

static int range_assign_once(struct weft_ipam *m, const struct weft_ipam_range *r, const struct weft_cidr *sub,
			     const char *key, const char *handle, const struct weft_ipam_attrs *attrs,
			     struct weft_ip *out)
{
	_cleanup_free_ char *nprefix = wasprintf("%s%s/", WEFT_IPAM_RANGES_PREFIX, r->network);
	struct ipam_handle_rec h = {0};
	struct ipam_rec rec = {0};
	struct ipam_rec *others = NULL;
	struct weft_kv_list l = {0};
	size_t nothers = 0;
	struct weft_ip ip;
	char cs[WEFT_CIDR_STRLEN];
	int rv;

	/* The network's range records, this one and those of other subnets
	 * that overlap it (its config changed, say from a /24 to a /23): their
	 * addresses are in use too, and they are compared in the commit so
	 * that an allocation there meanwhile conflicts. */
	rv = weft_store_list(m->s, nprefix, &l);
	if (rv < 0)
		return store_fail(m, rv, "list", nprefix);
	others = wcalloc(l.n + 1, sizeof(*others));
	rec = (struct ipam_rec){.type = IPAM_REC_RANGE, .cidr = *sub, .network = wstrdup(r->network)};
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_free_ char *err = NULL;
		struct ipam_rec x = {0};
		struct weft_cidr c;

		/* The key names the subnet: decode only the records that matter. */
		if (!streq(l.items[i].key, key) && range_key_cidr(l.items[i].key, nprefix, &c) == 0 &&
		    !weft_cidr_overlaps(&c, sub))
			continue;
		rv = ipam_rec_decode(IPAM_REC_RANGE, l.items[i].key, l.items[i].value, l.items[i].value_len, &x, &err);
		if (rv < 0) {
			rv = fail(m, rv, "%s", err);
			goto out;
		}
		x.mod_rev = l.items[i].mod_rev;
		if (streq(l.items[i].key, key)) {
			ipam_rec_clear(&rec);
			rec = x;
		} else if (weft_cidr_overlaps(&x.cidr, sub)) {
			others[nothers++] = x;
		} else {
			ipam_rec_clear(&x);
		}
	}
	rv = handle_get(m, handle, &h);
	if (rv < 0)
		goto out;
	/* A repeated ADD: hand the same address back. */
	for (size_t i = 0; i < h.n; i++) {
		ssize_t j;
		if (!streq(h.entries[i].key, key))
			continue;
		j = ipam_rec_find(&rec, &h.entries[i].ip);
		if (j >= 0 && streq(rec.allocs[j].handle, handle)) {
			*out = h.entries[i].ip;
			rv = 0;
			goto out;
		}
	}
	if (range_free_ip(r, sub, &rec, others, nothers, &ip) < 0) {
		rv = fail(m, -ENOSPC, "range %s of network %s is full", weft_cidr_str(sub, cs, sizeof(cs)), r->network);
		goto out;
	}
	ipam_rec_add(&rec, &ip, handle, attrs);
	ipam_handle_add(&h, &ip, key);
	rv = commit_cmp(m, &rec, &h, NULL, others, nothers);
	if (rv == 0)
		*out = ip;
out:
	recs_free(others, nothers);
	weft_kv_list_clear(&l);
	ipam_handle_rec_clear(&h);
	ipam_rec_clear(&rec);
	return rv;
}

int weft_ipam_range_assign(struct weft_ipam *m, const struct weft_ipam_range *r, const char *handle,
			   const struct weft_ipam_attrs *attrs, struct weft_ip *out)
{
	struct weft_cidr sub;
	int rv;

	m->errmsg[0] = 0;
	if (!ipam_name_ok(handle))
		return fail(m, -EINVAL, "invalid handle");
	rv = weft_ipam_range_validate(m, r);
	if (rv < 0)
		return rv;
	rv = check_attrs(m, attrs);
	if (rv < 0)
		return rv;
	sub = r->subnet;
	weft_cidr_mask(&sub);
	_cleanup_free_ char *key = ipam_range_key(r->network, &sub);
	return RETRY(m, "allocate", range_assign_once(m, r, &sub, key, handle, attrs, out));
}
