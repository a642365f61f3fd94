#!/bin/bash
# BGP with real BIRD: two node namespaces on a bridge (in a fabric
# namespace) form a mesh session from configs rendered by bgpconf/ out of
# a file: store; each node's kernel gets the other's blocks (proto bird)
# and never its own; releasing a block, re-rendering and `configure` over
# the control socket withdraws the route on the peer without the session
# flapping. Root only; never touches the root namespace.
# Usage: bgp-mesh.sh WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
W=$1
D=$2
if ! command -v bird >/dev/null; then
	echo "skipped: bird is not installed (apt-get install bird2)"
	exit 77
fi

P="wb$$-"
# The run dir is outside $T so that a later run can find and stop the BIRDs
# of a killed run (by the pid files in it) before removing its namespaces.
R="/tmp/weft-bgp.wb$$"

# Leftovers of killed runs: their test pid is gone.
for d in /tmp/weft-bgp.wb*; do
	[ -d "$d" ] || continue
	pid=${d#/tmp/weft-bgp.wb}
	kill -0 "$pid" 2>/dev/null && continue
	for pf in "$d"/*/bird.pid; do
		[ -f "$pf" ] || continue
		bp=$(cat "$pf")
		# Only a BIRD started from that run dir.
		grep -qF "$d/" "/proc/$bp/cmdline" 2>/dev/null && kill "$bp"
	done
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^wb${pid}-"); do ip netns del "$ns"; done
	rm -rf "$d"
done

stop_birds() {
	local pf
	for pf in "$R"/*/bird.pid; do
		[ -f "$pf" ] && kill "$(cat "$pf")" 2>/dev/null
	done
	sleep 0.3
}
cleanup() {
	stop_birds
	local ns
	for ns in fab n1 n2; do ip netns del "$P$ns" 2>/dev/null; done
	rm -rf "$R"
}
at_exit cleanup

S="file:$R/store"
mkdir -p "$R/n1" "$R/n2"
ctl() { "$W" --store "$S" "$@"; }
drv() { "$D" "$@"; }

# --- topology: fabric bridge, two nodes ------------------------------------------
ip netns add "${P}fab" && ip netns add "${P}n1" && ip netns add "${P}n2" || { echo "cannot create namespaces"; exit 1; }
ip -n "${P}fab" link add br0 type bridge
ip -n "${P}fab" link set br0 up
for i in 1 2; do
	ip -n "${P}n$i" link add eth0 type veth peer name v$i netns "${P}fab"
	ip -n "${P}fab" link set v$i master br0 up
	ip -n "${P}n$i" link set lo up
	ip -n "${P}n$i" addr add 198.18.0.1$i/24 dev eth0
	ip -n "${P}n$i" link set eth0 up
done
check "underlay ping n1 -> n2" ip netns exec "${P}n1" ping -c1 -W2 198.18.0.12

# --- the store: pool, nodes, blocks -----------------------------------------------
cat >"$T/fabric.yaml" <<EOF
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 30}
---
kind: BGPConfig
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: true}
---
kind: Node
metadata: {name: node-1}
spec: {bgp: {ipv4Address: 198.18.0.11/24}}
---
kind: Node
metadata: {name: node-2}
spec: {bgp: {ipv4Address: 198.18.0.12/24}}
EOF
check "weftctl apply" ctl apply -f "$T/fabric.yaml"

block_of() { python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1]+"/30", strict=False))' "$1"; }
# node-1: fill its first block, then one handle alone in a second block.
ip1=$(drv claim "$S" node-1 h1) || fail "claim h1"
B1=$(block_of "$ip1")
k=2
while :; do
	ip=$(drv claim "$S" node-1 h$k) || { fail "claim h$k"; break; }
	if [ "$(block_of "$ip")" != "$B1" ]; then
		B1b=$(block_of "$ip")
		HX=h$k
		break
	fi
	k=$((k + 1))
	[ $k -gt 8 ] && { fail "no second block for node-1"; break; }
done
ip2=$(drv claim "$S" node-2 g1) || fail "claim g1"
B2=$(block_of "$ip2")
echo "     node-1 blocks $B1 $B1b ($HX alone in the second), node-2 block $B2"

# --- render, start BIRD --------------------------------------------------------------
check "render node-1" drv render "$S" node-1 "$R/n1/bird.conf"
check "render node-2" drv render "$S" node-2 "$R/n2/bird.conf"
check "render again: unchanged" sh -c "'$D' render '$S' node-1 '$R/n1/bird.conf' | grep -qx unchanged"
check "node-1 config has the session" grep -q "protocol bgp Mesh_198_18_0_12" "$R/n1/bird.conf"
for i in 1 2; do
	check "start BIRD on n$i" ip netns exec "${P}n$i" bird -c "$R/n$i/bird.conf" -s "$R/n$i/bird.ctl" -P "$R/n$i/bird.pid"
done
for i in 1 2; do
	for _ in $(seq 50); do [ -S "$R/n$i/bird.ctl" ] && break; sleep 0.1; done
done

since1=$(drv wait "$R/n1/bird.ctl" Mesh_198_18_0_12 30) && pass "n1: session Established" || fail "n1: session Established ($since1)"
since2=$(drv wait "$R/n2/bird.ctl" Mesh_198_18_0_11 30) && pass "n2: session Established" || fail "n2: session Established ($since2)"
check "n1 protocols: peer type and address" sh -c "'$D' protocols '$R/n1/bird.ctl' | grep -q '^Mesh_198_18_0_12|BGP|up|.*|Established|mesh|198.18.0.12\$'"

# wait_route NS PREFIX present|absent: poll the kernel table (BIRD exports
# within a second or two).
wait_route() {
	local ns=$1 pfx=$2 want=$3 i
	for i in $(seq 100); do
		if ip -n "$ns" route show proto bird | grep -q "^$pfx "; then
			[ "$want" = present ] && return 0
		else
			[ "$want" = absent ] && return 0
		fi
		sleep 0.1
	done
	ip -n "$ns" route show proto bird
	return 1
}
check "n2 kernel: node-1 block $B1 via 198.18.0.11" sh -c "$(declare -f wait_route); wait_route ${P}n2 $B1 present && ip -n ${P}n2 route show proto bird | grep -q '^$B1 via 198.18.0.11 dev eth0'"
check "n2 kernel: node-1 block $B1b" sh -c "$(declare -f wait_route); wait_route ${P}n2 $B1b present"
check "n1 kernel: node-2 block $B2 via 198.18.0.12" sh -c "$(declare -f wait_route); wait_route ${P}n1 $B2 present && ip -n ${P}n1 route show proto bird | grep -q '^$B2 via 198.18.0.12 dev eth0'"
check "n1 kernel: not its own blocks" sh -c "! ip -n ${P}n1 route show proto bird | grep -qE '^($B1|$B1b) '"
check "n2 kernel: only the 2 node-1 blocks from BIRD" sh -c "test \$(ip -n ${P}n2 route show proto bird | wc -l) = 2"

# --- release a block, re-render, configure ----------------------------------------
check "release $HX: its block goes" sh -c "'$D' release '$S' node-1 $HX | grep -qx 1"
check "re-render node-1: changed" sh -c "'$D' render '$S' node-1 '$R/n1/bird.conf' | grep -qx changed"
check "re-render node-2: unchanged" sh -c "'$D' render '$S' node-2 '$R/n2/bird.conf' | grep -qx unchanged"
check "node-1 config lost the block" sh -c "! grep -q 'route $B1b blackhole' '$R/n1/bird.conf'"
# A flap would show as a later since: let a second pass first (since has
# a one-second resolution).
sleep 1.1
check "configure n1 over the socket" drv configure "$R/n1/bird.ctl"
check "n2 kernel: $B1b withdrawn" sh -c "$(declare -f wait_route); wait_route ${P}n2 $B1b absent"
check "n2 kernel: $B1 still there" sh -c "ip -n ${P}n2 route show proto bird | grep -q '^$B1 '"
# No flap: both ends keep the session's since.
s1=$(drv wait "$R/n1/bird.ctl" Mesh_198_18_0_12 5)
s2=$(drv wait "$R/n2/bird.ctl" Mesh_198_18_0_11 5)
[ -n "$since1" ] && [ "$s1" = "$since1" ] && pass "n1 session did not flap ($s1)" || fail "n1 session flapped ($since1 -> $s1)"
[ -n "$since2" ] && [ "$s2" = "$since2" ] && pass "n2 session did not flap ($s2)" || fail "n2 session flapped ($since2 -> $s2)"
# A configure with nothing changed is harmless too.
check "configure n2 (unchanged config)" drv configure "$R/n2/bird.ctl"
s2b=$(drv wait "$R/n2/bird.ctl" Mesh_198_18_0_11 5)
[ "$s2b" = "$since2" ] && pass "n2 session did not flap on a no-op configure" || fail "n2 flapped on a no-op configure"

# A new block: claimed, rendered, configured, announced.
ip3=$(drv claim "$S" node-2 g2) && ip4=$(drv claim "$S" node-2 g3) && ip5=$(drv claim "$S" node-2 g4) && ip6=$(drv claim "$S" node-2 g5)
B2b=$(block_of "$ip6")
if [ "$B2b" != "$B2" ]; then
	check "render node-2 with a new block" sh -c "'$D' render '$S' node-2 '$R/n2/bird.conf' | grep -qx changed"
	check "configure n2" drv configure "$R/n2/bird.ctl"
	check "n1 kernel: new node-2 block $B2b" sh -c "$(declare -f wait_route); wait_route ${P}n1 $B2b present"
fi

stop_birds
finish
