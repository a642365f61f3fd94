#!/bin/bash
# Scale and leaks: 200 ADDs, 8 in parallel, give 200 distinct addresses;
# then ADD/DEL cycles, 4 in parallel (CYCLES, default 1000); afterwards no
# leaked address, link, route, tc object or record, and `weftctl ipam
# check` is clean.
# Usage: cni-stress.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh" "$@"
PODS=${PODS:-200}
CYCLES=${CYCLES:-1000}

make_ns n1 || { fail "namespaces"; finish; }
apply_pool pool1 10.65.0.0/16 || { fail "apply pool"; finish; }
start_weftd n1 || { fail "weftd start"; finish; }
SOCK=$T/run-n1/weftd.sock
cat >"$T/conf.json" <<EOT
{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "weft", "weftd_socket": "$SOCK",
 "ingress_bandwidth": "10M", "egress_bandwidth": "10M"}
EOT
export WC T WEFT SOCK CNI_DIR

# one CMD I: run the plugin for pod I; the result goes to $T/res/I.
one() {
	ip netns exec "${WC}n1" env CNI_COMMAND="$1" CNI_CONTAINERID="c$2" CNI_NETNS="/run/netns/${WC}s$3" \
		CNI_IFNAME=eth0 CNI_PATH="$CNI_DIR" "$WEFT" <"$T/conf.json" >"$T/res/$2" 2>&1
}
export -f one
mkdir -p "$T/res"

start=$(date +%s%N)
for i in $(seq 0 $((PODS - 1))); do ip netns add "${WC}s$i"; done
at_exit "for _p in \$(seq 0 $((PODS - 1))); do ip netns del '${WC}s'\$_p 2>/dev/null; done"
seq 0 $((PODS - 1)) | xargs -P 8 -I{} bash -c 'one ADD {} {} || echo "ADD {} failed: $(cat $T/res/{})"' >"$T/add-failures"
t=$((($(date +%s%N) - start) / 1000000))
check "$PODS ADDs, 8 in parallel, all succeed (${t} ms)" test ! -s "$T/add-failures"
cat "$T"/res/* | jq -r '.ips[0].address' | sort >"$T/addrs"
check "$PODS distinct addresses" sh -c "test \$(sort -u '$T/addrs' | grep -c /32) = $PODS"
check "$PODS host veths" test "$(weft_links n1 | grep -c '^wft')" = "$PODS"
check "$PODS endpoint records" test "$(ctl get endpoints -o json | jq '.items | length')" = "$PODS"
check "ingress shaping on a host veth" sh -c "ip netns exec ${WC}n1 tc qdisc show dev \$(cat '$T/res/7' | jq -r '.interfaces[0].name') | grep -q tbf"
seq 0 $((PODS - 1)) | xargs -P 8 -I{} bash -c 'one DEL {} {} || echo "DEL {} failed: $(cat $T/res/{})"' >"$T/del-failures"
check "$PODS DELs succeed" test ! -s "$T/del-failures"

# ADD/DEL cycles: 4 workers, each in its own pod namespace.
start=$(date +%s%N)
cycle() {
	local w=$1 n=$2 i
	for ((i = 0; i < n; i++)); do
		one ADD "w$w-$i" "$w" || { echo "ADD w$w-$i: $(cat $T/res/w$w-$i)"; continue; }
		one DEL "w$w-$i" "$w" || echo "DEL w$w-$i: $(cat $T/res/w$w-$i)"
		rm -f "$T/res/w$w-$i"
	done
}
export -f cycle
pids=
for w in 0 1 2 3; do
	cycle $w $((CYCLES / 4)) >"$T/cycle-$w.failures" &
	pids="$pids $!"
done
wait $pids
t=$((($(date +%s%N) - start) / 1000000))
check "$CYCLES ADD/DEL cycles, 4 in parallel, all succeed (${t} ms)" sh -c "! cat '$T'/cycle-*.failures | grep ."
check "no leaked address" test "$(ipam_used)" = 0
# DEL answers before weftd's worker deleted the host veth: wait for it.
# The queue holds up to $PODS teardowns here (the first DELs, overtaken by
# the cycles' jobs, which their ADDs wait for), each a veth and an ifb at
# ~20 ms apiece in the kernel: allow 30 s for it to drain.
start=$(date +%s%N)
check "no leaked link (within 30 s)" within 30 no_weft_links n1
echo "     (the teardown queue drained $((($(date +%s%N) - start) / 1000000)) ms after the last DEL)"
check "no leaked route" no_weft_routes n1
check "no leaked tc object (ifb)" sh -c "! ip -n ${WC}n1 -o link show type ifb | grep -q ."
check "no leaked record" test "$(ctl get endpoints -o json | jq '.items | length')" = 0
check "no pod interface left (within 3 s)" within 3 sh -c "for i in 0 1 2 3; do ip -n ${WC}s\$i link show eth0 >/dev/null 2>&1 && exit 1; done; exit 0"
check "ipam check clean" ctl ipam check
check "store consistent" ctl store check
stop_weftd n1
finish
