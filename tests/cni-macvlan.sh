#!/bin/bash
# macvlan secondary attachments through the weft plugin: a bridge in a
# fabric namespace is the L2 segment, each node's veth into it is the
# master. Pods on two nodes (each with its own weftd, one shared store)
# reach each other and an external host on the segment; range IPAM hands
# out the lowest free address first, honours excludes and the gateway,
# reuses a released address, and a full range is error 101.
# Usage: cni-macvlan.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh" "$@"

for n in fabric ext n1 n2 p1 p2 p3 p4 p5; do make_ns $n || { fail "namespace $n"; finish; }; done
F=${WC}fabric
ip -n "$F" link add br0 type bridge && ip -n "$F" link set br0 up
for n in n1 n2 ext; do
	ip -n "$F" link add "v-$n" type veth peer name eth1 netns "${WC}$n"
	ip -n "$F" link set "v-$n" master br0 up
	ip -n "${WC}$n" link set eth1 up
done
ip -n "${WC}ext" addr add 192.168.91.1/24 dev eth1
start_weftd n1 && start_weftd n2 || { fail "weftd start"; finish; }

mkconf() { # mkconf NODE FILE NAME RANGE
	cat >"$2" <<EOT
{"cniVersion": "1.0.0", "name": "$3", "type": "weft", "weftd_socket": "$T/run-$1/weftd.sock",
 "mode": "macvlan", "master": "eth1", "macvlan_mode": "bridge",
 "ipam": {"type": "weft-ipam", "range": "$4", "exclude": ["192.168.91.102"], "gateway": "192.168.91.1",
          "routes": [{"dst": "10.20.0.0/16"}]}}
EOT
}
mkconf n1 "$T/lan-n1.json" lan 192.168.91.100-192.168.91.110/24
mkconf n2 "$T/lan-n2.json" lan 192.168.91.100-192.168.91.110/24

cni "$WEFT" ADD n1 p1 cid-1 net1 "$T/lan-n1.json"
check "ADD pod1 on node1" test "$CNI_RC" = 0
check "pod1 result: lowest address .100/24, gateway, one interface in the sandbox" jq -e --arg ns "/run/netns/${WC}p1" '
	(.interfaces | length) == 1 and .interfaces[0].name == "net1" and .interfaces[0].sandbox == $ns and
	.ips[0].address == "192.168.91.100/24" and .ips[0].gateway == "192.168.91.1" and .ips[0].interface == 0 and
	.routes == [{"dst": "10.20.0.0/16"}]' "$T/cni.out"
cni "$WEFT" ADD n2 p2 cid-2 net1 "$T/lan-n2.json"
check "ADD pod2 on node2 gets .101" sh -c "test $CNI_RC = 0 && jq -e '.ips[0].address == \"192.168.91.101/24\"' '$T/cni.out' >/dev/null"
cni "$WEFT" ADD n1 p3 cid-3 net1 "$T/lan-n1.json"
check "ADD pod3 skips the excluded .102: .103" sh -c "test $CNI_RC = 0 && jq -e '.ips[0].address == \"192.168.91.103/24\"' '$T/cni.out' >/dev/null"
check "pod1 net1 is a macvlan on eth1 (bridge mode)" sh -c "ip -n ${WC}p1 -d link show net1 | grep -q 'macvlan mode bridge'"
check "pod1 route 10.20.0.0/16 via the gateway" sh -c "ip -n ${WC}p1 route show 10.20.0.0/16 | grep -q 'via 192.168.91.1'"
check "Endpoint record with network lan" sh -c "'$WEFTCTL' --store '$S' get endpoint n1.cid-1.net1 -o json | jq -e '.spec.network == \"lan\" and .spec.ipNetworks == [\"192.168.91.100/32\"]' >/dev/null"

check "pod1 (node1) -> pod2 (node2)" ip netns exec "${WC}p1" ping -c1 -W2 192.168.91.101
check "pod2 (node2) -> pod3 (node1)" ip netns exec "${WC}p2" ping -c1 -W2 192.168.91.103
check "pod1 -> external host" ip netns exec "${WC}p1" ping -c1 -W2 192.168.91.1
check "external host -> pod2" ip netns exec "${WC}ext" ping -c1 -W2 192.168.91.101

cni "$WEFT" ADD n1 p4 cid-tmp net1 "$T/lan-n1.json"
cni "$WEFT" DEL n1 p4 cid-tmp net1 "$T/lan-n1.json"
cni "$WEFT" DEL n1 p1 cid-1 net1 "$T/lan-n1.json"
check "DEL pod1" sh -c "test $CNI_RC = 0 && ! ip -n ${WC}p1 link show net1 2>/dev/null"
check "DEL pod1: record gone" sh -c "! '$WEFTCTL' --store '$S' get endpoint n1.cid-1.net1 >/dev/null 2>&1"
cni "$WEFT" ADD n2 p4 cid-4 net1 "$T/lan-n2.json"
check "released .100 is reused (lowest free first)" sh -c "test $CNI_RC = 0 && jq -e '.ips[0].address == \"192.168.91.100/24\"' '$T/cni.out' >/dev/null"

# DEL whose CNI_NETNS is no namespace any more (a file left behind): the
# macvlan cannot be in it; the address and the record still go.
cni "$WEFT" ADD n1 p5 cid-5 net1 "$T/lan-n1.json"
IP5=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
check "ADD pod5" test "$CNI_RC" = 0
: >"$T/not-a-netns"
ip netns exec "${WC}n1" env CNI_COMMAND=DEL CNI_CONTAINERID=cid-5 CNI_NETNS="$T/not-a-netns" CNI_IFNAME=net1 \
	CNI_PATH="$CNI_DIR" "$WEFT" <"$T/lan-n1.json" >"$T/cni.out" 2>"$T/cni.err"
check "DEL with CNI_NETNS not a namespace: exit 0" test $? = 0
check "its address released" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IP5 | grep -qi 'not allocated'"
check "its record gone" sh -c "! '$WEFTCTL' --store '$S' get endpoint n1.cid-5.net1 >/dev/null 2>&1"
ip -n "${WC}p5" link del net1 2>/dev/null

# More routes than a macvlan attachment installs: code 7 naming ipam.routes, nothing made.
jq '.ipam.routes = [range(17) | {dst: "10.\(.).0.0/16"}]' "$T/lan-n1.json" >"$T/many-routes.json"
before=$(store_rev)
cni "$WEFT" ADD n1 p5 cid-6 net1 "$T/many-routes.json"
check "17 routes: code 7 naming ipam.routes" sh -c "test $CNI_RC != 0 && jq -e '.code == 7 and (.msg | contains(\"ipam.routes\"))' '$T/cni.out' >/dev/null"
check "17 routes: nothing written to the store" test "$(store_rev)" = "$before"

# A second attachment in pod3 that lists a route pod3 has already (net1's):
# refused, as the reference macvlan plugin refuses it, and rolled back;
# net1 keeps its route (a replace used to move it to the newcomer).
before=$(ipam_used)
cni "$WEFT" ADD n1 p3 cid-dup net3 "$T/lan-n1.json"
check "a route pod3 has already: refused, naming it" sh -c "test $CNI_RC != 0 && jq -e '.msg | contains(\"10.20.0.0/16\")' '$T/cni.out' >/dev/null"
after=$(ipam_used)
check "... no net3 left, its address released, no record" sh -c "! ip -n ${WC}p3 link show net3 2>/dev/null && test '$after' = '$before' && ! '$WEFTCTL' --store '$S' get endpoint n1.cid-dup.net3 >/dev/null 2>&1"
check "... pod3's route still via net1" sh -c "ip -n ${WC}p3 route show 10.20.0.0/16 | grep -q 'dev net1'"

# A tiny range on another network: two addresses, the third ADD is 101.
mkconf n1 "$T/tiny.json" tiny 192.168.91.200-192.168.91.201/24
jq 'del(.ipam.routes)' "$T/tiny.json" >"$T/tiny2.json" && mv "$T/tiny2.json" "$T/tiny.json"
cni "$WEFT" ADD n1 p1 cid-t1 net2 "$T/tiny.json"; r1=$CNI_RC
cni "$WEFT" ADD n1 p3 cid-t2 net2 "$T/tiny.json"; r2=$CNI_RC
before=$(store_rev)
cni "$WEFT" ADD n1 p2 cid-t3 net2 "$T/tiny.json"
check "full range: code 101, naming the range, nothing changed" sh -c "test $r1 = 0 && test $r2 = 0 && test $CNI_RC != 0 &&
	jq -e '.code == 101 and (.msg | test(\"range\"))' '$T/cni.out' >/dev/null && test $before = \$('$WEFTCTL' --store '$S' store check | sed -E 's/.*revision ([0-9]+).*/\\1/') &&
	! ip -n ${WC}p2 link show net2 2>/dev/null"

# Missing master interface on the node: code 7 naming master, no allocation left.
sed 's/"master": "eth1"/"master": "eth9"/' "$T/lan-n1.json" >"$T/nomaster.json"
used=$(ipam_used)
cni "$WEFT" ADD n1 p1 cid-x net1 "$T/nomaster.json"
check "master missing on the node: error naming master, rolled back" sh -c "test $CNI_RC != 0 &&
	jq -e '.msg | test(\"master|eth9\")' '$T/cni.out' >/dev/null && test \$(ctl() { '$WEFTCTL' --store '$S' \"\$@\"; }; ctl ipam show -o json | jq '([.pools[].used] + [.ranges[].used]) | add // 0') = $used"

for a in "n1 p1 cid-t1 net2 tiny" "n1 p3 cid-t2 net2 tiny" "n2 p2 cid-2 net1 lan-n2" "n1 p3 cid-3 net1 lan-n1" "n2 p4 cid-4 net1 lan-n2"; do
	set -- $a
	cni "$WEFT" DEL "$1" "$2" "$3" "$4" "$T/$5.json"
	[ "$CNI_RC" = 0 ] || fail "DEL $3"
done
check "all released" test "$(ipam_used)" = 0
check "no records left" test "$(ctl get endpoints -o json | jq '.items | length')" = 0
check "no macvlan left in pods" sh -c "for p in p1 p2 p3 p4; do ip -n ${WC}\$p -o link show type macvlan | grep -q . && exit 1; done; exit 0"
stop_weftd n1
stop_weftd n2
finish
