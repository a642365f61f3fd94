#!/bin/bash
# etcd-prefix.sh LIVE - two handles with different key prefixes on one etcd
# do not see each other's keys, and the keys really live under the prefix.
LIVE=$1
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/etcd.sh"

etcd_start A || { fail "start etcd"; finish; }
check "isolation between /tenant-a and /tenant-b" \
	"$LIVE" "$ETCD_A_URL?prefix=/tenant-a" isolation "$ETCD_A_URL?prefix=/tenant-b"
# Seen raw, the key is the prefix + the key: base64("/tenant-b/k") = L3RlbmFudC1iL2s=.
if etcd_curl A /v3/kv/range '{"key":"L3RlbmFudC1iL2s="}' | grep -q '"kvs"'; then
	pass "key stored under its prefix"
else
	fail "key stored under its prefix"
fi
# A percent-encoded prefix and an unprefixed handle agree on the raw key.
"$LIVE" "$ETCD_A_URL?prefix=%2Fenc" put /k v >/dev/null
check "prefix is percent-decoded" "$LIVE" "$ETCD_A_URL" get /enc/k
finish
