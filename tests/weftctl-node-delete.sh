#!/bin/bash
# weftctl delete node: a Node goes with its Endpoints, its BGPPeers, its
# IPAM addresses (by Endpoint, by the node an allocation records, its VXLAN
# tunnel address) and its blocks (a block other nodes borrowed from stays,
# affine to nobody); a node whose weftd reported status lately is refused
# without --force; all or nothing when a named resource is missing. On the
# embedded store; no root.
# Usage: weftctl-node-delete.sh WEFTCTL TEST-IPAM-CLI-SETUP
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
W=$1
SETUP=$2
S="file:$T/store"
ctl() { "$W" --store "$S" "$@"; }
setup() { "$SETUP" "$S" "$@"; }
alloc() { # alloc NAME WANT ARGS...: the setup tool prints WANT
	local name=$1 want=$2; shift 2
	check "$name" sh -c "'$SETUP' '$S' $* | grep -qx '$want'"
}

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat >"$T/base.yaml" <<EOT
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.66.0.0/24, blockSize: 28}
---
kind: Node
metadata: {name: node1}
spec:
  bgp: {ipv4Address: 198.18.0.11/24}
  ipv4VXLANTunnelAddr: 10.66.0.2
  status: {healthy: true, lastSync: "$now"}
---
kind: Node
metadata: {name: node2}
spec:
  bgp: {ipv4Address: 198.18.0.12/24}
  status: {healthy: true, lastSync: "2026-01-01T00:00:00Z"}
---
kind: BGPPeer
metadata: {name: tor-node1}
spec: {node: node1, peerIP: 198.18.0.1, asNumber: 65001}
---
kind: BGPPeer
metadata: {name: tor-node2}
spec: {node: node2, peerIP: 198.18.0.1, asNumber: 65001}
---
kind: BGPPeer
metadata: {name: tor-all}
spec: {peerIP: 198.18.0.2, asNumber: 65002}
EOT
check "apply pool, nodes, peers" ctl apply -f "$T/base.yaml"
alloc "node1 pod c1" 10.66.0.0 auto c1 eth0 node1
alloc "node1 pod c2" 10.66.0.1 auto c2 eth0 node1
check "node1 tunnel address" setup static 10.66.0.2 vxlan-tunnel-addr-node1 node1
alloc "node1 secondary network (range, no node recorded)" 192.168.91.100 range macnet 192.168.91.100-192.168.91.110/24 c1 net1
alloc "node2 pod c3" 10.66.0.16 auto c3 eth0 node2
check "node2 borrows from node1's block" setup static 10.66.0.9 c4:eth0 node2
cat >"$T/eps.yaml" <<EOT
kind: Endpoint
metadata: {name: node1-c1-eth0}
spec: {node: node1, containerID: c1, ifname: eth0, ipNetworks: [10.66.0.0/32]}
---
kind: Endpoint
metadata: {name: node1-c1-net1}
spec: {node: node1, containerID: c1, ifname: net1, ipNetworks: [192.168.91.100/24]}
---
kind: Endpoint
metadata: {name: node1-c2-eth0}
spec: {node: node1, containerID: c2, ifname: eth0, ipNetworks: [10.66.0.1/32]}
---
kind: Endpoint
metadata: {name: node2-c3-eth0}
spec: {node: node2, containerID: c3, ifname: eth0, ipNetworks: [10.66.0.16/32]}
---
kind: Endpoint
metadata: {name: node2-c4-eth0}
spec: {node: node2, containerID: c4, ifname: eth0, ipNetworks: [10.66.0.9/32]}
EOT
check "apply endpoints" ctl apply -f "$T/eps.yaml"
expect_rc "ipam check clean before" 0 "6 allocations: 6 live.* 0 leaked.*0 inconsistent" ctl ipam check --grace 0

# --- refusals: nothing deleted --------------------------------------------------
ctl get endpoints -o json >"$T/eps-before"
expect_rc "a node that reported status lately is refused" 1 \
	"^weftctl: node1: the node's weftd reported status [0-9]+ s ago and may still be running: stop it first.*--force; nothing deleted$" \
	ctl delete node node1
expect_rc "a missing node among others: nothing deleted" 1 "^weftctl: ghost: Node ghost not found; nothing deleted$" \
	ctl delete --force node node2 ghost
ctl get endpoints -o json >"$T/eps-after"
check "no Endpoint went" cmp -s "$T/eps-before" "$T/eps-after"
expect_rc "no address went" 0 "6 allocations: 6 live" ctl ipam check --grace 0
expect_rc "node2 is still there" 0 "node2" ctl get node node2
expect_rc "--force is no option of apply" 2 "unknown option --force" ctl apply --force -f "$T/base.yaml"
expect_rc "delete --help tells" 0 "A Node goes with what belongs to it" ctl delete --help

# All or nothing across Nodes: node2 (stale status) with node1 (live) is
# refused before node2 loses anything.
expect_rc "a stale node with a live one: refused" 1 "^weftctl: node1: the node's weftd reported status" \
	ctl delete node node2 node1
expect_rc "node2's Endpoints are still there" 0 "node2-c3-eth0" ctl get endpoints
expect_rc "and its addresses" 0 "6 allocations: 6 live" ctl ipam check --grace 0
# Status times as the model accepts them: fractions of a second, offsets.
for ls in "$(date -u +%Y-%m-%dT%H:%M:%S).123456Z" "$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%S)+02:00"; do
	cat >"$T/live.yaml" <<EOT
kind: Node
metadata: {name: live}
spec: {status: {healthy: true, lastSync: "$ls"}}
EOT
	ctl apply -f "$T/live.yaml" >/dev/null
	expect_rc "lastSync $ls: live" 1 "^weftctl: live: the node's weftd reported status [0-9] s ago" ctl delete node live
done
cat >"$T/live.yaml" <<EOT
kind: Node
metadata: {name: live}
spec: {status: {healthy: true, lastSync: "2026-01-01T00:00:00-05:00"}}
EOT
ctl apply -f "$T/live.yaml" >/dev/null
expect_rc "lastSync long ago with an offset: not live" 0 "^deleted Node live and its 0 Endpoints" ctl delete node live
cat >"$T/stopped.yaml" <<EOT
kind: Node
metadata: {name: stopped}
spec: {status: {healthy: false, reason: weftd stopped, lastSync: "$now"}}
EOT
ctl apply -f "$T/stopped.yaml" >/dev/null
expect_rc "a node whose weftd said it stopped: no --force needed" 0 "^deleted Node stopped and its 0 Endpoints" \
	ctl delete node stopped

# A node name too long for a tunnel handle (the model allows 253).
l60=$(printf 'n%.0s' $(seq 60))
long="$l60.$l60.$l60.$l60" # 243 characters
printf 'kind: Node\nmetadata: {name: %s}\n' "$long" >"$T/long.yaml"
check "a Node with a 243-character name" ctl apply -f "$T/long.yaml"
expect_rc "is deleted" 0 "^deleted Node $long and its 0 Endpoints" ctl delete node "$long"

# --- delete node1 ----------------------------------------------------------------
expect_rc "delete --force node node1" 0 \
	"^deleted Node node1 and its 3 Endpoints, 1 BGPPeer, 4 addresses, 1 block$" ctl delete --force node node1
expect_rc "node1 is gone" 1 "not found" ctl get node node1
check "its Endpoints are gone" sh -c "! '$W' --store '$S' get endpoints | grep -q node1-"
expect_rc "node2's Endpoints stay" 0 "node2-c4-eth0" ctl get endpoints
check "its BGPPeer is gone" sh -c "! '$W' --store '$S' get bgppeers | grep -q tor-node1"
expect_rc "the others stay" 0 "tor-node2" ctl get bgppeers
expect_rc "the global peer stays" 0 "tor-all" ctl get bgppeers
for ip in 10.66.0.0 10.66.0.1 10.66.0.2 192.168.91.100; do
	expect_rc "$ip released" 0 "^$ip: not allocated$" ctl ipam show --ip $ip
done
expect_rc "node2's own address stays" 0 "^handle: +c3:eth0$" ctl ipam show --ip 10.66.0.16
expect_rc "the borrowed address stays" 0 "^handle: +c4:eth0$" ctl ipam show --ip 10.66.0.9
expect_rc "its block stays, affine to nobody" 0 "^10\.66\.0\.0/28 +- +1/16 +pool1$" ctl ipam show
expect_rc "ipam check clean after" 0 "2 allocations: 2 live.* 0 leaked.*0 inconsistent" ctl ipam check --grace 0
expect_rc "deleting it again: not found" 1 "Node node1 not found; nothing deleted" ctl delete node node1

# --- node2 (status long ago: no --force needed), by a manifest that also
# names its BGPPeer and one of its Endpoints: they go with the Node (the
# Endpoint before its address), once.
cat >"$T/n2.yaml" <<EOT
kind: Node
metadata: {name: node2}
---
kind: BGPPeer
metadata: {name: tor-node2}
spec: {node: node2, peerIP: 198.18.0.1, asNumber: 65001}
---
kind: Endpoint
metadata: {name: node2-c3-eth0}
spec: {node: node2, containerID: c3, ifname: eth0, ipNetworks: [10.66.0.16/32]}
EOT
expect_rc "delete -f with node2, its peer and an Endpoint" 0 \
	"^deleted Node node2 and its 2 Endpoints, 1 BGPPeer, 2 addresses, 1 block$" ctl delete -f "$T/n2.yaml"
cp "$T/out" "$T/n2.out"
check "the manifest's peer is reported deleted" grep -qx "deleted BGPPeer tor-node2" "$T/n2.out"
check "the manifest's Endpoint is reported deleted" grep -qx "deleted Endpoint node2-c3-eth0" "$T/n2.out"
check "the peer is gone" sh -c "! '$W' --store '$S' get bgppeers | grep -q tor-node2"
check "no Endpoint of node2 is left" sh -c "! '$W' --store '$S' get endpoints | grep -q node2-"
expect_rc "the empty orphan block is released" 0 "^released 1 empty block$" ctl ipam release --empty-blocks
expect_rc "nothing left in IPAM" 0 "0 allocations" ctl ipam check --grace 0
expect_rc "the global peer is still there" 0 "tor-all" ctl get bgppeers
finish
