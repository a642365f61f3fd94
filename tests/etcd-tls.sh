#!/bin/bash
# etcd-tls.sh LIVE - the backend over TLS with a CA and a client certificate
# (etcd with --client-cert-auth); connections without a client certificate,
# with the wrong CA or in plain http are refused, quickly and clearly.
LIVE=$1
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/etcd.sh"

etcd_start S tls || { fail "start etcd with TLS"; finish; }
C=$ETCD_S_DIR/certs
check "API over TLS with a client certificate" "$LIVE" "$ETCD_S_URL&timeout_ms=3000" basic
check "prefix over TLS" "$LIVE" "$ETCD_S_URL&prefix=/a" isolation "$ETCD_S_URL&prefix=/b"

rejected() { # NAME URL: every operation fails within 3 s and says why
	local out
	if "$LIVE" "$2" unreachable 3000 >"$T/out" 2>&1; then
		pass "$1"
	else
		fail "$1"; sed 's/^/     | /' "$T/out"
	fi
}
rejected "no client certificate: refused" "etcds://127.0.0.1:$ETCD_S_PORT?ca=$C/ca.pem&timeout_ms=1000"
# A CA that did not sign the server certificate.
mkdir -p "$T/other" && etcd_tls_certs "$T/other"
rejected "unknown server CA: refused" \
	"etcds://127.0.0.1:$ETCD_S_PORT?ca=$T/other/ca.pem&cert=$C/client.pem&key=$C/client-key.pem&timeout_ms=1000"
# A client certificate from another CA.
rejected "client certificate of another CA: refused" \
	"etcds://127.0.0.1:$ETCD_S_PORT?ca=$C/ca.pem&cert=$T/other/client.pem&key=$T/other/client-key.pem&timeout_ms=1000"
rejected "plain http to a TLS port: refused" "etcd://127.0.0.1:$ETCD_S_PORT?timeout_ms=1000"
finish
