#!/bin/bash
# etcd-unreachable.sh LIVE - with no etcd to talk to, every operation fails
# within timeout_ms with -ECONNREFUSED/-ETIMEDOUT and names the endpoints:
# ports nobody listens on, and a listener that accepts but never answers.
LIVE=$1
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/etcd.sh"

D1=$(etcd_free_port)
D2=$(etcd_free_port)
etcd_hang_listener || { fail "start the hanging listener"; finish; }

expect() { # NAME PATTERN URL MAX_MS
	if "$LIVE" "$3" unreachable "$4" >"$T/out" 2>&1 && grep -q -- "$2" "$T/out"; then
		pass "$1"
	else
		fail "$1"; sed 's/^/     | /' "$T/out"
	fi
}
expect "dead endpoints: connection refused at once" "Connection refused" \
	"etcd://127.0.0.1:$D1,127.0.0.1:$D2?timeout_ms=1000" 300
expect "hanging endpoint: timed out within timeout_ms" "Timer expired\|timed out" \
	"etcd://127.0.0.1:$HANG_PORT?timeout_ms=700" 1000
expect "dead and hanging endpoints: within timeout_ms" "127.0.0.1:$D1" \
	"etcd://127.0.0.1:$D1,127.0.0.1:$HANG_PORT,127.0.0.1:$D2?timeout_ms=700" 1000
expect "hanging endpoint over TLS: within timeout_ms" "127.0.0.1:$HANG_PORT" \
	"etcds://127.0.0.1:$HANG_PORT?timeout_ms=700" 1000
finish
