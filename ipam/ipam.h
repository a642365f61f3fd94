/* ipam.h - weft's cluster-wide IP address management, over the datastore.
 *
 * Two allocators share one store layout and one release path:
 *
 *   Pool/block IPAM (routed endpoints). IPPool resources are cut into
 *   blocks of spec.blockSize. A node claims a whole block (affinity),
 *   allocates from its own blocks first, claims a new block when they are
 *   full, and borrows a free address from another node's block only when
 *   no block is left to claim.
 *
 *   Range IPAM (secondary networks, whereabouts semantics). A range of one
 *   subnet, cluster-wide, lowest free address first, never the network or
 *   broadcast address (nor the gateway), excludes honoured.
 *
 * Every allocation belongs to a handle: a string naming its owner, for CNI
 * "<containerid>:<ifname>" (see weft_ipam_handle_id()). Releasing by
 * handle frees exactly the addresses of that handle, and is idempotent.
 *
 * Every store write is a transaction whose compares cover every key it
 * reads and writes, so no address is ever handed out twice, whatever the
 * number of allocating processes and machines. docs/ipam.md describes the
 * records, the protocol and the failure cases.
 *
 * Return convention, for every function here: 0 (or a count where said)
 * on success, a negative errno on failure, output parameters untouched on
 * failure. After a failure weft_ipam_errmsg() holds a one-line human
 * description. The errors callers test for:
 *   -ENOSPC    no free address (pool(s) or range exhausted)
 *   -EEXIST    a static address is held by another handle
 *   -EAGAIN    too many concurrent conflicts: try again later (CNI code 11)
 *   -EINVAL    bad argument (bad handle, address outside every pool, ...)
 *   -ENOENT    a named pool does not exist / no enabled pool selects the node
 *   -EBADMSG   a record in the store is corrupt (the message names its key
 *              and field)
 *   anything weft_store_* returns (-EIO, -ETIMEDOUT, ...).
 *
 * A struct weft_ipam is not thread-safe; use one per thread or process.
 */
#ifndef WEFT_IPAM_H
#define WEFT_IPAM_H

#include "lib/ipaddr.h"
#include "lib/util.h"
#include "store/store.h"

struct weft_ipam;

/* Store key prefixes (docs/ipam.md has the record formats). */
#define WEFT_IPAM_PREFIX "/weft/v1/ipam/"
#define WEFT_IPAM_BLOCKS_PREFIX "/weft/v1/ipam/blocks/"
#define WEFT_IPAM_AFFINITIES_PREFIX "/weft/v1/ipam/affinities/"
#define WEFT_IPAM_HANDLES_PREFIX "/weft/v1/ipam/handles/"
#define WEFT_IPAM_RANGES_PREFIX "/weft/v1/ipam/ranges/"

/* The handle of a node's VXLAN tunnel address, followed by the node's name
 * (Calico's "vxlan-tunnel-addr-<node>"); weftd's fabric allocates it. */
#define WEFT_IPAM_VXLAN_TUNNEL_HANDLE_PREFIX "vxlan-tunnel-addr-"

/* Longest handle, node, network or attribute string accepted, in bytes. */
#define WEFT_IPAM_NAME_MAX 253
/* Most addresses one weft_ipam_auto_assign() call hands out. */
#define WEFT_IPAM_COUNT_MAX 16

/* Open an IPAM context over an open store (not taken: close the store
 * after weft_ipam_free()). Returns 0 or a negative errno. */
int weft_ipam_new(struct weft_store *store, struct weft_ipam **out);
void weft_ipam_free(struct weft_ipam *m);
/* The last error's description ("" if none). */
const char *weft_ipam_errmsg(const struct weft_ipam *m);
/* Conflict retries before giving up with -EAGAIN (default 100). Each retry
 * waits a random 0..min(2^k, 32) ms first. For tests and benchmarks. */
void weft_ipam_set_max_retries(struct weft_ipam *m, unsigned n);

/* The handle id of a CNI attachment, "<containerid>:<ifname>", malloc'ed
 * in *out. The separator cannot appear in either part (CNI container ids
 * are [A-Za-z0-9_.-], Linux interface names never hold ':'), so distinct
 * attachments never share a handle. Returns 0 or -EINVAL. */
int weft_ipam_handle_id(const char *container_id, const char *ifname, char **out);

/* What is recorded with each address (any field may be NULL). As input
 * the strings are borrowed; in results they are owned (weft_ipam_attrs_clear). */
struct weft_ipam_attrs {
	char *namespace;    /* K8S_POD_NAMESPACE */
	char *pod;          /* K8S_POD_NAME */
	char *node;         /* the node that asked */
	char *container_id; /* CNI_CONTAINERID */
	char *ifname;       /* CNI_IFNAME */
	char *network;      /* the CNI network's name (CNI GC collects by it) */
	/* "weft-ipam" when the IPAM-only plugin asked (another main plugin
	 * owns the interface and no Endpoint record is written), else NULL.
	 * weftctl ipam check does not judge such allocations by Endpoints. */
	char *plugin;
};
void weft_ipam_attrs_clear(struct weft_ipam_attrs *a);

/* One allocated address, as reported by the queries. */
struct weft_ipam_allocation {
	struct weft_ip ip;
	char *handle;
	struct weft_ipam_attrs attrs;
	char *holder; /* store key of the block or range record holding it */
};
void weft_ipam_allocation_clear(struct weft_ipam_allocation *a);
void weft_ipam_allocations_free(struct weft_ipam_allocation *a, size_t n);

/* --- pool/block IPAM ------------------------------------------------------ */

struct weft_ipam_request {
	const char *handle; /* required */
	const char *node;   /* required: the node the address is for */
	int family;         /* AF_INET (default when 0) or AF_INET6 */
	unsigned count;     /* addresses wanted, 1..WEFT_IPAM_COUNT_MAX (0 = 1) */
	/* Pools to use, by IPPool name or by CIDR (exactly the pool's cidr);
	 * NULL/0 = every enabled pool of the family whose nodeSelector matches
	 * the node. Named pools are used even when their nodeSelector would not
	 * select the node (the request is explicit); a named pool that is
	 * missing or disabled is -ENOENT. Pools are tried in the given order,
	 * by default in name order. */
	const char *const *pools;
	size_t npools;
	/* With pools: use only those whose nodeSelector selects the node;
	 * -ENOENT when none does (weftd's VXLAN tunnel address, as Calico's). */
	bool by_selector;
	struct weft_ipam_attrs attrs; /* recorded with each address */
};

/* Allocate req->count addresses for req->handle. Fills out[0..count-1]
 * (the caller's array must hold count entries) and returns the count.
 * All or nothing: when the k-th address fails, the first k-1 are released
 * again. A handle that already holds addresses gets more (the caller
 * releases first if it wants a fresh set). -ENOSPC when the pools are
 * full, -EAGAIN after too many conflicts. */
int weft_ipam_auto_assign(struct weft_ipam *m, const struct weft_ipam_request *req, struct weft_ip *out);

/* Allocate one specific address for handle. It must lie inside an enabled
 * pool (-EINVAL otherwise). When no block holds it yet, its block is
 * claimed for node (affine to node; to nobody when node is NULL). Returns
 * 0; 0 as well when handle already holds ip; -EEXIST when another handle
 * holds it. */
int weft_ipam_assign_ip(struct weft_ipam *m, const char *handle, const struct weft_ip *ip, const char *node,
			const struct weft_ipam_attrs *attrs);

/* Release every address of handle (block and range addresses alike).
 * Returns the number released: 0 when the handle is unknown or already
 * released (idempotent). Empty blocks are kept (see below). */
int weft_ipam_release_handle(struct weft_ipam *m, const char *handle);
/* Release one address, whoever holds it. Returns 1, or 0 when it was not
 * allocated. */
int weft_ipam_release_ip(struct weft_ipam *m, const struct weft_ip *ip);

/* Release the empty blocks affine to node (every node's when node is
 * NULL, and also empty blocks affine to nobody; stale affinity records
 * whose block is gone or affine to another node are dropped on the way):
 * each empty block and its affinity are deleted in one transaction that
 * compares both, so a block that gains an address meanwhile is kept.
 * Releasing is explicit rather than done on every release so that a node
 * does not churn blocks (and BGP routes) as pods come and go; weftd never
 * calls this, `weftctl ipam release --empty-blocks` does. Returns the
 * number of blocks released. */
int weft_ipam_release_empty_blocks(struct weft_ipam *m, const char *node);
/* Give up every block affine to node, as when the node leaves the cluster
 * (weftctl delete node): its empty blocks are released as above; a block
 * that still holds addresses (borrowed by other nodes' pods) stays, affine
 * to nobody, until it is empty and weft_ipam_release_empty_blocks(NULL)
 * releases it. Each block and its affinity change in one transaction that
 * compares both; a block that changes meanwhile is -EAGAIN (call again:
 * nothing is left half done). Release
 * the node's own addresses first. Returns the number of blocks given up. */
int weft_ipam_release_node_blocks(struct weft_ipam *m, const char *node);

/* --- queries -------------------------------------------------------------- */

enum weft_ipam_usage_kind { WEFT_IPAM_USAGE_POOL = 1, WEFT_IPAM_USAGE_BLOCK, WEFT_IPAM_USAGE_RANGE };
struct weft_ipam_usage {
	enum weft_ipam_usage_kind kind;
	char *name;      /* pool: its name; block/range: the record's key */
	struct weft_cidr cidr;
	char *affinity;  /* block: its node or NULL; pool: NULL; range: the network name */
	uint64_t total;  /* addresses (saturates at UINT64_MAX for huge IPv6 prefixes) */
	uint64_t used;
	bool disabled;   /* pool only */
};
void weft_ipam_usage_free(struct weft_ipam_usage *u, size_t n);
/* Utilisation: every pool, then every block (by key), then every range
 * (by key). A pool's used count sums the blocks inside it. Returns the
 * number of entries in *out. */
int weft_ipam_usage(struct weft_ipam *m, struct weft_ipam_usage **out, size_t *n);

/* Who holds ip: 0 and *out filled (caller clears it), or -ENOENT when the
 * address is not allocated. */
int weft_ipam_lookup_ip(struct weft_ipam *m, const struct weft_ip *ip, struct weft_ipam_allocation *out);
/* Every allocation (blocks, then ranges, each by address). Returns the
 * count; *out is an array (weft_ipam_allocations_free). */
int weft_ipam_list_allocations(struct weft_ipam *m, struct weft_ipam_allocation **out, size_t *n);

/* Consistency check of the IPAM records among themselves: handle entries
 * whose address is not held by that handle, allocations that no handle
 * record lists, blocks and affinities that disagree, overlapping blocks,
 * corrupt records. Each problem is one malloc'ed line in (*problems)[i]
 * (free each and the array). Returns the number of problems (0 = clean).
 * Finding allocations whose container is gone needs the endpoint records
 * and is weftctl's part (it uses weft_ipam_list_allocations()). */
int weft_ipam_check(struct weft_ipam *m, char ***problems, size_t *n);

/* --- range IPAM ------------------------------------------------------------ */

/* A range as the CNI config describes it (the CNI layer fills it; the
 * strings are borrowed). subnet is required; start/end (family 0 = unset)
 * default to the subnet's first and last usable address; exclude lists
 * CIDRs (a bare address is a /32 or /128); gateway (family 0 = none) is
 * never handed out. */
struct weft_ipam_range {
	const char *network;    /* network name: part of the store key; required */
	struct weft_cidr subnet;
	struct weft_ip start, end;
	const struct weft_cidr *exclude;
	size_t nexclude;
	struct weft_ip gateway;
};

/* Parse a whereabouts "range": "192.168.91.0/24" (subnet, host bits
 * ignored) or "192.168.91.100-192.168.91.110/24" (start-end/prefix). Sets
 * r->subnet and, for the second form, r->start and r->end; the other
 * fields are left alone. Returns 0 or -EINVAL. */
int weft_ipam_range_parse(const char *s, struct weft_ipam_range *r);
/* Check a range (start <= end, both and the gateway inside the subnet,
 * network name usable in a key). Returns 0 or -EINVAL with the reason in
 * weft_ipam_errmsg(). */
int weft_ipam_range_validate(struct weft_ipam *m, const struct weft_ipam_range *r);
/* The store key of a range's record, malloc'ed:
 * "/weft/v1/ipam/ranges/<network>/<subnet address>-<prefixlen>". */
char *weft_ipam_range_key(const struct weft_ipam_range *r);

/* Allocate the lowest free address of the range for handle. Returns 0 and
 * *out; -ENOSPC when the range is full. When the handle already holds an
 * address of this range, that address is returned again (a repeated ADD
 * does not leak). Release with weft_ipam_release_handle(). */
int weft_ipam_range_assign(struct weft_ipam *m, const struct weft_ipam_range *r, const char *handle,
			   const struct weft_ipam_attrs *attrs, struct weft_ip *out);

#endif
