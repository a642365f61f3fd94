#!/bin/bash
# A pod whose address lies in another node's block (IPAM borrows one when
# no block is left to claim; here a static address, CNI_ARGS IP=, puts it
# there): a 3-node BGP full mesh with weftd + BIRD per node. node1's pod a1
# gets an address inside node2's block. node1 exports its /32 (learned by
# BIRD from weftd's endpoint route, protocol 81), node2 installs it over
# its own blackhole for the block and node3 beside node2's block route, so
# pods on node2 and node3 reach a1; node1 installs no BIRD route for its
# own pod. Deleting a1 withdraws the /32 everywhere; node2's block route
# stays.
# Usage: bgp-borrow.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"

check "fabric up: 3 nodes (weftd + BIRD each)" fabric_up 3
for i in 1 2 3; do
	check "node$i: 2 Established mesh sessions" wait_established "$i" 2 30
done

b1=$(pod_add 2 b1) && pass "pod b1 on node2: $b1" || fail "pod b1 on node2"
c1=$(pod_add 3 c1) && pass "pod c1 on node3: $c1" || fail "pod c1 on node3"
B2=$(block_of "$b1")
# An address of node2's block that b1 does not have: the block's 20th.
Y=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[20])' "$B2")
a1=$(pod_add 1 a1 "$Y") && pass "pod a1 on node1 with $Y (in node2's block $B2)" || fail "pod a1 on node1 with $Y"
[ "$a1" = "$Y" ] && pass "a1 has the address it asked for" || fail "a1 has $a1, not $Y"

route_via() { bird_routes "$1" | grep -q "^$2 via $3 dev eth0"; }
check "node3: node2's block $B2 via $(node_ip 2)" within 15 route_via 3 "$B2" "$(node_ip 2)"
check "node1: node2's block $B2 via $(node_ip 2)" within 15 route_via 1 "$B2" "$(node_ip 2)"
check "node2: a1's /32 $Y via node1 (proto bird)" within 15 route_via 2 "$Y" "$(node_ip 1)"
check "node3: a1's /32 $Y via node1 (proto bird)" within 15 route_via 3 "$Y" "$(node_ip 1)"
check "node1: no BIRD route for its own pod $Y" no_route 1 "$Y"
check "node2: its own block $B2 is not a BIRD route" no_route 2 "$B2"
check "node2: BIRD has the /32 from the mesh session" sh -c \
	"birdc -s '$(node_dir 2)/bird.ctl' show route $Y/32 | grep -q 'Mesh_198_18_0_11'"

check "b1 (node2, same block) pings a1 $Y" can_ping b1 "$Y"
check "c1 (node3) pings a1 $Y" can_ping c1 "$Y"
check "a1 pings b1 $b1" can_ping a1 "$b1"
check "a1 pings c1 $c1" can_ping a1 "$c1"

check "pod a1 deleted" pod_del a1
check "node2: $Y withdrawn" within 15 no_route 2 "$Y"
check "node3: $Y withdrawn" within 15 no_route 3 "$Y"
check "node3: node2's block $B2 stays" has_route 3 "$B2"
check "c1 still pings b1" can_ping c1 "$b1"

fabric_finish
