#!/bin/bash
# CNI routed endpoints end to end: weftd in a node namespace, the weft
# plugin invoked as a runtime would. ADD (result shape, kernel state,
# Endpoint record), CHECK, two pods talk (ping, TCP), DEL removes the veth,
# route, allocation and record; DEL twice is fine.
# Usage: cni-routed.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh" "$@"

make_ns n1 && make_ns p1 && make_ns p2 && make_ns p3 || { fail "namespaces"; finish; }
apply_pool pool1 10.65.0.0/16 || { fail "apply pool"; finish; }
start_weftd n1 || { fail "weftd start"; finish; }
SOCK=$T/run-n1/weftd.sock
check "socket is mode 0600" sh -c "stat -c %a '$SOCK' | grep -qx 600"

cat >"$T/conf.json" <<EOT
{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "weft", "weftd_socket": "$SOCK",
 "mtu": 1400, "profiles": ["k8s_ns.default"], "labels": {"app": "web"},
 "ipam": {"type": "weft-ipam", "ipv4_pools": ["pool1"]}}
EOT
sed 's/"1.0.0"/"0.3.1"/' "$T/conf.json" >"$T/conf-031.json"

# --- ADD pod 1 --------------------------------------------------------------
cni "$WEFT" ADD n1 p1 cid-one eth0 "$T/conf.json" CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1"
cp "$T/cni.out" "$T/r1.json"
check "ADD pod1 exit 0" test "$CNI_RC" = 0
check "ADD pod1 result shape" jq -e --arg ns "/run/netns/${WC}p1" '
	.cniVersion == "1.0.0" and (.interfaces | length) == 2 and
	(.interfaces[0].name | test("^wft[0-9a-f]{11}$")) and .interfaces[0].mac == "ee:ee:ee:ee:ee:ee" and
	(.interfaces[0] | has("sandbox") | not) and
	.interfaces[1].name == "eth0" and .interfaces[1].sandbox == $ns and (.interfaces[1].mac | test("^([0-9a-f]{2}:){5}[0-9a-f]{2}$")) and
	(.ips | length) == 1 and (.ips[0].address | test("^10\\.65\\.[0-9]+\\.[0-9]+/32$")) and
	.ips[0].gateway == "169.254.1.1" and .ips[0].interface == 1 and (.ips[0] | has("version") | not) and
	.routes == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}] and .dns == {}' "$T/r1.json"
IP1=$(jq -r '.ips[0].address' "$T/r1.json" | cut -d/ -f1)
H1=$(jq -r '.interfaces[0].name' "$T/r1.json")
MAC1=$(jq -r '.interfaces[1].mac' "$T/r1.json")

check "host veth $H1 up in the node" sh -c "ip -n ${WC}n1 link show '$H1' | grep -q 'state UP'"
check "host veth mtu 1400" sh -c "ip -n ${WC}n1 link show '$H1' | grep -q 'mtu 1400'"
check "host route $IP1 scope link proto 81" sh -c "ip -n ${WC}n1 route show proto 81 | grep -qx '$IP1 dev $H1 scope link *'"
check "host: permanent neighbour $IP1 -> the pod's MAC" sh -c "ip -n ${WC}n1 neigh show dev $H1 | grep -q \"^$IP1 lladdr \$(ip -n ${WC}p1 link show eth0 | awk '/link.ether/ {print \$2}') PERMANENT\""
check "proxy_arp on the host veth" sh -c "ip netns exec ${WC}n1 cat /proc/sys/net/ipv4/conf/$H1/proxy_arp | grep -qx 1"
check "pod eth0 has $IP1/32" sh -c "ip -n ${WC}p1 -o addr show dev eth0 | grep -q 'inet $IP1/32'"
check "pod default route via 169.254.1.1" sh -c "ip -n ${WC}p1 route show default | grep -q 'via 169.254.1.1 dev eth0'"
check "pod neighbour 169.254.1.1 permanent" sh -c "ip -n ${WC}p1 neigh show 169.254.1.1 | grep -q 'ee:ee:ee:ee:ee:ee.*PERMANENT'"

ctl get endpoints -o json >"$T/eps.json"
check "Endpoint record" jq -e --arg ip "$IP1/32" --arg h "$H1" --arg mac "$MAC1" '
	[.items[] | select(.spec.containerID == "cid-one")] | length == 1 and (.[0] |
	.metadata.name == "n1.cid-one.eth0" and .spec.node == "n1" and .spec.ifname == "eth0" and
	.spec.hostIfname == $h and .spec.ipNetworks == [$ip] and .spec.mac == $mac and
	.spec.profiles == ["k8s_ns.default"] and .metadata.labels["weft.io/namespace"] == "default" and
	.metadata.labels["weft.io/pod"] == "web-1" and .metadata.labels.app == "web")' "$T/eps.json"

# --- CHECK --------------------------------------------------------------------
jq --slurpfile r "$T/r1.json" '. + {prevResult: $r[0]}' "$T/conf.json" >"$T/check1.json"
cni "$WEFT" CHECK n1 p1 cid-one eth0 "$T/check1.json"
check "CHECK pod1 ok (exit 0, no output)" sh -c "test $CNI_RC = 0 && test ! -s '$T/cni.out'"
cni "$WEFT" CHECK n1 p1 cid-nope eth0 "$T/check1.json"
check "CHECK unknown container: code 3" sh -c "test $CNI_RC != 0 && jq -e '.code == 3' '$T/cni.out' >/dev/null"

# --- CHECK of a pod with bandwidth limits (tbf, ifb): what ADD set up passes ------
jq '. + {ingress_bandwidth: "10M", egress_bandwidth: "20M"} | .ipam.routes = [{"dst": "10.20.0.0/16"}]' "$T/conf.json" >"$T/conf-bw.json"
cni "$WEFT" ADD n1 p3 cid-bw eth0 "$T/conf-bw.json"
cp "$T/cni.out" "$T/rbw.json"
check "ADD shaped pod exit 0" test "$CNI_RC" = 0
HBW=$(jq -r '.interfaces[0].name' "$T/rbw.json")
check "routed result lists the routes the pod has (ipam.routes are not installed)" jq -e '.routes == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]' "$T/rbw.json"
check "shaped pod: tbf on its host veth" sh -c "tc -n ${WC}n1 qdisc show dev '$HBW' | grep -q tbf"
jq --slurpfile r "$T/rbw.json" '. + {prevResult: $r[0]}' "$T/conf-bw.json" >"$T/checkbw.json"
cni "$WEFT" CHECK n1 p3 cid-bw eth0 "$T/checkbw.json"
check "CHECK shaped pod ok" sh -c "test $CNI_RC = 0 && test ! -s '$T/cni.out'"
cni "$WEFT" DEL n1 p3 cid-bw eth0 "$T/conf-bw.json"
check "DEL shaped pod" test "$CNI_RC" = 0

# --- dots in container ids and interface names: (x.y, z) and (x, y.z) are two
# attachments with two Endpoint records (the plain names would be the same) ---
cni "$WEFT" ADD n1 p3 x.y z "$T/conf.json"
check "ADD (x.y, z)" test "$CNI_RC" = 0
cni "$WEFT" ADD n1 p3 x y.z "$T/conf.json"
check "ADD (x, y.z)" test "$CNI_RC" = 0
check "two Endpoint records for them" sh -c "'$WEFTCTL' --store '$S' get endpoints -o json | jq -e '[.items[] | select(.spec.containerID == \"x.y\" or .spec.containerID == \"x\")] | length == 2' >/dev/null"
cni "$WEFT" DEL n1 p3 x.y z "$T/conf.json"
check "DEL (x.y, z)" test "$CNI_RC" = 0
check "(x, y.z) keeps its record and interface" sh -c "'$WEFTCTL' --store '$S' get endpoints -o json | jq -e '[.items[] | select(.spec.containerID == \"x\")] | length == 1' >/dev/null && ip -n ${WC}p3 link show y.z >/dev/null"
cni "$WEFT" DEL n1 p3 x y.z "$T/conf.json"
check "DEL (x, y.z)" test "$CNI_RC" = 0
# A record a weft before 2026-11-27 wrote under the plain name n1.x.y.z:
# CHECK and DEL find it there.
cni "$WEFT" ADD n1 p3 x.y z "$T/conf.json"
cp "$T/cni.out" "$T/rxy.json"
HN=$("$WEFTCTL" --store "$S" get endpoints -o json 2>/dev/null | jq -r '.items[] | select(.spec.containerID == "x.y") | .metadata.name')
"$WEFTCTL" --store "$S" get endpoints -o json | jq --arg n "$HN" '.items[] | select(.metadata.name == $n) | .metadata.name = "n1.x.y.z"' >"$T/legacy.json"
"$WEFTCTL" --store "$S" apply -f "$T/legacy.json" >/dev/null && "$WEFTCTL" --store "$S" delete endpoint "$HN" >/dev/null
check "the record moved to its old name" ctl get endpoint n1.x.y.z
jq --slurpfile r "$T/rxy.json" '. + {prevResult: $r[0]}' "$T/conf.json" >"$T/checkxy.json"
cni "$WEFT" CHECK n1 p3 x.y z "$T/checkxy.json"
check "CHECK finds the record under its old name" sh -c "test $CNI_RC = 0"
cni "$WEFT" DEL n1 p3 x.y z "$T/conf.json"
check "DEL deletes the record under its old name" sh -c "test $CNI_RC = 0 && ! '$WEFTCTL' --store '$S' get endpoint n1.x.y.z >/dev/null 2>&1"

# --- an IPv6-only pod (a static address from an IPv6 pool): its result has
# the IPv6 default route it got, no IPv4 one ---------------------------------
apply_pool pool6 fd00:65::/64 122 || fail "apply pool6"
jq '. + {runtimeConfig: {ips: ["fd00:65::5/128"]}}' "$T/conf.json" >"$T/conf-v6.json"
cni "$WEFT" ADD n1 p3 cid-v6 eth1 "$T/conf-v6.json"
cp "$T/cni.out" "$T/rv6.json"
check "ADD IPv6-only pod" test "$CNI_RC" = 0
check "IPv6-only result: ::/0 via fe80::ecee:eeff:feee:eeee only" jq -e '.routes == [{"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}] and .ips[0].address == "fd00:65::5/128"' "$T/rv6.json"
check "the pod has that route" sh -c "ip -n ${WC}p3 -6 route show default | grep -q 'via fe80::ecee:eeff:feee:eeee dev eth1'"
cni "$WEFT" DEL n1 p3 cid-v6 eth1 "$T/conf-v6.json"
check "DEL IPv6-only pod" test "$CNI_RC" = 0

# --- ADD pod 2 with a 0.3.1 config ---------------------------------------------
cni "$WEFT" ADD n1 p2 cid-two eth0 "$T/conf-031.json"
cp "$T/cni.out" "$T/r2.json"
check "ADD pod2 (0.3.1) exit 0" test "$CNI_RC" = 0
check "0.3.1 result has ips[].version" jq -e '.cniVersion == "0.3.1" and .ips[0].version == "4"' "$T/r2.json"
IP2=$(jq -r '.ips[0].address' "$T/r2.json" | cut -d/ -f1)
H2=$(jq -r '.interfaces[0].name' "$T/r2.json")
check "distinct addresses" test "$IP1" != "$IP2"
check "ipam show --ip names the holder" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IP2 | grep -q cid-two"

# --- the pods talk ---------------------------------------------------------------
check "ping pod1 -> pod2" ip netns exec "${WC}p1" ping -c1 -W2 "$IP2"
check "ping pod2 -> pod1" ip netns exec "${WC}p2" ping -c1 -W2 "$IP1"
ip netns exec "${WC}p2" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(1); s.settimeout(10)
c, _ = s.accept(); c.sendall(b"hello from pod2\n"); c.close()' "$IP2" &
srv=$!
sleep 0.3
check "TCP pod1 -> pod2:8080" sh -c "ip netns exec ${WC}p1 python3 -c '
import socket; s = socket.create_connection((\"$IP2\", 8080), timeout=5); print(s.recv(100).decode())' | grep -q 'hello from pod2'"
wait $srv 2>/dev/null

# --- CHECK notices a broken kernel state ------------------------------------------
jq --slurpfile r "$T/r2.json" '. + {prevResult: $r[0]}' "$T/conf-031.json" | sed 's/"0.3.1"/"0.4.0"/' >"$T/check2.json"
ip -n "${WC}n1" route del "$IP2" dev "$H2" proto 81 2>/dev/null
cni "$WEFT" CHECK n1 p2 cid-two eth0 "$T/check2.json"
check "CHECK with the host route gone fails" sh -c "test $CNI_RC != 0 && jq -e '.code >= 100 and (.msg | length > 0)' '$T/cni.out' >/dev/null"

# --- DEL ---------------------------------------------------------------------------
cni "$WEFT" DEL n1 p1 cid-one eth0 "$T/conf.json"
check "DEL pod1 exit 0, no output" sh -c "test $CNI_RC = 0 && test ! -s '$T/cni.out'"
check "host veth gone (within 3 s)" within 3 sh -c "! ip -n ${WC}n1 link show '$H1' 2>/dev/null"
check "host route gone" sh -c "! ip -n ${WC}n1 route show proto 81 | grep -q '^$IP1 '"
check "pod eth0 gone (within 3 s)" within 3 sh -c "! ip -n ${WC}p1 link show eth0 2>/dev/null"
check "address released" sh -c "'$WEFTCTL' --store '$S' ipam show --ip $IP1 | grep -qi 'not allocated'"
check "record gone" sh -c "! '$WEFTCTL' --store '$S' get endpoint n1.cid-one.eth0 >/dev/null 2>&1"
cni "$WEFT" DEL n1 p1 cid-one eth0 "$T/conf.json"
check "DEL twice: exit 0" test "$CNI_RC" = 0
cni "$WEFT" DEL n1 "" cid-one eth0 "$T/conf.json"
check "DEL with empty CNI_NETNS: exit 0" test "$CNI_RC" = 0
cni "$WEFT" DEL n1 p2 cid-two eth0 "$T/conf-031.json"
check "DEL pod2 exit 0" test "$CNI_RC" = 0
check "no weft links left (within 3 s)" within 3 no_weft_links n1
check "no weft routes left (within 3 s)" within 3 no_weft_routes n1
check "no endpoints left" sh -c "test \"\$('$WEFTCTL' --store '$S' get endpoints -o json | jq '.items | length')\" = 0"
check "ipam check clean" ctl ipam check

# --- the local API: a stuck client does not block weftd; bounds -----------------
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"{\"command\": ")
time.sleep(4)' "$SOCK" &
stuck=$!
sleep 0.3
sed 's/"1.0.0"/"1.1.0"/' "$T/conf.json" >"$T/conf-11.json"
cni "$WEFT" STATUS n1 "" "" "" "$T/conf-11.json"
check "a stuck client does not block other requests" test "$CNI_RC" = 0
wait $stuck
check "oversized request: connection closed, weftd still serving" sh -c "python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
try:
    s.sendall(b\"x\" * (3 << 20)); s.shutdown(socket.SHUT_WR)
except OSError:
    pass
# Closed with our bytes unread, the server side may reset instead of EOF.
try:
    assert s.recv(100) == b\"\"
except ConnectionResetError:
    pass' '$SOCK'"
check "malformed request: CNI error answer" sh -c "python3 -c '
import socket, sys, json
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b\"{nope\"); s.shutdown(socket.SHUT_WR)
a = json.loads(s.makefile().read()); assert a[\"exit\"] == 1 and json.loads(a[\"output\"])[\"code\"] == 100' '$SOCK'"

# --- STATUS, VERSION ----------------------------------------------------------------
cni "$WEFT" STATUS n1 "" "" "" "$T/conf-11.json"
check "STATUS ok" test "$CNI_RC" = 0
cni "$WEFT" VERSION n1 "" "" "" /dev/null
check "VERSION answered" jq -e '.supportedVersions | index("1.1.0")' "$T/cni.out"
check "weftd log has no errors" sh -c "! grep -qi 'error' '$T/weftd-n1.log'"
stop_weftd n1
finish
