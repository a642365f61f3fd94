#!/bin/bash
# etcd-contract.sh CONTRACT - the backend-independent store contract test
# (store/test-store-contract.c) against a real etcd, in plain http and over
# TLS with a client certificate. Skipped (77) while that program is not built.
CONTRACT=$1
. "$(dirname "$0")/lib/common.sh"
if [ ! -x "$CONTRACT" ]; then
	echo "skipped: $CONTRACT not built"
	exit 77
fi
. "$(dirname "$0")/lib/etcd.sh"

etcd_start A || { fail "start etcd"; finish; }
etcd_start S tls || { fail "start etcd with TLS"; finish; }
WEFT_TEST_PREFIX=/contract-http check "contract over http" "$CONTRACT" "$ETCD_A_URL?prefix=/weft-contract"
WEFT_TEST_PREFIX=/contract-tls check "contract over TLS with a client cert" "$CONTRACT" "$ETCD_S_URL&prefix=/weft-contract"
finish
