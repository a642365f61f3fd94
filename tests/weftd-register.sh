#!/bin/bash
# weftd registering its Node: the underlay address by --ip-autodetect
# (interface=GLOB, cidr=) and the route-reflector cluster id by
# --rr-cluster-id, kept across restarts, removed with "". One node
# namespace; BIRD is not needed (--bird /bin/true keeps weftd quiet).
#   weftd-register.sh WEFTD WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
WEFTD=$1
WEFTCTL=$2
NS="${WT}reg"
S="file:$T/store"
ip netns add "$NS"
at_exit "ip netns del '$NS' 2>/dev/null"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth0p
ip -n "$NS" link add ens5 type veth peer name ens5p
ip -n "$NS" addr add 198.18.0.7/24 dev eth0
ip -n "$NS" addr add 10.99.1.2/24 dev ens5
ip -n "$NS" link set eth0 up
ip -n "$NS" link set ens5 up

# run_weftd ARGS...: weftd until its Node is written, then SIGTERM; its log
# in $T/weftd.log, exit code in $T/rc.
run_weftd() {
	ip netns exec "$NS" "$WEFTD" --node n1 --store "$S" --run-dir "$T/run" --bird /bin/true --http off \
		"$@" >"$T/weftd.log" 2>&1 &
	local pid=$! i
	for i in $(seq 100); do
		grep -q "Node resource" "$T/weftd.log" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	kill $pid 2>/dev/null
	wait $pid
	echo $? >"$T/rc"
}
node_field() { "$WEFTCTL" --store "$S" get node n1 -o json | jq -r "$1"; }

run_weftd --ip-autodetect 'interface=ens*'
check "interface=ens*: 10.99.1.2/24" test "$(node_field .spec.bgp.ipv4Address)" = 10.99.1.2/24
check "the log says why" grep -q 'first interface matching "ens\*"' "$T/weftd.log"
run_weftd --ip-autodetect cidr=198.18.0.0/16
check "cidr=198.18.0.0/16: 198.18.0.7/24" test "$(node_field .spec.bgp.ipv4Address)" = 198.18.0.7/24
run_weftd --ip-autodetect interface=wlan9
check "no matching interface: exit 1" test "$(cat "$T/rc")" = 1
check "  ... with a message naming the method" grep -q "no IPv4 underlay address found by interface=wlan9" "$T/weftd.log"
run_weftd --ip-autodetect bogus
check "unknown method: exit 1, named" sh -c "test \$(cat '$T/rc') = 1 && grep -q 'is not first-found, interface=GLOB or cidr' '$T/weftd.log'"
check "bad --rr-cluster-id: usage error" sh -c "ip netns exec '$NS' '$WEFTD' --rr-cluster-id nope 2>&1 | grep -q 'is not an IPv4 address'"
check "--rr-cluster-id 0.0.0.0: usage error" sh -c "ip netns exec '$NS' '$WEFTD' --rr-cluster-id 0.0.0.0 2>&1 | grep -q '0.0.0.0 is not a cluster id'"

run_weftd --ip 198.18.0.7/24 --rr-cluster-id 1.0.0.1
check "--rr-cluster-id: Node is a reflector" test "$(node_field .spec.bgp.routeReflectorClusterID)" = 1.0.0.1
run_weftd --ip 198.18.0.7/24
check "restart without the flag keeps it" test "$(node_field .spec.bgp.routeReflectorClusterID)" = 1.0.0.1
run_weftd --ip 198.18.0.7/24 --rr-cluster-id ''
check "--rr-cluster-id '' removes it" test "$(node_field .spec.bgp.routeReflectorClusterID)" = null
finish
