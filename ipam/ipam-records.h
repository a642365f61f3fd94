/* ipam-records.h - the IPAM store records: decode (validating: the store
 * is outside input), encode, and key helpers. Internal to ipam/ (and its
 * tests and fuzz target); docs/ipam.md documents the JSON forms.
 *
 * Return convention: 0 or a negative errno, outputs untouched on failure.
 * Decoders return -EBADMSG with a malloc'ed one-line message in *err
 * naming the key and the field, e.g.
 *   /weft/v1/ipam/blocks/10.65.0.0-26: allocations[2].ip: "10.66.0.1" is outside 10.65.0.0/26
 */
#ifndef WEFT_IPAM_RECORDS_H
#define WEFT_IPAM_RECORDS_H

#include "ipam/ipam.h"

enum ipam_rec_type { IPAM_REC_BLOCK = 1, IPAM_REC_RANGE = 2 };

/* A block or a range record: a CIDR and its allocations, sorted by address
 * with no duplicates. */
struct ipam_rec {
	enum ipam_rec_type type;
	struct weft_cidr cidr;
	char *affinity; /* block: the node it is affine to, or NULL */
	char *network;  /* range: the network name */
	struct weft_ipam_allocation *allocs; /* .holder is NULL here */
	size_t n, cap;
	int64_t mod_rev; /* 0 = not in the store (yet) */
	bool corrupt;    /* a block record that does not decode: only its key's cidr is known */
};

struct ipam_handle_entry {
	struct weft_ip ip;
	char *key; /* the holder record's key */
};

struct ipam_handle_rec {
	char *handle;
	struct ipam_handle_entry *entries;
	size_t n, cap;
	int64_t mod_rev; /* 0 = absent */
};

void ipam_rec_clear(struct ipam_rec *r);
void ipam_handle_rec_clear(struct ipam_handle_rec *h);

/* Decode a block or range record. key (may be NULL) is used in messages
 * and, when given, must agree with the record's cidr (and network). */
int ipam_rec_decode(enum ipam_rec_type type, const char *key, const char *json, size_t len, struct ipam_rec *out,
		    char **err);
/* Decode a handle record; when key is given its last component must be
 * the record's handle. */
int ipam_handle_decode(const char *key, const char *json, size_t len, struct ipam_handle_rec *out, char **err);
/* Decode an affinity record: {"node": N, "cidr": C}. */
int ipam_affinity_decode(const char *key, const char *json, size_t len, char **node, struct weft_cidr *cidr,
			 char **err);

/* Canonical compact JSON, malloc'ed. */
char *ipam_rec_encode(const struct ipam_rec *r);
char *ipam_handle_encode(const struct ipam_handle_rec *h);
char *ipam_affinity_encode(const char *node, const struct weft_cidr *cidr);

/* Allocation list editing (sorted by address). add: -EEXIST if present;
 * the strings are copied. find: the index or -1. */
int ipam_rec_add(struct ipam_rec *r, const struct weft_ip *ip, const char *handle, const struct weft_ipam_attrs *attrs);
ssize_t ipam_rec_find(const struct ipam_rec *r, const struct weft_ip *ip);
void ipam_rec_remove_at(struct ipam_rec *r, size_t i);

void ipam_handle_add(struct ipam_handle_rec *h, const struct weft_ip *ip, const char *key);
/* Remove the entry for ip (and key, when not NULL); returns true if found. */
bool ipam_handle_remove(struct ipam_handle_rec *h, const struct weft_ip *ip, const char *key);

/* "10.65.0.64/26" -> "10.65.0.64-26" in buf (WEFT_CIDR_STRLEN). */
const char *ipam_cidr_name(const struct weft_cidr *c, char *buf, size_t size);
/* Keys, malloc'ed. */
char *ipam_block_key(const struct weft_cidr *c);
char *ipam_affinity_key(const char *node, const struct weft_cidr *c);
char *ipam_handle_key(const char *handle);
char *ipam_range_key(const char *network, const struct weft_cidr *subnet);

/* A usable name for a handle, node or network: 1..WEFT_IPAM_NAME_MAX
 * printable ASCII characters, no '/' or space, not "." or "..". */
bool ipam_name_ok(const char *s);
/* Attribute strings: at most WEFT_IPAM_NAME_MAX bytes, no control characters. */
bool ipam_attr_ok(const char *s);

/* The number of addresses in c, saturated at UINT64_MAX. */
uint64_t ipam_cidr_size(const struct weft_cidr *c);
/* ip - base as an unsigned offset, when it fits in 64 bits (else -ERANGE). */
int ipam_ip_offset(const struct weft_ip *base, const struct weft_ip *ip, uint64_t *out);

#endif
