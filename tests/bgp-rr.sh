#!/bin/bash
# Route reflection, for real: node1 is a route reflector (its Node has
# spec.bgp.routeReflectorClusterID), nodes 2-4 are clients, the BGPConfig
# has nodeToNodeMeshEnabled: false. No client-to-client sessions (each
# client's BIRD has exactly one BGP protocol: the reflector), every pod
# reaches every pod, next hops stay the originating node's. A 5th node (a
# client) joins without any change on the other clients: their BIRD configs
# are byte-identical and their sessions do not flap; its pod is reachable
# from every other pod.
# Usage: bgp-rr.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"

t0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - t0) / 1000000)) ms"; }

cat >"$T/rr.yaml" <<EOF
kind: BGPConfig
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: false}
---
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 26, natOutgoing: false, vxlanMode: Never}
---
kind: Node
metadata: {name: node1}
spec: {bgp: {routeReflectorClusterID: 224.0.0.1}}
EOF
check "fabric up: reflector node1 + clients node2..4" fabric_up 4 "$T/rr.yaml"
check "node1 keeps its cluster id after weftd registered it" \
	sh -c "'$WEFTCTL' --store '$S' get nodes node1 -o json | grep -q '224.0.0.1'"
check "node1 (reflector): 3 Established sessions" wait_established 1 3 30
for i in 2 3 4; do
	check "node$i: 1 Established session" wait_established "$i" 1 30
done
echo "     sessions up after $(elapsed)"

# bgp_protocols I: every BGP protocol of node I (whatever its state).
bgp_protocols() { birdc -s "$(node_dir "$1")/bird.ctl" show protocols | awk '$2 == "BGP" {print $1}' | sort | tr '\n' ' '; }
check "node1: Client_ sessions to nodes 2, 3, 4 only" \
	sh -c "test '$(bgp_protocols 1)' = 'Client_198_18_0_12 Client_198_18_0_13 Client_198_18_0_14 '"
for i in 2 3 4; do
	p=$(bgp_protocols "$i")
	[ "$p" = "Reflector_198_18_0_11 " ] && pass "node$i: only the reflector session (no client-to-client)" ||
		fail "node$i: BGP protocols are '$p'"
done
check "weftctl node status on node2: the reflector, Established" sh -c \
	"ip netns exec $(node_ns 2) '$WEFTCTL' node status --bird-socket '$(node_dir 2)/bird.ctl' | grep -qE '^198\.18\.0\.11 +reflector +up .*Established'"
check "weftctl node status on node1: 3 clients" sh -c \
	"test \$(ip netns exec $(node_ns 1) '$WEFTCTL' node status --bird-socket '$(node_dir 1)/bird.ctl' | grep -cE ' client +up .*Established') = 3"

declare -A pip blk
for i in 1 2 3 4; do
	pip[$i]=$(pod_add "$i" "p$i") && pass "pod p$i on node$i: ${pip[$i]}" || fail "pod p$i on node$i"
	blk[$i]=$(block_of "${pip[$i]}")
done
route_via() { bird_routes "$1" | grep -q "^$2 via $3 dev eth0"; }
for i in 1 2 3 4; do
	for j in 1 2 3 4; do
		[ "$i" = "$j" ] && continue
		# Reflected routes keep the originating node as next hop.
		check "node$i: node$j's block ${blk[$j]} via $(node_ip "$j")" within 15 route_via "$i" "${blk[$j]}" "$(node_ip "$j")"
	done
done
echo "     routes in place after $(elapsed)"
all_pairs() {
	local i j bad=""
	for i in "$@"; do
		for j in "$@"; do
			[ "$i" = "$j" ] && continue
			can_ping "p$i" "${pip[$j]}" || bad="$bad p$i->p$j"
		done
	done
	[ -z "$bad" ] || { echo "ping fails:$bad"; return 1; }
}
check "ping: every pod reaches every other pod (12 pairs)" all_pairs 1 2 3 4
check "TCP p2 -> p3 (client to client, through no session between them)" can_tcp p2 p3
check "TCP p4 -> p1 (client to reflector)" can_tcp p4 p1
check "TCP p1 -> p2 (reflector to client)" can_tcp p1 p2

# --- a 5th node joins ----------------------------------------------------------------
# since I PROTO: the session's since (one-second resolution), to see a flap.
since() { birdc -s "$(node_dir "$1")/bird.ctl" show protocols "$2" | awk -v p="$2" '$1 == p {print $5, $6}'; }
for i in 2 3 4; do
	cp "$(node_dir "$i")/bird.conf" "$T/bird.conf.$i"
	s0[$i]=$(since "$i" Reflector_198_18_0_11)
done
for i in 2 3 4; do
	s1[$i]=$(since 1 "Client_198_18_0_1$i")
done
sleep 1.1 # A flap within the same second would not show in since.
check "node5 (a client) joins" fabric_add_node 5
pip[5]=$(pod_add 5 p5) && pass "pod p5 on node5: ${pip[5]}" || fail "pod p5 on node5"
blk[5]=$(block_of "${pip[5]}")
check "node1 (reflector): 4 Established sessions" wait_established 1 4 30
check "node5: 1 Established session" wait_established 5 1 30
check "node5: only the reflector session" sh -c "test '$(bgp_protocols 5)' = 'Reflector_198_18_0_11 '"
for i in 1 2 3 4; do
	check "node$i: node5's block ${blk[5]} via $(node_ip 5)" within 15 route_via "$i" "${blk[5]}" "$(node_ip 5)"
done
for j in 1 2 3 4; do
	check "node5: node$j's block ${blk[$j]}" within 15 route_via 5 "${blk[$j]}" "$(node_ip "$j")"
done
echo "     node5 converged after $(elapsed)"
check "ping: every pod reaches every other pod, p5 included (20 pairs)" all_pairs 1 2 3 4 5
for i in 1 2 3 4; do
	check "TCP p$i -> p5" can_tcp "p$i" p5
done
check "TCP p5 -> p3" can_tcp p5 p3
# Nothing changed on the clients: same config bytes, no configure needed,
# their session to the reflector did not flap; the reflector's sessions to
# them did not flap either (configure added one protocol).
sleep 2 # Give a wrongly triggered render time to show.
for i in 2 3 4; do
	check "node$i: bird.conf byte-identical after node5 joined" cmp "$T/bird.conf.$i" "$(node_dir "$i")/bird.conf"
	s=$(since "$i" Reflector_198_18_0_11)
	[ -n "$s" ] && [ "$s" = "${s0[$i]}" ] && pass "node$i: reflector session did not flap ($s)" ||
		fail "node$i: reflector session flapped (${s0[$i]} -> $s)"
	s=$(since 1 "Client_198_18_0_1$i")
	[ -n "$s" ] && [ "$s" = "${s1[$i]}" ] && pass "node1: session to node$i did not flap" ||
		fail "node1: session to node$i flapped (${s1[$i]} -> $s)"
	check "node$i: still no client-to-client session" sh -c "test '$(bgp_protocols "$i")' = 'Reflector_198_18_0_11 '"
done
check "node1's config gained Client_198_18_0_15" grep -q 'protocol bgp Client_198_18_0_15' "$(node_dir 1)/bird.conf"
echo "     done after $(elapsed)"
fabric_finish
