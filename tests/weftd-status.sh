#!/bin/bash
# weftd's health, status and metrics (felix/weftd-status.c): two nodes
# running weftd + BIRD in namespaces on a bridge form a mesh session;
# node-1's /healthz and /metrics (curl inside its namespace), the HTTP
# server's answers to bad requests, the Node's status in the store, a
# kill -9 of BIRD (unhealthy until weftd restarts it, restarts counted),
# and `weftctl get nodes`. A third namespace runs weftd --no-bgp: healthy
# without BIRD, and a second weftd there whose HTTP port is taken goes on
# without HTTP. Root only; never touches the root namespace.
# Usage: weftd-status.sh WEFTD WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
WEFTD=$1
W=$2
D=$3
for b in "$WEFTD" "$W" "$D"; do
	[ -x "$b" ] || { echo "usage: $0 WEFTD WEFTCTL TEST-BGP-DRIVER ($b is not executable)"; exit 2; }
done
for c in bird curl jq; do
	command -v $c >/dev/null || { echo "skipped: $c is not installed (deploy/install-deps)"; exit 77; }
done

P="ws$$-"
# The run dir is outside $T so that a later run can find and stop the
# processes of a killed run (by the pid files in it).
R="/tmp/weft-status.ws$$"
BIRD=$(command -v bird)

# stop_pidfile FILE PATTERN: stop the process a pid file names if its
# command line mentions PATTERN (so a recycled pid is left alone).
stop_pidfile() {
	local pf=$1 pat=$2 pid i
	[ -f "$pf" ] || return 0
	pid=$(cat "$pf")
	grep -qF "$pat" "/proc/$pid/cmdline" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
}

stop_all() {
	local d
	for d in "$1"/*/; do
		d=${d%/}
		# weftd first: it stops its BIRD; then a BIRD it left behind.
		stop_pidfile "$d/weftd.pid" "$d"
		stop_pidfile "$d/bird.pid" "$d"
	done
}

# Leftovers of killed runs: their test pid is gone.
clean_leftover_runs /tmp/weft-status.ws ws stop_all

cleanup() {
	stop_all "$R"
	local ns
	for ns in fab n1 n2 n3; do ip netns del "$P$ns" 2>/dev/null; done
	rm -rf "$R"
}
at_exit cleanup

S="file:$R/store"
mkdir -p "$R/n1" "$R/n2" "$R/n3" "$R/n3b"
ctl() { "$W" --store "$S" "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }
# http NS PATH [CURL ARGS]: the status code of GET http://127.0.0.1:9099PATH.
http() { local ns=$1 path=$2; shift 2; in_ns "$ns" curl -s -o "$T/body" -w '%{http_code}' -m 5 "$@" "http://127.0.0.1:9099$path"; }
metric() { in_ns "$1" curl -s -m 5 http://127.0.0.1:9099/metrics | awk -v m="$2" '$1 == m {print $2}'; }
# start_weftd NODE NS RUNDIR ARGS...: weftd in namespace NS, checks every 500 ms.
start_weftd() {
	local node=$1 ns=$2 run=$3 i
	shift 3
	ip netns exec "$P$ns" env WEFT_STATUS_INTERVAL_MS=500 "$WEFTD" --node "$node" --store "$S" --run-dir "$run" \
		"$@" </dev/null >>"$run/weftd.log" 2>&1 &
	echo $! >"$run/weftd.pid"
	for i in $(seq 100); do
		[ -S "$run/weftd.sock" ] && return 0
		kill -0 "$(cat "$run/weftd.pid")" 2>/dev/null || break
		sleep 0.05
	done
	echo "weftd for $node did not start:"; sed 's/^/  | /' "$run/weftd.log"
	return 1
}

# --- topology: fabric bridge, two nodes, and a lone third namespace ------------
ip netns add "${P}fab" && ip netns add "${P}n1" && ip netns add "${P}n2" && ip netns add "${P}n3" ||
	{ echo "cannot create namespaces"; exit 1; }
ip -n "${P}fab" link add br0 type bridge
ip -n "${P}fab" link set br0 up
for i in 1 2; do
	ip -n "${P}n$i" link add eth0 type veth peer name v$i netns "${P}fab"
	ip -n "${P}fab" link set v$i master br0 up
	ip -n "${P}n$i" addr add 198.18.0.1$i/24 dev eth0
	ip -n "${P}n$i" link set eth0 up
done
for i in 1 2 3; do ip -n "${P}n$i" link set lo up; done

cat >"$T/fabric.yaml" <<EOF
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 30}
---
kind: BGPConfig
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: true}
EOF
check "weftctl apply" ctl apply -f "$T/fabric.yaml"
ip1=$("$D" claim "$S" node-1 h1) || fail "claim a block for node-1"
B1=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1]+"/30", strict=False))' "$ip1")

check "weftd node-1 starts" start_weftd node-1 n1 "$R/n1" --ip 198.18.0.11/24 --bird "$BIRD"
check "weftd node-2 starts" start_weftd node-2 n2 "$R/n2" --ip 198.18.0.12/24 --bird "$BIRD"

# --- /healthz and /metrics ---------------------------------------------------------
healthy() { [ "$(http "$1" /healthz)" = 200 ] && grep -qx ok "$T/body"; }
check "node-1 /healthz 200 ok" within 20 healthy n1
check "node-2 /healthz 200 ok" within 20 healthy n2
established() { [ "$(metric n1 'weft_bgp_peers{state="Established"}')" = 1 ]; }
check "node-1 metrics: 1 peer Established" within 30 established

in_ns n1 curl -s -m 5 -D "$T/headers" http://127.0.0.1:9099/metrics >"$T/metrics"
check "metrics: Content-Type text/plain version 0.0.4" grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/headers"
check "metrics: Connection: close" grep -qi '^Connection: close' "$T/headers"
for fam in weft_up weft_endpoints weft_bird_up weft_bird_restarts_total weft_bgp_peers weft_store_events_total \
	weft_last_status_write_timestamp_seconds; do
	check "metrics: family $fam" grep -q "^# TYPE $fam " "$T/metrics"
done
val() { awk -v m="$1" '$1 == m {print $2}' "$T/metrics"; }
now=$(date +%s)
[ "$(val weft_up)" = 1 ] && pass "weft_up 1" || fail "weft_up is '$(val weft_up)'"
[ "$(val weft_bird_up)" = 1 ] && pass "weft_bird_up 1" || fail "weft_bird_up is '$(val weft_bird_up)'"
[ "$(val weft_bird_restarts_total)" = 0 ] && pass "weft_bird_restarts_total 0" || fail "weft_bird_restarts_total is '$(val weft_bird_restarts_total)'"
[ "$(val weft_endpoints)" = 0 ] && pass "weft_endpoints 0" || fail "weft_endpoints is '$(val weft_endpoints)'"
ev=$(val 'weft_store_events_total{subsystem="status"}')
[ "${ev:-0}" -gt 0 ] && pass "weft_store_events_total{subsystem=\"status\"} $ev" || fail "store events '$ev'"
ts=$(val weft_last_status_write_timestamp_seconds)
[ -n "$ts" ] && [ "$ts" -gt $((now - 120)) ] && [ "$ts" -le $((now + 5)) ] &&
	pass "last status write $((now - ts)) s ago" || fail "weft_last_status_write_timestamp_seconds '$ts' (now $now)"

# --- bad requests -----------------------------------------------------------------
code=$(http n1 /nope) && [ "$code" = 404 ] && pass "unknown path: 404" || fail "unknown path: $code"
code=$(http n1 /healthz -X POST) && [ "$code" = 405 ] && pass "POST: 405" || fail "POST: $code"
raw() { in_ns n1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9099 && printf "%b" "$1" >&3 && head -c 200 <&3' _ "$1"; }
raw 'NONSENSE\r\n\r\n' | head -1 | grep -q '^HTTP/1.1 400' && pass "garbage: 400" || fail "garbage: $(raw 'NONSENSE\r\n\r\n' | head -1)"
raw 'GET /healthz HTTP/2.0\r\n\r\n' | head -1 | grep -q '^HTTP/1.1 400' && pass "HTTP/2.0 request line: 400" || fail "HTTP/2.0: not 400"
raw 'GET /healthz HTTP/1.0\r\n\r\n' | grep -q '^ok' && pass "HTTP/1.0 GET works" || fail "HTTP/1.0 GET"
big=$(head -c 100000 /dev/zero | tr '\0' a)
code=$(http n1 /healthz -H "X-Big: $big")
case "$code" in 400 | 413) pass "100 KB request: $code" ;; *) fail "100 KB request: '$code'" ;; esac
# A client that connects and says nothing is dropped after the timeout
# without blocking anyone else.
in_ns n1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9099; sleep 7' &
idle=$!
check "weftd still healthy after the bad requests (and with an idle client)" healthy n1
# More silent clients than weftd keeps connections (64): the oldest idle
# one makes room, so a probe still gets its answer.
in_ns n1 python3 -c '
import socket, time
s = [socket.create_connection(("127.0.0.1", 9099)) for _ in range(80)]
time.sleep(4)' &
flood=$!
sleep 1
check "/healthz answers with 80 silent connections open" healthy n1
wait $flood 2>/dev/null
check "weftd node-1 still runs" kill -0 "$(cat "$R/n1/weftd.pid")"

# --- the Node's status in the store ------------------------------------------------
status_ok() {
	ctl get node "$1" -o json >"$T/node.json" 2>/dev/null &&
		jq -e '.spec.status.healthy == true and .spec.status.birdState == "running"
			and .spec.status.bgp.established == 1 and .spec.status.bgp.total == 1
			and .spec.status.bgp.peers[0].state == "Established" and .spec.status.bgp.peers[0].type == "mesh"
			and (.spec.status.bgp.peers[0].since | test("^[0-9-]+T[0-9:]+Z$"))
			and (.spec.status.lastSync | test("^[0-9-]+T[0-9:]+Z$")) and (.spec.status.version | length > 0)
			and .spec.bgp.ipv4Address != null' "$T/node.json" >/dev/null
}
check "node-1 status in the store: healthy, BIRD running, 1/1 Established" within 20 status_ok node-1
check "node-2 status in the store: healthy, 1/1 Established" within 20 status_ok node-2
ctl get node node-1 -o json | jq -e '.spec.status.bgp.peers[0].address == "198.18.0.12"' >/dev/null &&
	pass "node-1's peer is 198.18.0.12" || fail "node-1's peer address"
# No write storm: the status is not rewritten while nothing changes (it
# is refreshed every 30 intervals, 15 s here).
s1=$(ctl get node node-1 -o json | jq -r .spec.status.lastSync)
sleep 3
s2=$(ctl get node node-1 -o json | jq -r .spec.status.lastSync)
[ "$s1" = "$s2" ] && pass "no rewrite of an unchanged status in 3 s ($s1)" || fail "status rewritten: $s1 -> $s2"
# The operator's labels survive the status writes.
ctl get node node-1 -o json | jq '.metadata.labels = {"rack": "r1"}' >"$T/node-labels.json"
check "label node-1" ctl replace -f "$T/node-labels.json"
sleep 1.5
ctl get node node-1 -o json | jq -e '.metadata.labels.rack == "r1" and .spec.status.healthy == true' >/dev/null &&
	pass "labels kept, status still there" || fail "labels or status lost"

# --- weftctl get nodes -------------------------------------------------------------
ctl get nodes >"$T/nodes" 2>&1
check "get nodes: header" grep -qE '^NAME +ADDRESS +AS +BLOCKS +HEALTHY +BGP' "$T/nodes"
check "get nodes: node-1 row" grep -qE "^node-1 +198.18.0.11/24 +\(64512\) +$B1 +true +1/1 established" "$T/nodes"
check "get nodes: node-2 row" grep -qE '^node-2 +198.18.0.12/24 +\(64512\) +true +1/1 established' "$T/nodes"
sed 's/^/     | /' "$T/nodes"

# --- kill -9 BIRD ---------------------------------------------------------------------
bpid=$(cat "$R/n1/bird.pid")
kill -9 "$bpid"
# weftd restarts BIRD after 1 s: the 503 is looked for in that window,
# the logged verdict is certain.
saw503=
for _ in $(seq 40); do
	[ "$(http n1 /healthz)" = 503 ] && { saw503=$(cat "$T/body"); break; }
	sleep 0.05
done
[ -n "$saw503" ] && pass "BIRD killed: /healthz 503 ($saw503)" || echo "     (no 503 seen within the restart window)"
check "BIRD killed: weftd logs unhealthy" within 5 grep -q 'health: unhealthy: BIRD is not running' "$R/n1/weftd.log"
restarted() { [ -f "$R/n1/bird.pid" ] && [ "$(cat "$R/n1/bird.pid")" != "$bpid" ] && kill -0 "$(cat "$R/n1/bird.pid")"; }
check "BIRD restarted with a new pid" within 10 restarted
check "node-1 /healthz back to 200" within 15 healthy n1
check "weftd logs healthy again" grep -q 'health: healthy again' "$R/n1/weftd.log"
[ "$(metric n1 weft_bird_restarts_total)" = 1 ] && pass "weft_bird_restarts_total 1" || fail "weft_bird_restarts_total '$(metric n1 weft_bird_restarts_total)'"
check "node-1 status healthy and Established again" within 40 status_ok node-1

# --- weftd --no-bgp, and a taken port ---------------------------------------------
check "weftd --no-bgp starts (node-3)" start_weftd node-3 n3 "$R/n3" --no-bgp
check "node-3 /healthz 200 without BIRD" within 10 healthy n3
in_ns n3 curl -s -m 5 http://127.0.0.1:9099/metrics >"$T/metrics3"
check "node-3 metrics: weft_up, no BIRD families" sh -c "grep -qx 'weft_up 1' '$T/metrics3' && ! grep -q weft_bird_up '$T/metrics3'"
check "second weftd in n3 (port taken) starts" start_weftd node-3b n3 "$R/n3b" --no-bgp
check "it warns that it cannot listen" within 5 grep -q 'http: cannot listen on 127.0.0.1:9099' "$R/n3b/weftd.log"
check "and keeps running" kill -0 "$(cat "$R/n3b/weftd.pid")"
check "node-3 /healthz still 200" healthy n3

# A clean stop says so in the Node: then weftctl delete node needs no --force.
stop_pidfile "$R/n2/weftd.pid" "$R/n2"
said_stopped() {
	ctl get node node-2 -o json >"$T/node2.json" &&
		jq -e '.spec.status.healthy == false and .spec.status.reason == "weftd stopped"' "$T/node2.json" >/dev/null
}
check "stopped node-2: its status says weftd stopped" said_stopped
expect_rc "a running node's delete is refused" 1 "node-1: the node's weftd reported status [0-9]+ s ago and may still be running: stop it first" \
	ctl delete node node-1
expect_rc "the stopped node is deleted without --force" 0 "^deleted Node node-2 and its " ctl delete node node-2

kill "$idle" 2>/dev/null
wait "$idle" 2>/dev/null
stop_all "$R"
# In a sanitizer build, leaks and errors are reported at exit.
if grep -qE 'Sanitizer|runtime error:' "$R"/*/weftd.log 2>/dev/null; then
	fail "sanitizer report"
	grep -h -E -A30 'Sanitizer|runtime error:' "$R"/*/weftd.log | sed 's/^/     | /'
fi
finish
