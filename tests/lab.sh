#!/bin/bash
# The lab: up (weftd + BIRD per node, two pods per node through the CNI
# plugin), pods reach pods across nodes through BGP-learned block routes, a
# node decommissioned (weftctl delete node), up again over a killed run's
# leftovers, down removes everything (namespaces,
# processes); the root namespace is left exactly as it was.
# Usage: lab.sh DEPLOY_LAB BUILD_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
LAB=$1
export WEFT_BUILD=$2
P="wl$$-"
P=${P:0:8}
at_exit "'$LAB' down --prefix $P >/dev/null 2>&1"

root_state() { ip -o link show | awk -F': ' '{print $2}' | sort; ip -o addr show | awk '{print $2, $4}' | sort; ip route show; }
root_state >"$T/root.before"

ST=/run/weft-lab/${P%-}
check "lab up (3 nodes)" sh -c "'$LAB' up --prefix '$P' --nodes 3 >'$T/up.out' 2>&1"
sed 's/^/     | /' "$T/up.out"
check "matrix: every pod reaches every other" sh -c "grep -A7 'pod-to-pod connectivity' '$T/up.out' | grep -q '^n3p2' && ! grep -A7 'pod-to-pod connectivity' '$T/up.out' | grep -q FAIL"
check "weftd and BIRD running on every node" sh -c "for i in 1 2 3; do kill -0 \$(cat $ST/node\$i/weftd.pid) && kill -0 \$(cat $ST/node\$i/bird.pid) || exit 1; done"
check "ACL: web -> db:5432 allowed, other pod -> db:5432 and web -> db:22 denied" sh -c "grep -A4 'ACL checks' '$T/up.out' | grep -c 'expected' | grep -qx 3 && ! grep -A4 'ACL checks' '$T/up.out' | grep 'expected' | grep -qvE '(allowed +\(expected allowed|denied +\(expected denied)'"
check "ACL: policy trace explains both" sh -c "grep -q '^  ALLOW tcp .* port 5432' '$T/up.out' && grep -q 'denied by profile DB inbound: no rule matched' '$T/up.out'"
check "6 pod namespaces" sh -c "test \"\$(ip netns list | grep -cE '^${P}node[0-9]+-pod[12]( |\$)')\" = 6"
# Each node's kernel: the other nodes' blocks from BIRD, via their
# underlay address; no /32 of another node's pod.
block_of() { python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1]+"/26", strict=False))' "$1"; }
for i in 1 2 3; do
	for j in 1 2 3; do
		[ $i = $j ] && continue
		b=$(block_of "$(cat "$ST/node$j/pod1.ip")")
		check "node$i: node$j's block $b via 198.18.0.1$j (proto bird)" sh -c "ip -n ${P}node$i route show proto bird | grep -q '^$b via 198.18.0.1$j dev eth0'"
		for m in 1 2; do
			ip=$(cat "$ST/node$j/pod$m.ip")
			check "node$i: no /32 route for node$j's pod $ip" sh -c "! ip -n ${P}node$i route show | grep -qE '^$ip( |/32)'"
		done
	done
	check "node$i: only 2 routes from BIRD" sh -c "test \$(ip -n ${P}node$i route show proto bird | wc -l) = 2"
	check "node$i: node status shows 2 Established mesh sessions" sh -c "ip netns exec ${P}node$i '$WEFT_BUILD/ctl/weftctl' node status --bird-socket $ST/node$i/bird.ctl | grep -cE ' mesh .* Established\$' | grep -qx 2"
done
check "node status without BIRD: exit 1, clear message" sh -c "'$WEFT_BUILD/ctl/weftctl' node status --bird-socket $T/nothing.ctl 2>&1; test \$? = 1" 
check "TCP pod to pod across nodes" sh -c "ip netns exec ${P}node2-pod1 timeout 5 nc -l 7777 >'$T/nc.out' & sleep 0.5; echo hello | ip netns exec ${P}node1-pod1 timeout 5 nc -N $(cat $ST/node2/pod1.ip 2>/dev/null) 7777; wait; grep -qx hello '$T/nc.out'"
cat "$ST"/node*/weftd.pid "$ST"/node*/bird.pid >"$T/pids1" 2>/dev/null
check "fabric and 3 node namespaces" sh -c "test \"\$(ip netns list | grep -cE '^${P}(fabric|node[0-9]+)( |\$)')\" = 4"
check "node2 has eth0 198.18.0.12" sh -c "ip -n ${P}node2 -o addr show dev eth0 | grep -q 198.18.0.12/24"
check "nodes registered in the store" sh -c "'$WEFT_BUILD/ctl/weftctl' --store file:/run/weft-lab/${P%-}/store get nodes | grep -cE '^node[123] ' | grep -q 3"
check "pool in the store" sh -c "'$WEFT_BUILD/ctl/weftctl' --store file:/run/weft-lab/${P%-}/store get pools | grep -q 10.65.0.0/16"
check "node1 reaches node3 across the fabric" ip netns exec "${P}node1" ping -c1 -W2 198.18.0.13

# Decommissioning node3 (its two pods and the ACL demo's web pod): stop its
# weftd (it marks its Node stopped), delete the Node; its block leaves the
# other nodes' routing tables and IPAM.
ctl3() { "$WEFT_BUILD/ctl/weftctl" --store "file:/run/weft-lab/${P%-}/store" "$@"; }
b3=$(block_of "$(cat "$ST/node3/pod1.ip")")
w3=$(cat "$ST/node3/weftd.pid")
kill "$w3"
check "node3's weftd stops" within 10 sh -c "! kill -0 $w3 2>/dev/null"
expect_rc "weftctl delete node node3" 0 "^deleted Node node3 and its 3 Endpoints, 0 BGPPeers, 3 addresses, 1 block$" \
	ctl3 delete node node3
for i in 1 2; do
	check "node$i: node3's block $b3 withdrawn" within 10 sh -c "! ip -n ${P}node$i route show | grep -q '^$b3 '"
done
p3=$(cat "$ST/node3/pod1.ip")
expect_rc "IPAM: node3's pod address released" 0 "^${p3//./\\.}: not allocated$" ctl3 ipam show --ip "$p3"
check "IPAM: node3's block released" sh -c "! '$WEFT_BUILD/ctl/weftctl' --store 'file:/run/weft-lab/${P%-}/store' ipam show | grep -q '^$b3 '"
expect_rc "ipam check clean" 0 " 0 leaked, 0 unchecked, 0 ipam-only; 0 inconsistent" ctl3 ipam check --grace 0
check "node1 still reaches node2's pod" ip netns exec "${P}node1-pod1" ping -c1 -W2 "$(cat "$ST/node2/pod1.ip")"

# A killed run leaves everything behind; up must still work over it.
check "lab up again over leftovers (2 nodes)" "$LAB" up --prefix "$P" --nodes 2
check "now fabric + 2 nodes" sh -c "test \"\$(ip netns list | grep -cE '^${P}(fabric|node[0-9]+)( |\$)')\" = 3"
check "the first run's weftd and BIRD processes are gone" sh -c "for p in \$(cat '$T/pids1'); do ! kill -0 \$p 2>/dev/null || exit 1; done"
cat "$ST"/node*/weftd.pid "$ST"/node*/bird.pid >"$T/pids2" 2>/dev/null

check "lab down" "$LAB" down --prefix "$P"
check "no namespaces left" sh -c "! ip netns list | grep -qE '^${P}'"
check "no state dir left" test ! -e "/run/weft-lab/${P%-}"
check "no lab processes left" sh -c "test -s '$T/pids2' && for p in \$(cat '$T/pids2'); do ! kill -0 \$p 2>/dev/null || exit 1; done"
root_state >"$T/root.after"
check "root namespace unchanged" diff -u "$T/root.before" "$T/root.after"

check "bad --nodes rejected" sh -c "! '$LAB' up --prefix $P --nodes 0 2>/dev/null"
check "bad --prefix rejected" sh -c "! '$LAB' up --prefix 'a b' 2>/dev/null"
finish
