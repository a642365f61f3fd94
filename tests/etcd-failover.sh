#!/bin/bash
# etcd-failover.sh LIVE - a URL whose first endpoints are dead works through
# the live one, and a watch survives a restart of etcd without losing events.
LIVE=$1
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/etcd.sh"

etcd_start A || { fail "start etcd"; finish; }
D1=$(etcd_free_port)
D2=$(etcd_free_port)
URL="etcd://127.0.0.1:$D1,127.0.0.1:$D2,127.0.0.1:$ETCD_A_PORT?timeout_ms=2000"
check "dead endpoints first, then a live one" "$LIVE" "$URL" basic

# A watcher (through the dead endpoints too) across an etcd restart: the
# writes before, during the reconnect and after all arrive, in order.
"$LIVE" "$URL" watch /w/ 6 30000 >"$T/watch.out" 2>&1 &
wpid=$!
for _ in $(seq 50); do grep -q ready "$T/watch.out" && break; sleep 0.1; done
for i in 1 2 3; do "$LIVE" "$ETCD_A_URL" put /w/$i before >/dev/null; done
etcd_restart A || fail "restart etcd"
for i in 4 5 6; do "$LIVE" "$ETCD_A_URL" put /w/$i after >/dev/null; done
if wait "$wpid" && [ "$(awk '$1 == "PUT" {print $2}' "$T/watch.out" | tr '\n' ' ')" = "/w/1 /w/2 /w/3 /w/4 /w/5 /w/6 " ]; then
	pass "watch survives an etcd restart"
else
	fail "watch survives an etcd restart"; sed 's/^/     | /' "$T/watch.out"
fi

# Writes made while the watcher is disconnected are not lost either.
"$LIVE" "$URL" watch /v/ 4 30000 >"$T/watch2.out" 2>&1 &
wpid=$!
for _ in $(seq 50); do grep -q ready "$T/watch2.out" && break; sleep 0.1; done
"$LIVE" "$ETCD_A_URL" put /v/1 a >/dev/null
etcd_stop A
sleep 0.5
# Restart on the same ports; the watcher is in its backoff while we write.
_etcd_launch A || fail "restart etcd"
for i in 2 3 4; do "$LIVE" "$ETCD_A_URL" put /v/$i b >/dev/null; done
if wait "$wpid" && [ "$(awk '$1 == "PUT" {print $2}' "$T/watch2.out" | tr '\n' ' ')" = "/v/1 /v/2 /v/3 /v/4 " ]; then
	pass "watch resumes from the last revision after an outage"
else
	fail "watch resumes from the last revision after an outage"; sed 's/^/     | /' "$T/watch2.out"
fi
finish
