#!/bin/bash
# An external BGP peer, for real: FRR's bgpd (Debian frr, without zebra) in
# the fabric namespace at 198.18.0.1, AS 65001, is the top-of-rack router;
# a global BGPPeer makes every node (AS 64512, full mesh among themselves)
# peer with it. FRR learns every node's blocks with the node as next hop;
# a prefix FRR originates (network statement) reaches every node's kernel as
# a proto bird route, carries pod traffic to an address behind FRR, and
# goes away on every node when FRR withdraws it.
# Usage: bgp-frr.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"

BGPD=/usr/lib/frr/bgpd
if [ ! -x "$BGPD" ] || ! command -v vtysh >/dev/null || ! id frr >/dev/null 2>&1; then
	echo "skipped: FRR is not installed (apt-get install frr)"
	exit 77
fi

t0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - t0) / 1000000)) ms"; }

TOR_PFX=203.0.113.0/24
cat >"$T/frr.yaml" <<EOF
kind: BGPConfig
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
---
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 26, natOutgoing: false, vxlanMode: Never}
---
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 198.18.0.1, asNumber: 65001}
EOF

# FRR first (lab.md's recipe: bgpd alone, -Z no zebra, -n no kernel; its own
# directory owned by frr for the pid file and the vty socket; -P 0: no TCP
# vty). A listen range: every node that connects from the underlay is a
# neighbour, so nodes can join without touching FRR.
check "fabric namespace" fabric_init
FD="$FR/frr"
mkdir -p "$FD" && chown frr:frr "$FD"
cat >"$FD/bgpd.conf" <<EOF
hostname tor
log file $FD/bgpd.log
router bgp 65001
 bgp router-id 198.18.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor nodes peer-group
 neighbor nodes remote-as 64512
 bgp listen range 198.18.0.0/24 peer-group nodes
 address-family ipv4 unicast
  network $TOR_PFX
 exit-address-family
EOF
chown frr:frr "$FD/bgpd.conf"
vty() { vtysh --vty_socket "$FD" "$@"; }
check "FRR bgpd starts in the fabric namespace" \
	ip netns exec "$FAB" "$BGPD" -d -Z -n -P 0 -f "$FD/bgpd.conf" -i "$FD/bgpd.pid" --vty_socket "$FD"
check "vtysh answers" within 10 sh -c "vtysh --vty_socket '$FD' -c 'show bgp ipv4 unicast summary' >/dev/null 2>&1"
check "weftctl apply (pool, BGPConfig, global BGPPeer tor)" ctl apply -f "$T/frr.yaml"
for i in 1 2 3; do
	check "node$i up" fabric_add_node "$i"
done
for i in 1 2 3; do
	check "node$i: 3 Established sessions (2 mesh, 1 global)" wait_established "$i" 3 30
	check "node$i: Global_198_18_0_1 Established" sh -c "birdc -s '$(node_dir "$i")/bird.ctl' show protocols Global_198_18_0_1 | grep -q Established"
done
frr_established() { [ "$(vty -c 'show bgp ipv4 unicast summary json' | jq '[.peers[] | select(.state == "Established")] | length')" = 3 ]; }
check "FRR: 3 Established neighbours" within 10 frr_established
echo "     sessions up after $(elapsed)"

declare -A pip blk
for i in 1 2 3; do
	pip[$i]=$(pod_add "$i" "p$i") && pass "pod p$i on node$i: ${pip[$i]}" || fail "pod p$i on node$i"
	blk[$i]=$(block_of "${pip[$i]}")
done
# frr_route PREFIX NEXTHOP: FRR has PREFIX, best path via NEXTHOP.
frr_route() {
	vty -c "show bgp ipv4 unicast $1 json" |
		jq -e --arg nh "$2" '[.paths[] | select(.bestpath.overall == true) | .nexthops[].ip] | index($nh) != null' >/dev/null
}
for i in 1 2 3; do
	check "FRR learned node$i's block ${blk[$i]} via $(node_ip "$i")" within 15 frr_route "${blk[$i]}" "$(node_ip "$i")"
done
check "FRR: the blocks are from AS 64512" sh -c "vtysh --vty_socket '$FD' -c 'show bgp ipv4 unicast ${blk[1]} json' | jq -e '.paths[0].aspath.string == \"64512\"' >/dev/null"
check "FRR: nothing else from the nodes (4 prefixes: 3 blocks + its own)" \
	sh -c "test \$(vtysh --vty_socket '$FD' -c 'show bgp ipv4 unicast json' | jq '.routes | length') = 4"
echo "     FRR has the blocks after $(elapsed)"

# FRR's prefix in every node's kernel, from BIRD, via the ToR.
for i in 1 2 3; do
	check "node$i: $TOR_PFX via 198.18.0.1 (proto bird)" \
		within 15 sh -c "ip -n $(node_ns "$i") route show proto bird | grep -q '^$TOR_PFX via 198.18.0.1 dev eth0'"
	check "node$i: the other nodes' blocks via the nodes, not via FRR" sh -c "
		for j in 1 2 3; do
			[ \$j = $i ] && continue
			ip -n $(node_ns "$i") route show proto bird | grep -q \"^\$(echo '${blk[1]} ${blk[2]} ${blk[3]}' | cut -d' ' -f\$j) via 198.18.0.1\$j \" || exit 1
		done"
done
# Traffic to it: an address behind FRR (on the fabric namespace's lo); the
# way back uses FRR's own table (no zebra: programmed here by hand from
# what FRR learned).
ip -n "$FAB" addr add 203.0.113.1/32 dev lo
for i in 1 2 3; do
	ip -n "$FAB" route add "${blk[$i]}" via "$(node_ip "$i")"
done
for i in 1 2 3; do
	check "pod p$i reaches 203.0.113.1 behind the ToR" can_ping "p$i" 203.0.113.1
done
check "pods still reach each other (p1 -> p3)" can_ping p1 "${pip[3]}"

# FRR withdraws its prefix: gone from every node.
check "FRR: no network $TOR_PFX" vty -c 'configure terminal' -c 'router bgp 65001' -c 'address-family ipv4 unicast' \
	-c "no network $TOR_PFX"
for i in 1 2 3; do
	check "node$i: $TOR_PFX withdrawn" within 10 sh -c "! ip -n $(node_ns "$i") route show proto bird | grep -q '^$TOR_PFX '"
	check "node$i: still 2 node blocks from BIRD" sh -c "test \$(ip -n $(node_ns "$i") route show proto bird | wc -l) = 2"
done
echo "     done after $(elapsed)"
fabric_finish
