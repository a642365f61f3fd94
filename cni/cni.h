/* cni.h - the CNI protocol layer shared by the weft and weft-ipam plugins.
 *
 * Pure logic, no kernel and no daemon: reading the CNI_* environment,
 * parsing and validating the network configuration a runtime writes on
 * stdin (CNI spec 1.1.0 and 1.0.0; 0.4.0, 0.3.1 and 0.3.0 accepted), and
 * building what goes back on stdout: a result in the shape of the
 * configuration's cniVersion, an error object, the VERSION answer.
 * docs/cni.md is the user-facing reference of every key and error.
 *
 * Errors: every parser fills a struct weft_cni_error with the CNI error
 * code (enum weft_cni_code) and a one-line message that names the
 * variable or the field ("ipam.range: \"10.0.0.0/33\" is not a CIDR or
 * first-last/prefix range"), and returns a negative errno. The plugin
 * prints weft_cni_error_json() and exits non-zero.
 *
 * Memory: parsed values are plain structs that own their strings and
 * arrays; each has one destructor that accepts NULL. Out of memory aborts,
 * as everywhere in weft.
 */
#ifndef WEFT_CNI_H
#define WEFT_CNI_H

#include "lib/ipaddr.h"
#include "lib/util.h"

/* ---------------------------------------------------------------------- */
/* Versions */

/* Ordered: a later enumerator is a later spec. 0 means "none / unknown". */
enum weft_cni_version {
	WEFT_CNI_V0_3_0 = 1,
	WEFT_CNI_V0_3_1,
	WEFT_CNI_V0_4_0,
	WEFT_CNI_V1_0_0,
	WEFT_CNI_V1_1_0,
};
#define WEFT_CNI_VERSION_LATEST WEFT_CNI_V1_1_0

/* Parse "1.0.0" and friends. Returns 0, -ENOTSUP for a well-formed version
 * weft does not speak (0.1.0, 0.2.0, 2.0.0 ...) or -EINVAL for text that
 * is not a version at all. */
int weft_cni_version_parse(const char *s, enum weft_cni_version *out);
/* "1.1.0"; "1.1.0" too for 0 (the latest, used where the config's version
 * is unknown). Never NULL. */
const char *weft_cni_version_str(enum weft_cni_version v);

/* ---------------------------------------------------------------------- */
/* Errors */

enum weft_cni_code {
	WEFT_CNI_ERR_INCOMPATIBLE_VERSION = 1,
	WEFT_CNI_ERR_UNSUPPORTED_FIELD = 2,
	WEFT_CNI_ERR_UNKNOWN_CONTAINER = 3,
	WEFT_CNI_ERR_INVALID_ENV = 4,
	WEFT_CNI_ERR_IO = 5,
	WEFT_CNI_ERR_DECODE = 6,
	WEFT_CNI_ERR_INVALID_CONFIG = 7,
	WEFT_CNI_ERR_TRY_AGAIN_LATER = 11,
	WEFT_CNI_ERR_NOT_AVAILABLE = 50,         /* STATUS: cannot serve ADD */
	WEFT_CNI_ERR_NOT_AVAILABLE_LIMITED = 51, /* STATUS: existing pods limited too */
	/* weft's own codes (the spec leaves 100 and up to plugins). */
	WEFT_CNI_ERR_INTERNAL = 100,             /* weftd failed or answered nonsense */
	WEFT_CNI_ERR_EXHAUSTED = 101,            /* no free address in the pools / range */
	WEFT_CNI_ERR_NOT_FOUND = 102,            /* a named pool does not exist */
	WEFT_CNI_ERR_ADDRESS_IN_USE = 103,       /* a requested static address is taken */
};

struct weft_cni_error {
	int code;      /* 0: no error recorded */
	char *msg;     /* one line, never NULL once code != 0 */
	char *details; /* NULL or more text */
	/* The configuration's cniVersion once the parser has read it (0
	 * before), so that the error can be written in that version. Kept by
	 * weft_cni_error_set(). */
	enum weft_cni_version version;
};

/* Record an error (replacing any earlier one). details may be NULL.
 * Always returns -EINVAL so that parsers can "return weft_cni_error_set(..)". */
int weft_cni_error_set(struct weft_cni_error *e, int code, const char *details, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
void weft_cni_error_clear(struct weft_cni_error *e);
/* {"cniVersion","code","msg","details"?} (details left out when empty),
 * malloc'ed, never NULL. v is the configuration's version; 0 means
 * e->version, and the latest when that is unknown too. */
char *weft_cni_error_json(const struct weft_cni_error *e, enum weft_cni_version v);

/* The VERSION answer: {"cniVersion":"1.1.0","supportedVersions":[...]}.
 * malloc'ed, never NULL. */
char *weft_cni_version_json(void);

/* ---------------------------------------------------------------------- */
/* Small value types shared by config and results */

struct weft_cni_strv {
	char **v;
	size_t n;
};
void weft_cni_strv_clear(struct weft_cni_strv *s);

/* A route. The 1.1.0 extras are -1 when unset and only written for 1.1.0. */
struct weft_cni_route {
	struct weft_cidr dst; /* host bits zero */
	bool has_gw;
	struct weft_ip gw;
	int mtu, advmss, priority, table, scope;
};
#define WEFT_CNI_ROUTE_INIT {.mtu = -1, .advmss = -1, .priority = -1, .table = -1, .scope = -1}

struct weft_cni_dns {
	struct weft_cni_strv nameservers;
	char *domain;
	struct weft_cni_strv search;
	struct weft_cni_strv options;
};
void weft_cni_dns_clear(struct weft_cni_dns *d);

/* Bandwidth in bit/s (rates) and bits (bursts); 0 means unset. */
struct weft_cni_bandwidth {
	uint64_t ingress_rate, ingress_burst;
	uint64_t egress_rate, egress_burst;
};

/* Parse a Kubernetes resource quantity as used by the
 * kubernetes.io/ingress-bandwidth annotation into bit/s: a decimal number
 * ("10", "1.5"), optionally with a decimal exponent ("1e6") or one suffix:
 * k M G T P E (powers of 1000) or Ki Mi Gi Ti Pi Ei (powers of 1024).
 * Fractions round up, as Kubernetes' Quantity.Value() does. The milli
 * suffix "m", signs and spaces are rejected. Returns 0, -EINVAL (syntax)
 * or -ERANGE (does not fit in 64 bits). Bounds are the caller's business;
 * see WEFT_CNI_BANDWIDTH_MIN/MAX. */
int weft_cni_parse_bandwidth(const char *s, uint64_t *out);
/* The bounds kubelet enforces on the bandwidth annotations: 1k..1P bit/s. */
#define WEFT_CNI_BANDWIDTH_MIN 1000ULL
#define WEFT_CNI_BANDWIDTH_MAX 1000000000000000ULL

/* Parse "aa:bb:cc:dd:ee:ff" (either case). Returns 0 or -EINVAL. */
int weft_cni_parse_mac(const char *s, uint8_t out[6]);

/* Validation as the reference plugins do it. Return 0, or -EINVAL and a
 * static reason ("is too long (more than 15 characters)") in *why. */
int weft_cni_check_ifname(const char *name, const char **why);
int weft_cni_check_container_id(const char *id, const char **why);

/* ---------------------------------------------------------------------- */
/* Environment */

enum weft_cni_command {
	WEFT_CNI_CMD_ADD = 1,
	WEFT_CNI_CMD_DEL,
	WEFT_CNI_CMD_CHECK,
	WEFT_CNI_CMD_VERSION,
	WEFT_CNI_CMD_GC,
	WEFT_CNI_CMD_STATUS,
};
const char *weft_cni_command_str(enum weft_cni_command c); /* "ADD"...; "?" */

#define WEFT_CNI_MAX_ARG_IPS 8

struct weft_cni_env {
	enum weft_cni_command command;
	/* NULL when unset or empty. */
	char *container_id, *netns, *ifname, *args, *path;

	/* From CNI_ARGS (NULL / 0 when absent or given empty). */
	char *k8s_pod_namespace, *k8s_pod_name, *k8s_pod_infra_container_id, *k8s_pod_uid;
	struct weft_ip ips[WEFT_CNI_MAX_ARG_IPS]; /* IP=a[,b...] */
	size_t n_ips;
	bool has_mac; /* MAC= */
	uint8_t mac[6];
	uint64_t ingress_bandwidth, egress_bandwidth; /* INGRESS_BANDWIDTH= / EGRESS_BANDWIDTH=, bit/s */
	bool ignore_unknown;                          /* IgnoreUnknown=1|true */
};

/* Read the CNI_* variables from envp (a NULL-terminated "NAME=value"
 * array such as environ) and apply the per-command rules: ADD and CHECK
 * need CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME; DEL needs
 * CNI_CONTAINERID and CNI_IFNAME (CNI_NETNS may be empty); VERSION, GC and
 * STATUS need only CNI_COMMAND. CNI_PATH and CNI_ARGS are optional.
 * Returns 0, or -EINVAL with err set (code 4 naming the variable). out is
 * untouched on failure; release it with weft_cni_env_clear(). */
int weft_cni_env_parse(char *const *envp, struct weft_cni_env *out, struct weft_cni_error *err);
/* Parse a CNI_ARGS string ("K=V;K2=V2") into the CNI_ARGS fields of env
 * (the other fields are not touched). Same return convention; env is
 * untouched on failure. */
int weft_cni_args_parse(const char *args, struct weft_cni_env *env, struct weft_cni_error *err);
void weft_cni_env_clear(struct weft_cni_env *env);

/* Is this command allowed with this config version? CHECK needs 0.4.0 or
 * later, GC and STATUS need 1.1.0. Returns 0 or -ENOTSUP with err (code 1). */
int weft_cni_command_check_version(enum weft_cni_command c, enum weft_cni_version v, struct weft_cni_error *err);

/* Read all of fd (stdin) up to 1 MiB. Returns 0 and a NUL-terminated
 * malloc'ed buffer, or a negative errno with err set (code 5). */
int weft_cni_read_all(int fd, char **out, size_t *len, struct weft_cni_error *err);

/* ---------------------------------------------------------------------- */
/* Results */

struct weft_cni_interface {
	char *name;
	char *mac;     /* NULL: not meaningful */
	char *sandbox; /* NULL: a host interface */
	unsigned mtu;  /* 0: unset (1.1.0) */
	char *socket_path, *pci_id; /* 1.1.0, NULL when unset */
};

struct weft_cni_ipconfig {
	struct weft_cidr address; /* host address and its prefix, "10.1.2.3/24" */
	bool has_gateway;
	struct weft_ip gateway;
	int interface; /* index into interfaces, -1 for none */
};

struct weft_cni_result {
	enum weft_cni_version version; /* the version it was parsed as / is meant for */
	struct weft_cni_interface *interfaces;
	size_t n_interfaces;
	struct weft_cni_ipconfig *ips;
	size_t n_ips;
	struct weft_cni_route *routes;
	size_t n_routes;
	struct weft_cni_dns dns;
};

/* An empty result for version v. Never NULL. */
struct weft_cni_result *weft_cni_result_new(enum weft_cni_version v);
void weft_cni_result_free(struct weft_cni_result *r);
static inline void weft_cni_result_freep(struct weft_cni_result **r) { weft_cni_result_free(*r); }
#define _cleanup_cni_result_ __attribute__((cleanup(weft_cni_result_freep)))

/* Builders; strings are copied (mac and sandbox may be NULL). Return the
 * new element's index. add_ip: gw NULL for none, iface -1 for none;
 * -EINVAL when iface is out of range or gw's family differs. */
int weft_cni_result_add_interface(struct weft_cni_result *r, const char *name, const char *mac, const char *sandbox);
int weft_cni_result_add_ip(struct weft_cni_result *r, const struct weft_cidr *addr, const struct weft_ip *gw, int iface);
int weft_cni_result_add_route(struct weft_cni_result *r, const struct weft_cni_route *route);

/* The result as JSON in the shape of version v (0: r->version): 1.x
 * without per-IP "version", 0.3.x/0.4.0 with it; the 1.1.0-only fields
 * only for 1.1.0. Empty lists are left out; "dns" is always there.
 * Returns a malloc'ed string, or NULL for a version weft cannot write. */
char *weft_cni_result_json(const struct weft_cni_result *r, enum weft_cni_version v);

/* Parse and validate a result (a prevResult, or another plugin's output)
 * written for version v. Unknown keys are ignored (results grow with the
 * spec); known keys must have the right types, addresses must parse,
 * interface indexes must be in range, 0.3.x/0.4.0 "version" must match the
 * address. Returns 0, or -EINVAL with err (code 6 for bad JSON, 7 for a bad
 * value, naming the field under "prevResult"). */
int weft_cni_result_parse(const char *text, size_t len, enum weft_cni_version v, struct weft_cni_result **out,
			  struct weft_cni_error *err);

/* ---------------------------------------------------------------------- */
/* Network configuration */

enum weft_cni_mode {
	WEFT_CNI_MODE_ROUTED = 0,
	WEFT_CNI_MODE_MACVLAN,
};

enum weft_cni_macvlan_mode {
	WEFT_CNI_MACVLAN_BRIDGE = 0,
	WEFT_CNI_MACVLAN_VEPA,
	WEFT_CNI_MACVLAN_PRIVATE,
	WEFT_CNI_MACVLAN_PASSTHRU,
};
const char *weft_cni_mode_str(enum weft_cni_mode m);
const char *weft_cni_macvlan_mode_str(enum weft_cni_macvlan_mode m);

enum weft_cni_ipam_mode {
	WEFT_CNI_IPAM_POOL = 0, /* blocks from the store's pools (default) */
	WEFT_CNI_IPAM_RANGE,    /* whereabouts-style cluster-wide range */
	WEFT_CNI_IPAM_STATIC,   /* addresses listed in the config */
};

struct weft_cni_static_addr {
	struct weft_cidr address; /* host address with its prefix */
	bool has_gateway;
	struct weft_ip gateway;
};

struct weft_cni_ipam {
	bool present; /* an "ipam" object was given */
	char *type;   /* "weft-ipam" or "weft"; NULL when absent */
	enum weft_cni_ipam_mode mode;

	/* Pool mode. */
	struct weft_cni_strv ipv4_pools; /* pool names or CIDRs, as written; empty: any pool */
	bool assign_ipv4;                /* default true */

	/* Range mode. subnet has its host bits zeroed. first and last are the
	 * effective allocatable bounds (range_start/range_end or the
	 * first-last form, else the whole subnet) with the network address,
	 * the IPv4 broadcast address already left out. range_text is the
	 * normalised "first-last/prefix" naming the range in the store. */
	struct weft_cidr subnet;
	struct weft_ip first, last;
	char *range_text;
	struct weft_cidr *exclude; /* addresses become /32 or /128 */
	size_t n_exclude;
	bool has_gateway; /* range mode: never allocated either */
	struct weft_ip gateway;

	/* Static mode. */
	struct weft_cni_static_addr *addresses;
	size_t n_addresses;

	/* Every mode. */
	struct weft_cni_route *routes;
	size_t n_routes;
};

struct weft_cni_label {
	char *key, *value;
};

struct weft_cni_port_mapping {
	uint16_t host_port, container_port;
	char protocol[8]; /* "tcp" (default), "udp", "sctp" */
	bool has_host_ip;
	struct weft_ip host_ip;
};

struct weft_cni_attachment {
	char *container_id, *ifname;
};

struct weft_cni_config {
	enum weft_cni_version version;
	char *name, *type;
	bool disable_check, disable_gc;
	bool ip_masq;
	struct weft_cni_dns dns;

	/* weft's keys. */
	char *weftd_socket; /* never NULL after parsing */
	enum weft_cni_mode mode;
	unsigned mtu; /* 0: unset */
	struct weft_cni_strv profiles;
	char *master; /* macvlan only */
	enum weft_cni_macvlan_mode macvlan_mode;
	uint64_t ingress_bandwidth, egress_bandwidth; /* bit/s, 0: unset */
	struct weft_cni_label *labels;
	size_t n_labels;
	struct weft_cni_ipam ipam;

	/* runtimeConfig (capabilities passed by the runtime). */
	struct weft_cidr *rt_ips; /* "ips" */
	size_t n_rt_ips;
	bool rt_has_mac; /* "mac" */
	uint8_t rt_mac[6];
	bool rt_has_bandwidth; /* "bandwidth" */
	struct weft_cni_bandwidth rt_bandwidth;
	struct weft_cni_port_mapping *rt_port_mappings; /* "portMappings" */
	size_t n_rt_port_mappings;

	/* args.cni.ips (the "args" convention). */
	struct weft_cidr *arg_ips;
	size_t n_arg_ips;

	/* prevResult, NULL when absent. */
	struct weft_cni_result *prev_result;

	/* GC: cni.dev/valid-attachments (or the older cni.dev/attachments). */
	bool has_valid_attachments;
	struct weft_cni_attachment *valid_attachments;
	size_t n_valid_attachments;
};

#define WEFT_CNI_DEFAULT_SOCKET "/run/weft/weftd.sock"

enum {
	/* weft-ipam's view: the top level belongs to the calling plugin (any
	 * type, any plugin keys, e.g. the reference macvlan plugin's
	 * "master"/"mode"), so unknown top-level keys are ignored and weft's
	 * own top-level keys are not interpreted; only the standard keys and
	 * "ipam" are parsed, and "ipam" is required. */
	WEFT_CNI_PARSE_IPAM_ONLY = 1 << 0,
};

/* Parse and validate a network configuration. Returns 0 and a new config,
 * or a negative errno with err set: code 6 for malformed JSON (with its
 * line and column), 1 for a cniVersion weft does not speak, 2 for an
 * unknown key, 7 for a wrong type or a bad value (naming the field). */
int weft_cni_config_parse(const char *text, size_t len, unsigned flags, struct weft_cni_config **out,
			  struct weft_cni_error *err);
void weft_cni_config_free(struct weft_cni_config *c);
static inline void weft_cni_config_freep(struct weft_cni_config **c) { weft_cni_config_free(*c); }
#define _cleanup_cni_config_ __attribute__((cleanup(weft_cni_config_freep)))

/* The bandwidth to apply: runtimeConfig.bandwidth wins, then CNI_ARGS
 * INGRESS_BANDWIDTH/EGRESS_BANDWIDTH, then the config's
 * ingress_bandwidth/egress_bandwidth (per direction; bursts only come from
 * runtimeConfig). env may be NULL. */
void weft_cni_effective_bandwidth(const struct weft_cni_config *c, const struct weft_cni_env *env,
				  struct weft_cni_bandwidth *out);

/* The static addresses requested for this attachment, first source that
 * has any: runtimeConfig.ips, args.cni.ips, CNI_ARGS IP=. Returns the
 * count (0: none requested) and a malloc'ed array in *out (NULL when 0).
 * env may be NULL. */
int weft_cni_requested_ips(const struct weft_cni_config *c, const struct weft_cni_env *env, struct weft_cidr **out);

#endif
