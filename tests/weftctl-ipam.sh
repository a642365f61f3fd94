#!/bin/bash
# weftctl ipam show/check/release on the embedded store: utilisation,
# holders, leak detection (with the grace period), inconsistent records,
# release by address and by handle, exit codes, bad arguments. No root.
# Usage: weftctl-ipam.sh WEFTCTL TEST-IPAM-CLI-SETUP
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
W=$1
SETUP=$2
S="file:$T/store"
ctl() { "$W" --store "$S" "$@"; }
setup() { "$SETUP" "$S" "$@"; }

# expect_usage NAME CMD...: exit 2 with one line on stderr.
expect_usage() {
	local name=$1 rc; shift
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" = 2 ] && [ "$(wc -l <"$T/err")" = 1 ] && [ ! -s "$T/out" ]; then
		pass "$name"
	else
		fail "$name (rc=$rc)"
		sed 's/^/     | /' "$T/err" "$T/out"
	fi
}

# --- help and usage errors ----------------------------------------------------
expect_rc "ipam --help" 0 "weftctl ipam show" ctl ipam --help
expect_rc "show --help" 0 "Usage: weftctl ipam show" ctl ipam show --help
expect_rc "check --help" 0 "--grace SECONDS" ctl ipam check --help
expect_rc "release --help" 0 "--handle HANDLE" ctl ipam release --help
expect_rc "main help mentions ipam" 0 "ipam show" ctl --help
expect_usage "ipam without command" ctl ipam
expect_usage "ipam unknown command" ctl ipam frobnicate
expect_usage "show bad --ip" ctl ipam show --ip 10.1.2
expect_usage "show bad -o" ctl ipam show -o yaml
expect_usage "show extra argument" ctl ipam show pool1
expect_usage "show unknown option" ctl ipam show --bogus
expect_usage "check bad --grace" ctl ipam check --grace -1
expect_usage "check non-numeric --grace" ctl ipam check --grace soon
expect_usage "release without --ip/--handle" ctl ipam release
expect_usage "release with both" ctl ipam release --ip 10.65.0.1 --handle c1:eth0
expect_usage "release bad --ip" ctl ipam release --ip 10.65.0.300
expect_usage "release empty --handle" ctl ipam release --handle ""
expect_rc "unusable store: exit 1" 1 "^weftctl: cannot open store" "$W" --store "nosuch:x" ipam show

# --- an empty store ------------------------------------------------------------
expect_rc "show on an empty store" 0 "no IP pools" ctl ipam show
expect_rc "check on an empty store is clean" 0 "0 allocations: .*0 leaked" ctl ipam check

# --- allocations ---------------------------------------------------------------
cat >"$T/pools.yaml" <<EOT
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/24, blockSize: 28}
EOT
check "apply pool" ctl apply -f "$T/pools.yaml"
check "alloc c1 (node1)" sh -c "'$SETUP' '$S' auto c1 eth0 node1 default web-1 | grep -qx 10.65.0.0"
check "alloc c2 (node1)" sh -c "'$SETUP' '$S' auto c2 eth0 node1 | grep -qx 10.65.0.1"
check "alloc c3 (node2)" sh -c "'$SETUP' '$S' auto c3 eth0 node2 | grep -qx 10.65.0.16"
check "alloc c4 (node2)" sh -c "'$SETUP' '$S' auto c4 eth0 node2 | grep -qx 10.65.0.17"
check "static address, non-CNI handle" setup static 10.65.0.200 tunnel-node1 node1
check "range address" sh -c "'$SETUP' '$S' range macnet 192.168.91.100-192.168.91.110/24 c1 net1 | grep -qx 192.168.91.100"
cat >"$T/eps.yaml" <<EOT
kind: Endpoint
metadata: {name: node1-c1-eth0}
spec: {node: node1, containerID: c1, ifname: eth0, ipNetworks: [10.65.0.0/32]}
---
kind: Endpoint
metadata: {name: node1-c1-net1}
spec: {node: node1, containerID: c1, ifname: net1, ipNetworks: [192.168.91.100/24]}
---
kind: Endpoint
metadata: {name: node2-c4-eth0}
spec: {node: node2, containerID: c4, ifname: eth0, ipNetworks: [10.65.0.99/32]}
EOT
check "apply endpoints" ctl apply -f "$T/eps.yaml"

# --- show ----------------------------------------------------------------------
expect_rc "show: pool line" 0 "^pool1 +10\.65\.0\.0/24 +256 +5 +251 +3 +false$" ctl ipam show
expect_rc "show: block of node1" 0 "^10\.65\.0\.0/28 +node1 +2/16 +pool1$" ctl ipam show
expect_rc "show: block of node2" 0 "^10\.65\.0\.16/28 +node2 +2/16 +pool1$" ctl ipam show
expect_rc "show: static block" 0 "^10\.65\.0\.192/28 +node1 +1/16 +pool1$" ctl ipam show
expect_rc "show: range" 0 "^macnet +192\.168\.91\.0/24 +1/256 " ctl ipam show
expect_rc "show -o json: pool" 0 '"free":[[:space:]]*251' ctl ipam show -o json
expect_rc "show -o json: range" 0 '"network":[[:space:]]*"macnet"' ctl ipam show -o json
expect_rc "show --ip: holder" 0 "^handle: +c1:eth0$" ctl ipam show --ip 10.65.0.0
expect_rc "show --ip: pod" 0 "^pod: +default/web-1$" ctl ipam show --ip 10.65.0.0
expect_rc "show --ip: node" 0 "^node: +node2$" ctl ipam show --ip 10.65.0.16
expect_rc "show --ip: range holder" 0 "^ifname: +net1$" ctl ipam show --ip 192.168.91.100
expect_rc "show --ip: not allocated (exit 0)" 0 "^10\.65\.0\.99: not allocated$" ctl ipam show --ip 10.65.0.99
expect_rc "show --ip -o json" 0 '"containerID":[[:space:]]*"c1"' ctl ipam show --ip 10.65.0.0 -o json
expect_rc "show --ip -o json: not allocated" 0 '"allocated":[[:space:]]*false' ctl ipam show --ip 10.9.9.9 -o json

# --- check ---------------------------------------------------------------------
expect_rc "check: c2 leaked (no endpoint)" 1 "^leaked +10\.65\.0\.1 handle c2:eth0 node node1: no Endpoint" \
	ctl ipam check --grace 0
expect_rc "check: c4 leaked (endpoint lacks the address)" 1 \
	"^leaked +10\.65\.0\.17 handle c4:eth0 node node2: Endpoint node2-c4-eth0 .*does not list" ctl ipam check --grace 0
expect_rc "check: live allocations are not reported" 1 "6 allocations: 2 live, 0 pending, 3 leaked, 1 unchecked" \
	ctl ipam check --grace 0
expect_rc "check: non-CNI handle is unchecked" 1 "^unchecked +10\.65\.0\.200 handle tunnel-node1" ctl ipam check --grace 0
expect_rc "check: one summary line on stderr" 1 "^weftctl: ipam check: 3 leaked allocations, 0 inconsistent" \
	ctl ipam check --grace 0

# An ADD in flight: c2's Endpoint appears and c3 is released while check
# watches; both are pending, not leaked.
ctl ipam check --grace 8 >"$T/chk" 2>&1 &
chk=$!
at_exit "kill $chk 2>/dev/null"
sleep 1.5
cat >"$T/ep2.yaml" <<EOT
kind: Endpoint
metadata: {name: node1-c2-eth0}
spec: {node: node1, containerID: c2, ifname: eth0, ipNetworks: [10.65.0.1/32]}
EOT
ctl apply -f "$T/ep2.yaml" >/dev/null
ctl ipam release --handle c3:eth0 >/dev/null
wait $chk
echo "rc=$?" >>"$T/chk"
check "grace: endpoint written meanwhile -> pending" grep -qE "^pending +10\.65\.0\.1 .*gained its Endpoint" "$T/chk"
check "grace: released meanwhile -> pending" grep -qE "^pending +10\.65\.0\.16 .*released" "$T/chk"
check "grace: c4 still leaked, exit 1" sh -c "grep -qE '^leaked +10\.65\.0\.17 ' '$T/chk' && grep -qx rc=1 '$T/chk'"
check "grace: no timestamp noted" grep -q "carry no timestamp" "$T/chk"

# An inconsistent record: a handle listing an address its block does not
# give it.
check "break a handle record" setup put /weft/v1/ipam/handles/ghost:eth0 \
	'{"handle":"ghost:eth0","allocations":[{"ip":"10.65.0.5","key":"/weft/v1/ipam/blocks/10.65.0.0-28"}]}'
expect_rc "check: inconsistent record reported" 1 "^inconsistent +/weft/v1/ipam/handles/ghost:eth0: 10\.65\.0\.5" \
	ctl ipam check --grace 0

# --- release -------------------------------------------------------------------
expect_rc "release --ip" 0 "^released 10\.65\.0\.17 \(handle c4:eth0, node node2\)$" ctl ipam release --ip 10.65.0.17
expect_rc "release --ip again: idempotent" 0 "^10\.65\.0\.17: not allocated, nothing released$" \
	ctl ipam release --ip 10.65.0.17
expect_rc "release --handle" 0 "^released 1 address of handle tunnel-node1: 10\.65\.0\.200$" \
	ctl ipam release --handle tunnel-node1
expect_rc "release --handle again: idempotent" 0 "^handle tunnel-node1 holds no address" \
	ctl ipam release --handle tunnel-node1
expect_rc "release --handle drops the stale handle record" 0 "nothing released" ctl ipam release --handle ghost:eth0
expect_rc "show --ip after release" 0 "^10\.65\.0\.17: not allocated$" ctl ipam show --ip 10.65.0.17
expect_rc "check is clean now" 0 "^3 allocations: 3 live, 0 pending, 0 leaked, 0 unchecked, 0 ipam-only; 0 inconsistent" \
	ctl ipam check
expect_rc "show after release" 0 "^pool1 +10\.65\.0\.0/24 +256 +2 +254 +3 +false$" ctl ipam show
expect_rc "release --empty-blocks with --ip: usage" 2 "exactly one of" ctl ipam release --empty-blocks --ip 10.65.0.1
expect_rc "release --node without --empty-blocks: usage" 2 "goes with --empty-blocks" ctl ipam release --node node1
expect_rc "release --empty-blocks --node node9: none" 0 "^released 0 empty blocks of node node9$" \
	ctl ipam release --empty-blocks --node node9
expect_rc "release --empty-blocks keeps blocks with addresses" 0 "^released [0-9]+ empty blocks?$" \
	ctl ipam release --empty-blocks
expect_rc "check still clean after releasing empty blocks" 0 "0 leaked, 0 unchecked, 0 ipam-only; 0 inconsistent" ctl ipam check

# A corrupt block record: show and check go on, check reports it.
check "corrupt a block record" setup put /weft/v1/ipam/blocks/10.65.0.224-28 \
	'{"cidr":"10.65.0.224/28","affinity":null,"allocations":[{"ip":"10.99.0.1","handle":"x"}]}'
expect_rc "show with a corrupt block" 0 "^pool1 +10\.65\.0\.0/24 " ctl ipam show
expect_rc "check reports the corrupt block" 1 \
	"^inconsistent +corrupt record: /weft/v1/ipam/blocks/10\.65\.0\.224-28: allocations\[0\]\.ip" ctl ipam check --grace 0
expect_rc "allocation goes on beside a corrupt block" 0 "^10\.65\.0\.[0-9]+$" setup auto c9 eth0 node3
check "repair the block record" setup put /weft/v1/ipam/blocks/10.65.0.224-28 \
	'{"cidr":"10.65.0.224/28","affinity":null,"allocations":[]}'
check "release c9" ctl ipam release --handle c9:eth0
expect_rc "the repaired empty block is released" 0 "^released [1-9][0-9]* empty blocks?$" ctl ipam release --empty-blocks
expect_rc "check clean again" 0 "0 leaked, 0 unchecked, 0 ipam-only; 0 inconsistent" ctl ipam check

# weft-ipam allocations (another main plugin, no Endpoint record) are
# listed as ipam-only, not as leaks, and do not fail the check.
check "weft-ipam allocation (no Endpoint)" sh -c "'$SETUP' '$S' ipam-only c10 eth0 node1 | grep -qx '10\.65\.0\.[0-9]*'"
expect_rc "check: weft-ipam allocation is ipam-only, exit 0" 0 \
	"^ipam-only +10\.65\.0\.[0-9]+ handle c10:eth0 node node1: weft-ipam allocation, no Endpoint record" \
	ctl ipam check --grace 0
expect_rc "check: ipam-only counted apart" 0 "0 leaked, 0 unchecked, 1 ipam-only; 0 inconsistent" ctl ipam check --grace 0
expect_rc "release the weft-ipam allocation" 0 "^released 1 address of handle c10:eth0" ctl ipam release --handle c10:eth0

# A node's VXLAN tunnel address (weftd's fabric allocates it under
# vxlan-tunnel-addr-NODE): live while the Node exists, leaked after.
cat >"$T/node.yaml" <<EOT
kind: Node
metadata: {name: tnode}
spec: {bgp: {ipv4Address: 198.18.0.7/24}, ipv4VXLANTunnelAddr: 10.65.0.210}
EOT
check "a Node with a tunnel address" ctl apply -f "$T/node.yaml"
check "its tunnel address" setup static 10.65.0.210 vxlan-tunnel-addr-tnode tnode
expect_rc "check: the tunnel address of an existing Node is live" 0 "0 leaked, 0 unchecked, 0 ipam-only; 0 inconsistent" \
	ctl ipam check --grace 0
expect_rc "delete the Node: its tunnel address goes with it" 0 \
	"^deleted Node tnode and its 0 Endpoints, 0 BGPPeers, 1 address, 1 block$" ctl delete node tnode
expect_rc "check: clean after the Node went" 0 "0 leaked, 0 unchecked, 0 ipam-only; 0 inconsistent" \
	ctl ipam check --grace 0
check "a tunnel address of a node that has no Node" setup static 10.65.0.211 vxlan-tunnel-addr-ghost ghost
expect_rc "check: a tunnel address without its Node is leaked" 1 \
	"^leaked +10\.65\.0\.211 handle vxlan-tunnel-addr-ghost node ghost: VXLAN tunnel address of node ghost, which has no Node" \
	ctl ipam check --grace 0
expect_rc "release it" 0 "^released 1 address of handle vxlan-tunnel-addr-ghost" ctl ipam release --handle vxlan-tunnel-addr-ghost

finish
