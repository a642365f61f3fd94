#!/bin/bash
# A 3-node BGP full mesh, for real: weftd + BIRD per node namespace, pods
# through the weft CNI plugin. Every pod reaches every pod on the other nodes
# (ping and TCP); each node's kernel holds the other nodes' blocks from BIRD
# (proto bird, via their underlay address) and no /32 of another node's pod;
# deleting pods keeps a block's route while the block is affine (even empty);
# releasing the empty block withdraws it on every node, the others stay.
# Usage: bgp-fabric.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"

t0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - t0) / 1000000)) ms"; }

check "fabric up: 3 nodes (weftd + BIRD each)" fabric_up 3
for i in 1 2 3; do
	check "node$i: 2 Established mesh sessions" wait_established "$i" 2 30
done
echo "     sessions up after $(elapsed)"

# Two pods per node: a and b (same /26 block).
declare -A pip
for i in 1 2 3; do
	for m in a b; do
		pip[$i$m]=$(pod_add "$i" "$i$m") && pass "pod $i$m on node$i: ${pip[$i$m]}" || fail "pod $i$m on node$i"
	done
done
declare -A blk
for i in 1 2 3; do
	blk[$i]=$(block_of "${pip[${i}a]}")
	[ "$(block_of "${pip[${i}b]}")" = "${blk[$i]}" ] && pass "node$i: both pods in block ${blk[$i]}" ||
		fail "node$i: pods in two blocks"
done

# Routes: the other nodes' blocks via their underlay address, from BIRD.
route_via() { bird_routes "$1" | grep -q "^$2 via $3 dev eth0"; }
for i in 1 2 3; do
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		check "node$i: node$j's block ${blk[$j]} via $(node_ip "$j") (proto bird)" \
			within 15 route_via "$i" "${blk[$j]}" "$(node_ip "$j")"
	done
	check "node$i: its own block is not a BIRD route" no_route "$i" "${blk[$i]}"
	check "node$i: exactly 2 routes from BIRD" sh -c "test \$(ip -n $(node_ns "$i") route show proto bird | wc -l) = 2"
done
echo "     routes in place after $(elapsed)"
no_foreign_32() {
	local i=$1 k
	for k in "${!pip[@]}"; do
		[ "${k:0:1}" = "$i" ] && continue
		ip -n "$(node_ns "$i")" route show | grep -qE "^${pip[$k]}( |/32)" && return 1
	done
	return 0
}
for i in 1 2 3; do
	check "node$i: no /32 route of another node's pod" no_foreign_32 "$i"
done

# Reachability: every pod to every pod on the other nodes (ping); TCP from
# each node to each other node.
bad=""
for p in "${!pip[@]}"; do
	for q in "${!pip[@]}"; do
		[ "${p:0:1}" = "${q:0:1}" ] && continue
		can_ping "$p" "${pip[$q]}" || bad="$bad $p->$q"
	done
done
[ -z "$bad" ] && pass "ping: every pod reaches every pod on the other nodes (24 pairs)" || fail "ping fails:$bad"
for i in 1 2 3; do
	for j in 1 2 3; do
		[ "$i" = "$j" ] && continue
		check "TCP ${i}a -> ${j}b" can_tcp "${i}a" "${j}b"
	done
done
echo "     reachability checked after $(elapsed)"

# --- pod deletion keeps the block, releasing it withdraws it --------------------
check "delete pod 1b" pod_del 1b
unset 'pip[1b]'
sleep 3 # Longer than BIRD's kernel scan (2 s) and a weftd sync.
for j in 2 3; do
	check "node$j: node1's block still routed after deleting 1b" has_route "$j" "${blk[1]}"
done
check "2a still reaches 1a" can_ping 2a "${pip[1a]}"
check "delete pod 1a (node1's block is empty now)" pod_del 1a
unset 'pip[1a]'
sleep 3
for j in 2 3; do
	check "node$j: node1's empty but affine block still routed" has_route "$j" "${blk[1]}"
done
check "node1's block is still affine to node1" sh -c "'$WEFTCTL' --store '$S' ipam show | grep -F '${blk[1]}' | grep -q node1"
# Releasing the empty block: what weftd or an operator does when a node
# is drained (weft_ipam_release_empty_blocks(), via the test driver: weftctl
# has no command for it). weftd sees the block go, renders, configures BIRD.
check "release node1's empty blocks" sh -c "'$DRIVER' release '$S' node1 no-such-handle | grep -qx 1"
for j in 2 3; do
	check "node$j: node1's block ${blk[1]} withdrawn" within 10 no_route "$j" "${blk[1]}"
done
echo "     block withdrawn after $(elapsed)"
check "node1's config lost the block" sh -c "! grep -qF 'route ${blk[1]} blackhole' '$(node_dir 1)/bird.conf'"
for j in 2 3; do
	o=$((5 - j))
	check "node$j: node$o's block ${blk[$o]} stays" has_route "$j" "${blk[$o]}"
done
check "2a still reaches 3a" can_ping 2a "${pip[3a]}"
for i in 1 2 3; do
	check "node$i: sessions did not drop" _n_established "$i" 2
done
# A new pod on node1 claims a block again: announced everywhere.
pip[1c]=$(pod_add 1 1c) && pass "pod 1c on node1: ${pip[1c]}" || fail "pod 1c on node1"
b1c=$(block_of "${pip[1c]}")
for j in 2 3; do
	check "node$j: node1's new block $b1c" within 10 has_route "$j" "$b1c"
done
check "3b reaches 1c" can_ping 3b "${pip[1c]}"
check "TCP 2a -> 1c" can_tcp 2a 1c
# A BGPPeer record weftctl would refuse, written into the store by other
# means, is left out (one session, not the node's config): nothing falls
# back, every node still renders.
check "a corrupt BGPPeer record in the store" drv put "$S" /weft/v1/bgppeers/broken '{'
check "node1: the record left out, with a warning" within 10 grep -q "BGPPeer record /weft/v1/bgppeers/broken left out" "$(node_dir 1)/weftd.log"
check "the BGPPeer record mended" ctl delete bgppeer broken
# A Node record that does not decode: no node can render a config. The
# running ones keep theirs (fail static); a weftd started meanwhile brings
# its node's BGP up with the config its last run installed, and renders
# again once the record is mended.
check "a corrupt Node record in the store" drv put "$S" /weft/v1/nodes/broken '{'
stop_weftd 1
check "weftd on node1 starts with the store unrenderable, and its BIRD" start_weftd 1
check "node1: fell back to the config on disk" grep -q "starting BIRD with .*bird.conf as the last weftd installed it" "$(node_dir 1)/weftd.log"
check "node1: both sessions back" wait_established 1 2 60
check "3b reaches 1c again" within 10 can_ping 3b "${pip[1c]}"
check "the record mended" ctl delete node broken --force
sleep 2
n_warn=$(grep -c 'bgp: reading the store' "$(node_dir 1)/weftd.log")
sleep 3
check "node1 reads the store again (no more warnings)" test "$(grep -c 'bgp: reading the store' "$(node_dir 1)/weftd.log")" = "$n_warn"
check "node1: sessions still up" _n_established 1 2
echo "     done after $(elapsed)"
fabric_finish
