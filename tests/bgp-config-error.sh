#!/bin/bash
# BIRD's config when the store holds something BIRD cannot run, for real:
# two nodes (weftd + BIRD each, a mesh session between them), node1's
# /healthz, /metrics and Node status, its BIRD's protocols and config file.
#
#  1. BGPPeers written into the store by other means (as an older weftctl,
#     or any writer that skips the model, would): peerIP 224.0.0.1 and
#     fe80::1, which the model refuses. Each is left out with one warning
#     naming it; the node stays healthy and a good peer beside them is
#     configured.
#  2. A config BIRD refuses. No record the model accepts makes BIRD 2.0.12
#     refuse weft's config (the renderer leaves IPv6 peers out, and BIRD's
#     parser takes any IPv4 neighbour address), so node1's BIRD is the real
#     BIRD behind a wrapper whose config check (`bird -p`) first adds a
#     line BIRD cannot parse to a config that has a BGPPeer named
#     "bird-refuses": the refusal is BIRD's own, as a BIRD that cannot
#     parse what weft renders (another version, a renderer bug) would give
#     it. The wrapper also counts the checks. Expected: node1 unhealthy
#     with the reason (BIRD's message), weft_bgp_config_errors_total
#     {stage="check"} 1, weft_bgp_config_ok 0, no new `bird -p` while the
#     text stays the same (retries and a store change that does not change
#     the text), the status not rewritten, BIRD on its previous config with
#     its session up; fixed, healthy again and BIRD on the new config.
#  2b. BIRD hung (SIGSTOP) when a new config comes: "BIRD did not take the
#     new config", counted as stage configure; healthy again once it runs.
#  3. A config that cannot be made: node1's Node loses spec.bgp.ipv4Address
#     (weftctl replace): unhealthy ("BGP config cannot be made"), counted
#     as stage render, retried with a backoff; restored, healthy again.
#  4. A Node whose cluster id is 0.0.0.0 (refused since, stored before):
#     node2's weftd restarts on it, writes the router id instead (what BIRD
#     used for 0), and node1 keeps working throughout.
# Usage: bgp-config-error.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"

for c in curl jq; do
	command -v $c >/dev/null || { echo "skipped: $c is not installed (deploy/install-deps)"; exit 77; }
done
# Status checks every second (BIRD probes as often); the status is
# refreshed every 30 s, so a rewrite within the test is a change.
export WEFT_STATUS_INTERVAL_MS=1000
BIRD=$(command -v bird)

check "fabric" fabric_init
fabric_default_yaml >"$T/fabric.yaml"
check "store: mesh BGPConfig and pool" ctl apply -f "$T/fabric.yaml"

WRAP="$FR/bird-wrap"
CHECKS="$FR/bird-checks"
cat >"$WRAP" <<EOF
#!/bin/sh
# The real BIRD; its config check first breaks a config naming the BGPPeer
# bird-refuses (only a candidate, <file>.new, never the live file).
if [ "\$1" = -p ] && [ "\$2" = -c ]; then
	echo "\$3" >>"$CHECKS"
	case "\$3" in
	*.new) sed -i 's/^# BGPPeer bird-refuses .*/&\nthis line BIRD cannot parse;/' "\$3" ;;
	esac
fi
exec "$BIRD" "\$@"
EOF
chmod +x "$WRAP"
: >"$CHECKS"

check "node1 (BIRD behind the wrapper)" fabric_add_node 1 --bird "$WRAP"
check "node2" fabric_add_node 2
check "node1: mesh session Established" wait_established 1 1 30

N1=$(node_ns 1)
LOG1="$(node_dir 1)/weftd.log"
CONF1="$(node_dir 1)/bird.conf"
http() { ip netns exec "$N1" curl -s -o "$T/body" -w '%{http_code}' -m 5 "http://127.0.0.1:9099$1"; }
metric() { ip netns exec "$N1" curl -s -m 5 http://127.0.0.1:9099/metrics | awk -v m="$1" '$1 == m {print $2}'; }
healthy() { [ "$(http /healthz)" = 200 ]; }
checks() { wc -l <"$CHECKS"; }
protocols() { birdc -s "$(node_dir 1)/bird.ctl" show protocols 2>/dev/null | awk '$2 == "BGP" {print $1}' | sort | tr '\n' ' '; }
# The mesh session's "since" on node1: it must not move (no flap).
mesh_since() { birdc -s "$(node_dir 1)/bird.ctl" show protocols 2>/dev/null | awk '$1 == "Mesh_198_18_0_12" {print $5, $6, $7}'; }
status_json() { ctl get node node1 -o json | jq -c .spec.status; }
errors_are() { [ "$(metric "weft_bgp_config_errors_total{stage=\"$1\"}")" = "$2" ]; }
mesh_up() { established 1 | grep -qx Mesh_198_18_0_12; }

check "node1 healthy" within 20 healthy
ip netns exec "$N1" curl -s -m 5 http://127.0.0.1:9099/metrics >"$T/metrics0"
for s in render check configure; do
	check "metric weft_bgp_config_errors_total{stage=\"$s\"} 0 from the start" \
		grep -qx "weft_bgp_config_errors_total{stage=\"$s\"} 0" "$T/metrics0"
done
check "metric weft_bgp_config_ok 1" grep -qx "weft_bgp_config_ok 1" "$T/metrics0"
since0=$(mesh_since)
[ -n "$since0" ] && pass "mesh session since $since0" || fail "no mesh session on node1"

# --- 1. records the model refuses, written by other means ------------------------------
cat >"$T/tor.yaml" <<EOF
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 198.18.0.1, asNumber: 65001}
EOF
check "BGPPeer tor (198.18.0.1)" ctl apply -f "$T/tor.yaml"
check "raw BGPPeer old-mcast (224.0.0.1)" drv put "$S" /weft/v1/bgppeers/old-mcast \
	'{"kind":"BGPPeer","metadata":{"name":"old-mcast"},"spec":{"peerIP":"224.0.0.1","asNumber":65001}}'
check "raw BGPPeer old-ll (fe80::1)" drv put "$S" /weft/v1/bgppeers/old-ll \
	'{"kind":"BGPPeer","metadata":{"name":"old-ll"},"spec":{"peerIP":"fe80::1","asNumber":65001}}'
has_tor() { [ "$(protocols)" = "Global_198_18_0_1 Mesh_198_18_0_12 " ]; }
check "node1's BIRD: the good peer configured beside the mesh" within 10 has_tor
check "the warning names old-mcast and why" grep -q \
	'BGPPeer record /weft/v1/bgppeers/old-mcast left out (no session for it; the other peers are not affected): old-mcast: spec.peerIP: "224.0.0.1" is not a unicast address' "$LOG1"
check "the warning names old-ll and why" grep -q \
	'BGPPeer record /weft/v1/bgppeers/old-ll left out .*"fe80::1" is a link-local address: BIRD needs an interface' "$LOG1"
sleep 2
n=$(grep -c 'BGPPeer record /weft/v1/bgppeers/old-mcast left out' "$LOG1")
[ "$n" = 1 ] && pass "logged once, not at every sync" || fail "old-mcast logged $n times"
check "no 224.0.0.1 in bird.conf" sh -c "! grep -q 224.0.0.1 '$CONF1'"
check "node1 still healthy" healthy
[ "$(metric weft_bgp_config_ok)" = 1 ] && pass "weft_bgp_config_ok 1" || fail "weft_bgp_config_ok '$(metric weft_bgp_config_ok)'"
check "delete the raw peers" ctl delete bgppeer old-mcast old-ll

# --- 2. BIRD refuses the config ---------------------------------------------------------
conf_before=$(md5sum <"$CONF1")
n0=$(checks)
cat >"$T/refused.yaml" <<EOF
kind: BGPPeer
metadata: {name: bird-refuses}
spec: {peerIP: 198.18.0.2, asNumber: 65002}
EOF
check "BGPPeer bird-refuses" ctl apply -f "$T/refused.yaml"
refused() { [ "$(http /healthz)" = 503 ] && grep -q '^unhealthy: BGP config refused by BIRD: ' "$T/body"; }
check "node1 /healthz 503: BGP config refused by BIRD" within 10 refused
sed 's/^/     | /' "$T/body"
check "the reason has BIRD's message and says BIRD keeps its config" grep -qE \
	'^unhealthy: BGP config refused by BIRD: [^;]*bird\.conf\.new:[0-9]+:[0-9]+ syntax error[^;]*; BIRD keeps its previous config$' "$T/body"
status_refused() {
	status_json >"$T/status.json" &&
		jq -e '.healthy == false and (.reason | startswith("BGP config refused by BIRD: "))
			and (.reason | endswith("; BIRD keeps its previous config"))' "$T/status.json" >/dev/null
}
check "node1's status in the store: unhealthy with the reason" within 10 status_refused
refused_at=$(date +%s)
check "weft_bgp_config_errors_total{stage=\"check\"} counts it" within 5 errors_are check 1
[ "$(metric weft_bgp_config_ok)" = 0 ] && pass "weft_bgp_config_ok 0" || fail "weft_bgp_config_ok '$(metric weft_bgp_config_ok)'"
check "weftd logs unhealthy with the reason" grep -q 'health: unhealthy: BGP config refused by BIRD: ' "$LOG1"
st1=$(status_json)
n1=$(checks)
[ "$((n1 - n0))" = 1 ] && pass "one bird -p for the refused text" || fail "$((n1 - n0)) bird -p runs for the refused text"
# Retries come at 1, 2, 4 s... and do not check the same text again; a
# store change that leaves the text as it is (a label on the Node, its
# status kept as weftd wrote it) restarts the backoff and does not either.
sleep 3
ctl get node node1 -o json | jq '.metadata.labels = {"rack": "r1"}' >"$T/node1-label.json"
check "label node1 (a store change, same config)" ctl replace -f "$T/node1-label.json"
sleep 4
n2=$(checks)
[ "$n2" = "$n1" ] && pass "no bird -p in the $(($(date +%s) - refused_at)) s after the refusal (retries, a label change)" ||
	fail "$((n2 - n1)) more bird -p runs for the same text in $(($(date +%s) - refused_at)) s"
installs=$(grep -c 'bgp: installing .*bird.conf' "$LOG1")
[ "$installs" = 1 ] && pass "one install failure logged" || fail "$installs install failures logged"
errors_are check 1 && pass "weft_bgp_config_errors_total{stage=\"check\"} still 1" ||
	fail "weft_bgp_config_errors_total{stage=\"check\"} '$(metric 'weft_bgp_config_errors_total{stage="check"}')'"
st2=$(status_json)
jq -e --argjson a "$st1" --argjson b "$st2" -n '$a.reason == $b.reason and $a.lastSync == $b.lastSync' >/dev/null &&
	pass "the status was not rewritten meanwhile (same reason, same lastSync)" || fail "status changed: $st1 -> $st2"
[ "$(md5sum <"$CONF1")" = "$conf_before" ] && pass "bird.conf unchanged (fail static)" || fail "bird.conf changed"
check "no bird.conf.new left" sh -c "! test -e '$CONF1.new'"
[ "$(protocols)" = "Global_198_18_0_1 Mesh_198_18_0_12 " ] && pass "BIRD runs its previous protocols" ||
	fail "BIRD's protocols: $(protocols)"
check "the mesh session is still Established" mesh_up
[ "$(mesh_since)" = "$since0" ] && pass "and did not flap (since $since0)" || fail "mesh since moved: $since0 -> $(mesh_since)"
# Mended: another name, the same peer.
check "delete bird-refuses" ctl delete bgppeer bird-refuses
sed 's/bird-refuses/tor2/' "$T/refused.yaml" >"$T/tor2.yaml"
check "BGPPeer tor2 (the same peer)" ctl apply -f "$T/tor2.yaml"
check "node1 healthy again" within 10 healthy
has_tor2() { [ "$(protocols)" = "Global_198_18_0_1 Global_198_18_0_2 Mesh_198_18_0_12 " ]; }
check "BIRD has the new config (Global_198_18_0_2)" within 10 has_tor2
check "bird.conf has tor2" grep -q '^# BGPPeer tor2 (global)' "$CONF1"
status_healthy() { status_json | jq -e '.healthy == true and .reason == null' >/dev/null; }
check "node1's status in the store: healthy again" within 10 status_healthy
[ "$(metric weft_bgp_config_ok)" = 1 ] && pass "weft_bgp_config_ok 1 again" || fail "weft_bgp_config_ok '$(metric weft_bgp_config_ok)'"
check "weftd logs BIRD follows the store again" grep -q 'bgp: BIRD follows the store again' "$LOG1"
[ "$(mesh_since)" = "$since0" ] && pass "the mesh session never flapped" || fail "mesh since moved: $since0 -> $(mesh_since)"

# --- 2b. BIRD does not take a config (hung) --------------------------------------------
bpid=$(bird_pid 1)
kill -STOP "$bpid"
sed 's/bird-refuses/tor3/; s/198.18.0.2/198.18.0.3/' "$T/refused.yaml" >"$T/tor3.yaml"
check "BGPPeer tor3 while node1's BIRD is stopped (SIGSTOP)" ctl apply -f "$T/tor3.yaml"
not_taken() {
	[ "$(http /healthz)" = 503 ] && grep -qE '^unhealthy: BIRD did not take the new config \(configure: cannot reach BIRD on .*/bird\.ctl: Connection timed out\); BIRD keeps its previous config$' "$T/body"
}
check "node1 /healthz 503: BIRD did not take the new config" within 15 not_taken
sed 's/^/     | /' "$T/body"
c1=$(metric 'weft_bgp_config_errors_total{stage="configure"}')
[ "${c1:-0}" -ge 1 ] && pass "weft_bgp_config_errors_total{stage=\"configure\"} $c1" || fail "stage configure counted '$c1'"
kill -CONT "$bpid"
check "node1 healthy again once BIRD runs" within 30 healthy
has_tor3() { protocols | grep -q Global_198_18_0_3; }
check "BIRD took the config (Global_198_18_0_3)" within 5 has_tor3
[ "$(mesh_since)" = "$since0" ] && pass "the mesh session did not flap" || fail "mesh since moved: $since0 -> $(mesh_since)"

# --- 3. a config that cannot be made ---------------------------------------------------
ctl get node node1 -o json | jq 'del(.spec.status)' >"$T/node1.json"
jq 'del(.spec.bgp.ipv4Address)' "$T/node1.json" >"$T/node1-noaddr.json"
r0=$(metric 'weft_bgp_config_errors_total{stage="render"}')
conf_before=$(md5sum <"$CONF1")
check "node1's Node without spec.bgp.ipv4Address" ctl replace -f "$T/node1-noaddr.json"
cannot_make() { [ "$(http /healthz)" = 503 ] && grep -q '^unhealthy: BGP config cannot be made: node node1: no spec.bgp.ipv4Address: it cannot run BGP; BIRD keeps its previous config$' "$T/body"; }
check "node1 /healthz 503: BGP config cannot be made" within 10 cannot_make
status_cannot() { status_json | jq -e '.healthy == false and (.reason | startswith("BGP config cannot be made: node node1: no spec.bgp.ipv4Address"))' >/dev/null; }
check "node1's status says so" within 10 status_cannot
sleep 5
r1=$(metric 'weft_bgp_config_errors_total{stage="render"}')
# Tries at 0, 1, 3 and 7 s (backoff): 3 or 4 in about 6 s, not 6.
[ "$((r1 - r0))" -ge 2 ] && [ "$((r1 - r0))" -le 4 ] && pass "stage render counted $((r1 - r0)) times in ~6 s (backoff)" ||
	fail "stage render counted $((r1 - r0)) times in ~6 s"
[ "$(md5sum <"$CONF1")" = "$conf_before" ] && pass "bird.conf unchanged" || fail "bird.conf changed"
check "BIRD still runs (fail static)" _bird_answers 1
check "restore node1's Node" ctl replace -f "$T/node1.json"
check "node1 healthy again" within 10 healthy
check "the mesh session comes back" wait_established 1 1 30

# --- 4. a Node with cluster id 0.0.0.0, stored before the model refused it ------------
stop_weftd 2
ctl get node node2 -o json | jq -c 'del(.spec.status) | .spec.bgp.routeReflectorClusterID = "0.0.0.0"' >"$T/node2-rr0.json"
check "raw Node node2 with cluster id 0.0.0.0" drv put "$S" /weft/v1/nodes/node2 "$(cat "$T/node2-rr0.json")"
check "weftctl refuses it now" sh -c "! '$WEFTCTL' --store '$S' apply -f '$T/node2-rr0.json' 2>'$T/err'"
check "naming the field" grep -q 'spec.bgp.routeReflectorClusterID: "0.0.0.0" is not a cluster id' "$T/err"
check "node1 reads it with the router id as the cluster id, and says so" within 10 grep -q \
	'bgp: /weft/v1/nodes/node2: spec.bgp.routeReflectorClusterID 0.0.0.0 is not a cluster id: read as 198.18.0.12' "$LOG1"
check "node1 stays healthy (its snapshot reads node2 as before)" healthy
check "weftd node2 starts on it" start_weftd 2
check "node2's weftd says what it wrote" grep -q 'routeReflectorClusterID 0.0.0.0 is not a cluster id .*writing 198.18.0.12' "$(node_dir 2)/weftd.log"
check "node2's cluster id is its router id now" sh -c \
	"'$WEFTCTL' --store '$S' get node node2 -o json | jq -e '.spec.bgp.routeReflectorClusterID == \"198.18.0.12\"' >/dev/null"
check "node1: the mesh session is back" wait_established 1 1 30
check "node1 healthy" within 10 healthy

# Every weftd stopped (a sanitizer report fails the test), nothing left in
# our namespaces, the root namespace unchanged.
fabric_finish
