#!/bin/bash
# weftd down: ADD fails with code 11 naming the socket, bad input still
# gives its proper error, DEL succeeds and removes the kernel objects
# locally; when weftd comes back its start-up reconciliation releases the
# addresses and records of what was deleted meanwhile and sweeps weft-owned
# kernel objects without an Endpoint, keeping the live ones.
# Usage: cni-weftd-down.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh" "$@"

make_ns n1 && make_ns p1 && make_ns p2 && make_ns p3 || { fail "namespaces"; finish; }
apply_pool pool1 10.65.0.0/16 || { fail "apply pool"; finish; }
start_weftd n1 || { fail "weftd start"; finish; }
SOCK=$T/run-n1/weftd.sock
cat >"$T/conf.json" <<EOT
{"cniVersion": "1.1.0", "name": "k8s-pod-network", "type": "weft", "weftd_socket": "$SOCK"}
EOT

cni "$WEFT" ADD n1 p1 cid-one eth0 "$T/conf.json"
check "ADD pod1" test "$CNI_RC" = 0
IP1=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
H1=$(jq -r '.interfaces[0].name' "$T/cni.out")
cni "$WEFT" ADD n1 p2 cid-two eth0 "$T/conf.json"
check "ADD pod2" test "$CNI_RC" = 0
IP2=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
H2=$(jq -r '.interfaces[0].name' "$T/cni.out")

stop_weftd n1
rm -f "$SOCK"

cni "$WEFT" ADD n1 p3 cid-three eth0 "$T/conf.json"
check "weftd down: ADD code 11 naming the socket" sh -c "test $CNI_RC != 0 && jq -e --arg s '$SOCK' '.code == 11 and (.msg | contains(\$s))' '$T/cni.out' >/dev/null"
check "weftd down: no link for pod3" sh -c "! ip -n ${WC}p3 link show eth0 2>/dev/null"
printf '{"cniVersion": "1.1.0", "name": ' >"$T/bad.json"
cni "$WEFT" ADD n1 p3 cid-three eth0 "$T/bad.json"
check "weftd down: malformed JSON still code 6" sh -c "test $CNI_RC != 0 && jq -e '.code == 6' '$T/cni.out' >/dev/null"
cni "$WEFT" ADD n1 p3 "" eth0 "$T/conf.json"
check "weftd down: missing CNI_CONTAINERID still code 4" sh -c "test $CNI_RC != 0 && jq -e '.code == 4' '$T/cni.out' >/dev/null"
cni "$WEFT" STATUS n1 "" "" "" "$T/conf.json"
check "weftd down: STATUS code 50" sh -c "test $CNI_RC != 0 && jq -e '.code == 50' '$T/cni.out' >/dev/null"
jq --arg s "$SOCK" '. + {ipam: {type: "weft-ipam"}}' "$T/conf.json" >"$T/ipam.json"
cni "$WEFT_IPAM" ADD n1 p3 cid-three eth0 "$T/ipam.json"
check "weftd down: weft-ipam ADD code 11" sh -c "test $CNI_RC != 0 && jq -e '.code == 11' '$T/cni.out' >/dev/null"

cni "$WEFT" DEL n1 p1 cid-one eth0 "$T/conf.json"
check "weftd down: DEL succeeds" sh -c "test $CNI_RC = 0 && test ! -s '$T/cni.out'"
check "weftd down: DEL removed the host veth" sh -c "! ip -n ${WC}n1 link show '$H1' 2>/dev/null"
check "weftd down: DEL removed the host route" sh -c "! ip -n ${WC}n1 route show proto 81 | grep -q '^$IP1 '"
check "weftd down: DEL removed pod eth0" sh -c "! ip -n ${WC}p1 link show eth0 2>/dev/null"
check "weftd down: record still there" ctl get endpoint n1.cid-one.eth0
check "weftd down: address still held" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IP1 | grep -q cid-one"
cni "$WEFT" DEL n1 p1 cid-one eth0 "$T/conf.json"
check "weftd down: DEL twice succeeds" test "$CNI_RC" = 0

# An orphan weft-owned veth (no Endpoint) with a weft route: swept at start.
ip -n "${WC}n1" link add wft0123456789a type veth peer name wcorphan0
ip -n "${WC}n1" link set wft0123456789a up
ip -n "${WC}n1" route add 10.65.200.1/32 dev wft0123456789a proto 81 scope link

export WEFT_RECONCILE_MS=500
start_weftd n1 || { fail "weftd restart"; finish; }
check "restart: record of the deleted pod reclaimed" sh -c "! '$WEFTCTL' --store '$S' get endpoint n1.cid-one.eth0 >/dev/null 2>&1"
check "restart: its address released" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IP1 | grep -qi 'not allocated'"
check "restart: reclaim logged" grep -q "n1.cid-one.eth0.*released" "$T/weftd-n1.log"
check "restart: orphan veth swept" sh -c "! ip -n ${WC}n1 link show wft0123456789a 2>/dev/null"
check "restart: orphan route swept" sh -c "! ip -n ${WC}n1 route show proto 81 | grep -q 10.65.200.1"
check "restart: live pod2 kept (veth, route, record, address)" sh -c "
	ip -n ${WC}n1 link show '$H2' >/dev/null && ip -n ${WC}n1 route show proto 81 | grep -q '^$IP2 ' &&
	'$WEFTCTL' --store '$S' get endpoint n1.cid-two.eth0 >/dev/null && '$WEFTCTL' --store '$S' ipam show --ip $IP2 | grep -q cid-two"
check "restart: pod2's eth0 untouched" sh -c "ip -n ${WC}p2 -o addr show dev eth0 | grep -q 'inet $IP2/32'"
cni "$WEFT" STATUS n1 "" "" "" "$T/conf.json"
check "STATUS ok again" test "$CNI_RC" = 0

# GC (CNI 1.1): pod2 is valid, pod3 is not: pod3's endpoint, veth and address go.
cni "$WEFT" ADD n1 p3 cid-three eth0 "$T/conf.json"
check "ADD pod3" test "$CNI_RC" = 0
IP3=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
H3=$(jq -r '.interfaces[0].name' "$T/cni.out")
# A leaked allocation without an endpoint (a weft-ipam user that never DELeted).
jq '. + {ipam: {type: "weft-ipam"}}' "$T/conf.json" >"$T/ipam.json"
cni "$WEFT_IPAM" ADD n1 p3 cid-leak eth0 "$T/ipam.json"
IPL=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
check "weft-ipam ADD (no endpoint)" sh -c "test $CNI_RC = 0 && test -n '$IPL'"
# Another network's weft-ipam address (a Multus secondary network with its
# own main plugin): this network's GC must not take it.
jq '. + {name: "lan2", ipam: {type: "weft-ipam"}}' "$T/conf.json" >"$T/lan2.json"
cni "$WEFT_IPAM" ADD n1 p2 cid-two net1 "$T/lan2.json"
IPB=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
check "weft-ipam ADD on network lan2" sh -c "test $CNI_RC = 0 && test -n '$IPB'"
check "ipam check: lan2's weft-ipam address is ipam-only, not a leak" sh -c "'$WEFTCTL' --store '$S' ipam check --grace 0 | grep -q 'ipam-only.*$IPB'"
jq '. + {"cni.dev/valid-attachments": [{"containerID": "cid-two", "ifname": "eth0"}]}' "$T/conf.json" >"$T/gc.json"
cni "$WEFT" GC n1 "" "" "" "$T/gc.json"
check "GC exit 0" sh -c "test $CNI_RC = 0 && test ! -s '$T/cni.out'"
check "GC kept network lan2's address" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IPB | grep -q cid-two"
# libcni writes a nil list (nothing valid) as null.
jq '. + {name: "lan3", "cni.dev/valid-attachments": null}' "$T/conf.json" >"$T/gc-null.json"
cni "$WEFT" GC n1 "" "" "" "$T/gc-null.json"
check "GC with valid-attachments null: exit 0" sh -c "test $CNI_RC = 0 && test ! -s '$T/cni.out'"
check "GC of lan3 kept lan2's address" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IPB | grep -q cid-two"
check "GC removed pod3 (veth, record, address)" sh -c "
	! ip -n ${WC}n1 link show '$H3' 2>/dev/null && ! '$WEFTCTL' --store '$S' get endpoint n1.cid-three.eth0 >/dev/null 2>&1 &&
	'$WEFTCTL' --store '$S' ipam show --ip $IP3 | grep -qi 'not allocated'"
check "GC released the leaked allocation" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IPL | grep -qi 'not allocated'"
check "GC kept pod2" sh -c "ip -n ${WC}n1 link show '$H2' >/dev/null && '$WEFTCTL' --store '$S' ipam show --ip $IP2 | grep -q cid-two"

# An attachment whose veth goes while weftd runs (a DEL that found weftd
# busy cleans up locally): the periodic reconciliation takes the rest.
cni "$WEFT" ADD n1 p3 cid-four eth0 "$T/conf.json"
check "ADD pod4" test "$CNI_RC" = 0
IP4=$(jq -r '.ips[0].address' "$T/cni.out" | cut -d/ -f1)
H4=$(jq -r '.interfaces[0].name' "$T/cni.out")
ip -n "${WC}n1" link del "$H4"
check "periodic reconcile: record of the gone veth reclaimed (within 3 s)" within 3 sh -c "! '$WEFTCTL' --store '$S' get endpoint n1.cid-four.eth0 >/dev/null 2>&1"
check "periodic reconcile: its address released" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IP4 | grep -qi 'not allocated'"
check "periodic reconcile: pod2 kept" sh -c "'$WEFTCTL' --store '$S' get endpoint n1.cid-two.eth0 >/dev/null && ip -n ${WC}n1 link show '$H2' >/dev/null"

cni "$WEFT" DEL n1 p2 cid-two eth0 "$T/conf.json"
check "DEL pod2" test "$CNI_RC" = 0
cni "$WEFT_IPAM" DEL n1 p2 cid-two net1 "$T/lan2.json"
check "weft-ipam DEL on lan2" test "$CNI_RC" = 0
check "nothing left: links (within 3 s)" within 3 no_weft_links n1
check "nothing left: routes" no_weft_routes n1
check "nothing left: addresses" test "$(ipam_used)" = 0
check "ipam check clean" ctl ipam check
stop_weftd n1
finish
