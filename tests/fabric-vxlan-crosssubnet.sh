#!/bin/bash
# VXLAN CrossSubnet and natOutgoing end to end: weftd + BIRD per node, pods
# through the weft CNI plugin. Two underlay subnets joined by a router
# namespace: node1 and node2 on 198.18.10.0/24, node3 on 198.18.20.0/24;
# an "outside host" 203.0.113.10 behind the router, outside every pool.
# With pool 10.66.0.0/16 `vxlanMode: CrossSubnet, natOutgoing: true`:
#   - every node has a tunnel address from the pool (its Node's
#     ipv4VXLANTunnelAddr, on its weft.vxlan);
#   - node1 reaches node3's block through weft.vxlan (route via node3's
#     tunnel address, onlink; the VTEP's tx counter rises with a ping),
#     and node2's block over plain BGP (proto bird via 198.18.10.12, the
#     VTEP untouched);
#   - TCP pod1 -> pod3 keeps the pod's source address;
#   - node1's host -> pod3 leaves with node1's tunnel address, which node3
#     (strict rp_filter) routes back through weft.vxlan;
#   - pod1 -> outside host: the host sees node1's underlay address (a TCP
#     server there prints its peer), pod3 -> outside: node3's;
#   - natOutgoing cleared: the NAT table goes on every node.
# Usage: fabric-vxlan-crosssubnet.sh WEFTD WEFT WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
WEFTD=${1:-}
WEFT=${2:-}
WEFTCTL=${3:-}
for b in "$WEFTD" "$WEFT" "$WEFTCTL"; do
	[ -x "$b" ] || { echo "usage: $0 WEFTD WEFT WEFTCTL ($b is not executable)"; exit 2; }
done
for c in bird nft python3 jq; do
	command -v "$c" >/dev/null || { echo "skipped: $c is not installed"; exit 77; }
done

P="wx$$-"
# Outside $T: a later run finds a killed run's processes by this name.
R="/tmp/weft-fabric-x.wx$$"
S="file:$R/store"
CNI_DIR=$(dirname "$WEFT")
declare -A wpid

# Leftovers of killed runs: their test pid is gone. Processes in their
# namespaces go by pid, then the namespaces.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wx[0-9]+-' || true); do
	pid=${ns#wx}
	pid=${pid%%-*}
	kill -0 "$pid" 2>/dev/null && continue
	for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	ip netns del "$ns" 2>/dev/null
done
for d in /tmp/weft-fabric-x.wx*; do
	[ -d "$d" ] || continue
	pid=${d#/tmp/weft-fabric-x.wx}
	kill -0 "$pid" 2>/dev/null || rm -rf "$d"
done

NAMESPACES="rt ext n1 n2 n3 p1 p2 p3"
cleanup() {
	local i ns p
	for i in 1 2 3; do stop_weftd "$i"; done
	for ns in $NAMESPACES; do
		for p in $(ip netns pids "$P$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	sleep 0.2
	for ns in $NAMESPACES; do ip netns del "$P$ns" 2>/dev/null; done
	rm -rf "$R"
}
at_exit cleanup

node_ip() { case $1 in 1) echo 198.18.10.11 ;; 2) echo 198.18.10.12 ;; 3) echo 198.18.20.13 ;; esac; }
node_net() { case $1 in 3) echo B ;; *) echo A ;; esac; }
ctl() { "$WEFTCTL" --store "$S" "$@"; }
nsx() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }


start_weftd() {
	local i=$1 dir=$R/n$1 k
	mkdir -p "$dir"
	ip netns exec "${P}n$i" env WEFT_FABRIC_RESYNC_MS=2000 "$WEFTD" --node "node$i" --ip "$(node_ip "$i")/24" \
		--store "$S" --run-dir "$dir" --http off </dev/null >>"$dir/weftd.log" 2>&1 &
	wpid[$i]=$!
	for k in $(seq 100); do
		[ -S "$dir/weftd.sock" ] && return 0
		kill -0 "${wpid[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/     | /' "$dir/weftd.log"
	return 1
}

stop_weftd() {
	local pid=${wpid[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	wpid[$1]=
	if grep -qE 'Sanitizer|runtime error:' "$R/n$1/weftd.log" 2>/dev/null; then
		fail "weftd node$1: sanitizer report"
		grep -E -A20 'Sanitizer|runtime error:' "$R/n$1/weftd.log" | sed 's/^/     | /'
	fi
}

# --- topology ---------------------------------------------------------------------
mkdir -p "$R"
for ns in $NAMESPACES; do
	ip netns add "$P$ns" || { echo "cannot create namespaces"; exit 1; }
	ip -n "$P$ns" link set lo up
done
# The router: two bridges (the two racks) and a leg to the outside host.
nsx rt sysctl -qw net.ipv4.ip_forward=1
ip -n "${P}rt" link add brA type bridge
ip -n "${P}rt" addr add 198.18.10.1/24 dev brA
ip -n "${P}rt" link add brB type bridge
ip -n "${P}rt" addr add 198.18.20.1/24 dev brB
ip -n "${P}rt" link set brA up
ip -n "${P}rt" link set brB up
ip -n "${P}rt" link add out0 type veth peer name eth0 netns "${P}ext"
ip -n "${P}rt" addr add 203.0.113.1/24 dev out0
ip -n "${P}rt" link set out0 up
ip -n "${P}ext" addr add 203.0.113.10/24 dev eth0
ip -n "${P}ext" link set eth0 up
ip -n "${P}ext" route add default via 203.0.113.1
for i in 1 2 3; do
	br=br$(node_net "$i")
	ip -n "${P}rt" link add "n$i" type veth peer name eth0 netns "${P}n$i"
	ip -n "${P}rt" link set "n$i" master "$br" up
	ip -n "${P}n$i" addr add "$(node_ip "$i")/24" dev eth0
	ip -n "${P}n$i" link set eth0 up
	ip -n "${P}n$i" route add default via "$( [ "$(node_net "$i")" = A ] && echo 198.18.10.1 || echo 198.18.20.1)"
done
check "underlay: node1 -> node3 through the router" nsx n1 ping -c1 -W2 198.18.20.13
check "underlay: node1 -> outside host" nsx n1 ping -c1 -W2 203.0.113.10

# --- store, weftd + BIRD ------------------------------------------------------------
cat >"$T/fabric.yaml" <<EOF
kind: BGPConfig
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
---
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.66.0.0/16, blockSize: 26, natOutgoing: true, vxlanMode: CrossSubnet}
EOF
check "apply pool (CrossSubnet, natOutgoing) and BGPConfig" ctl apply -f "$T/fabric.yaml"
for i in 1 2 3; do
	check "weftd node$i (with BIRD) starts" start_weftd "$i"
done

# --- pods through the CNI plugin ------------------------------------------------------
declare -A pip
for i in 1 2 3; do
	printf '{"cniVersion": "1.0.0", "name": "fab", "type": "weft", "mtu": 1400, "weftd_socket": "%s"}\n' \
		"$R/n$i/weftd.sock" >"$R/n$i/cni.conf"
	nsx "n$i" env CNI_COMMAND=ADD CNI_CONTAINERID="cid-p$i" CNI_NETNS="/run/netns/${P}p$i" CNI_IFNAME=eth0 \
		CNI_PATH="$CNI_DIR" "$WEFT" <"$R/n$i/cni.conf" >"$T/add$i.json" 2>"$T/add$i.err"
	pip[$i]=$(jq -r '.ips[0].address' "$T/add$i.json" 2>/dev/null | cut -d/ -f1)
	case "${pip[$i]}" in
	10.66.*) pass "pod p$i on node$i: ${pip[$i]}" ;;
	*) fail "pod p$i on node$i"; cat "$T/add$i.json" "$T/add$i.err" | sed 's/^/     | /' ;;
	esac
done
block_of() { python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1]+"/26", strict=False))' "$1"; }
B1=$(block_of "${pip[1]}")
B2=$(block_of "${pip[2]}")
B3=$(block_of "${pip[3]}")
echo "     blocks: node1 $B1, node2 $B2, node3 $B3"

# --- tunnel addresses ---------------------------------------------------------------------
declare -A tun
for i in 1 2 3; do
	tun[$i]=$(ip -n "${P}n$i" -4 -o addr show dev weft.vxlan 2>/dev/null | awk '{print $4}' | cut -d/ -f1)
	case "${tun[$i]}" in
	10.66.*) pass "node$i: tunnel address ${tun[$i]} on weft.vxlan" ;;
	*) fail "node$i: no tunnel address on weft.vxlan ('${tun[$i]}')" ;;
	esac
	check "node$i: its Node lists ipv4VXLANTunnelAddr ${tun[$i]}" \
		sh -c "\"$WEFTCTL\" --store '$S' get node node$i -o json | jq -e '.spec.ipv4VXLANTunnelAddr == \"${tun[$i]}\"' >/dev/null"
done

# --- routes -----------------------------------------------------------------------------
vx_route() { ip -n "${P}n$1" route show dev weft.vxlan proto 81 | grep -q "^$2 via $3 onlink"; }
no_vx_route() { ! ip -n "${P}n$1" route show dev weft.vxlan 2>/dev/null | grep -q "^$2 "; }
bird_route() { ip -n "${P}n$1" route show proto bird | grep -q "^$2 via $3 dev eth0"; }
blackhole() { ip -n "${P}n$1" route show type blackhole proto 81 | grep -q "^blackhole $2 "; }
for i in 1 2 3; do
	B=B$i
	check "node$i: blackhole for its block ${!B}" within 10 blackhole "$i" "${!B}"
done
check "node1: node3's block $B3 via weft.vxlan (other subnet)" within 15 vx_route 1 "$B3" "${tun[3]}"
check "node2: node3's block $B3 via weft.vxlan" within 15 vx_route 2 "$B3" "${tun[3]}"
check "node3: node1's block $B1 via weft.vxlan" within 15 vx_route 3 "$B1" "${tun[1]}"
check "node3: node2's block $B2 via weft.vxlan" within 15 vx_route 3 "$B2" "${tun[2]}"
check "node1: node2's block $B2 via BGP (same subnet)" within 30 bird_route 1 "$B2" 198.18.10.12
check "node2: node1's block $B1 via BGP" within 30 bird_route 2 "$B1" 198.18.10.11
check "node1: no VXLAN route for node2's block" no_vx_route 1 "$B2"
check "node1: no VTEP entry for node2" sh -c "! ip -n ${P}n1 neigh show dev weft.vxlan | grep -q 198.18.10.12"
check "node1: the kernel picks weft.vxlan for pod3" sh -c "ip -n ${P}n1 route get ${pip[3]} | grep -q 'dev weft.vxlan'"
check "node1: the kernel picks eth0 for pod2" sh -c "ip -n ${P}n1 route get ${pip[2]} | grep -q 'via 198.18.10.12 dev eth0'"
echo "     node1's routes to $B3 (VXLAN metric 0 wins; a BGP route, if BIRD resolved one, is the standby):"
ip -n "${P}n1" route show "$B3" | sed 's/^/     | /'

# --- traffic ---------------------------------------------------------------------------------
tx() { ip -n "${P}n$1" -j -s link show dev weft.vxlan | jq '.[0].stats64.tx.packets'; }
t0=$(tx 1)
check "ping pod1 -> pod3 (across subnets)" within 10 nsx p1 ping -c1 -W2 "${pip[3]}"
t1=$(tx 1)
[ "$t1" -gt "$t0" ] && pass "node1's VTEP carried it (tx $t0 -> $t1)" || fail "node1's VTEP tx did not rise ($t0 -> $t1)"
check "ping pod1 -> pod2 (same subnet)" within 10 nsx p1 ping -c1 -W2 "${pip[2]}"
t0=$(tx 1)
check "ping pod1 -> pod2 again" nsx p1 ping -c3 -i0.2 -W2 "${pip[2]}"
t1=$(tx 1)
[ "$t1" = "$t0" ] && pass "node1's VTEP untouched within the subnet (tx $t0)" || fail "node1's VTEP tx rose within the subnet ($t0 -> $t1)"

# peer_seen SERVER_NS LISTEN_IP CLIENT_NS: a TCP server in SERVER_NS prints
# the address of the client in CLIENT_NS.
peer_seen() {
	local srv=$1 lip=$2 cli=$3 port=$((20000 + RANDOM % 10000)) spid got
	nsx "$srv" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(8)
c, a = s.accept(); print(a[0]); c.sendall(b"hi\n"); c.close()' "$lip" "$port" >"$T/peer" 2>&1 &
	spid=$!
	sleep 0.3
	nsx "$cli" python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); c.recv(10)' "$lip" "$port" >/dev/null 2>&1
	wait "$spid"
	got=$(cat "$T/peer")
	echo "$got"
}
got=$(peer_seen p3 "${pip[3]}" p1)
[ "$got" = "${pip[1]}" ] && pass "TCP pod1 -> pod3: pod3 sees pod1's address $got" || fail "TCP pod1 -> pod3: pod3 saw '$got'"
ip netns exec "${P}n3" sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.weft/vxlan.rp_filter=1
got=$(peer_seen p3 "${pip[3]}" n1)
[ "$got" = "${tun[1]}" ] && pass "TCP node1's host -> pod3 (node3 strict rp_filter): pod3 sees node1's tunnel address $got" ||
	fail "TCP node1's host -> pod3: pod3 saw '$got', not node1's tunnel address ${tun[1]}"
ip netns exec "${P}n3" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.weft/vxlan.rp_filter=0

# --- natOutgoing --------------------------------------------------------------------------------
check "node1: NAT table with the pool" sh -c "ip netns exec ${P}n1 nft list table ip weft-nat | grep -q 10.66.0.0/16"
got=$(peer_seen ext 203.0.113.10 p1)
[ "$got" = 198.18.10.11 ] && pass "pod1 -> outside host: seen as node1's 198.18.10.11" || fail "pod1 -> outside host: seen as '$got'"
got=$(peer_seen ext 203.0.113.10 p3)
[ "$got" = 198.18.20.13 ] && pass "pod3 -> outside host: seen as node3's 198.18.20.13" || fail "pod3 -> outside host: seen as '$got'"

sed -i 's/natOutgoing: true/natOutgoing: false/' "$T/fabric.yaml"
check "natOutgoing cleared" ctl apply -f "$T/fabric.yaml"
no_nat() { ! ip netns exec "${P}n$1" nft list table ip weft-nat >/dev/null 2>&1; }
for i in 1 2 3; do
	check "node$i: NAT table gone" within 10 no_nat "$i"
done
check "pod1 -> outside host fails without NAT (no route back to the pool)" \
	sh -c "! ip netns exec ${P}p1 ping -c1 -W1 203.0.113.10 >/dev/null"

# --- drift is repaired by the periodic resync (2 s here) ---------------------------------------
ip -n "${P}n1" route del "$B3" dev weft.vxlan
check "node1: deleted VXLAN route repaired" within 10 vx_route 1 "$B3" "${tun[3]}"
check "node1: weftd logged the drift" within 5 grep -q "drift" "$R/n1/weftd.log"

for i in 1 2 3; do stop_weftd "$i"; done
check "routes stay after weftd stops" vx_route 1 "$B3" "${tun[3]}"
finish
