#!/bin/bash
# weftd's asynchronous DEL (docs/weftd.md, "Asynchronous teardown"): DEL
# answers once the address and the record are released, a worker deletes
# the host veth afterwards. Checks: DEL then an immediate re-ADD of the same
# container id + ifname gives a working pod (the ADD waits for the queued
# teardown, which does not take the new veth); an address reused at once by
# another pod keeps its new route; the DEL withdraws the pod's routes before
# it answers (the veth waits in the queue); 50 DELs back to back leave no veth within
# a few seconds; SIGTERM with teardowns queued finishes them before exit;
# after a crash (SIGKILL) the start-up sweep removes what was left.
# Usage: cni-async-del.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh" "$@"
N=${PODS:-50}

make_ns n1 && make_ns p1 && make_ns p2 && make_ns p3 || { fail "namespaces"; finish; }
apply_pool pool1 10.66.0.0/16 || { fail "apply pool"; finish; }
start_weftd n1 || { fail "weftd start"; finish; }
SOCK=$T/run-n1/weftd.sock
cat >"$T/conf.json" <<EOT
{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "weft", "weftd_socket": "$SOCK",
 "ipam": {"type": "weft-ipam", "ipv4_pools": ["pool1"]}}
EOT
ip_of() { jq -r '.ips[0].address' "$1" | cut -d/ -f1; }
ping_ok() { ip netns exec "${WC}$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }

cni "$WEFT" ADD n1 p2 cid-peer eth0 "$T/conf.json"
cp "$T/cni.out" "$T/peer.json"
check "ADD peer pod" test "$CNI_RC" = 0
IPP=$(ip_of "$T/peer.json")

# --- DEL then immediate re-ADD of the same attachment ---------------------------
cni "$WEFT" ADD n1 p1 cid-a eth0 "$T/conf.json"
check "ADD pod a" test "$CNI_RC" = 0
H=$(jq -r '.interfaces[0].name' "$T/cni.out")
cni "$WEFT" DEL n1 p1 cid-a eth0 "$T/conf.json"
check "DEL pod a" test "$CNI_RC" = 0
cni "$WEFT" ADD n1 p1 cid-a eth0 "$T/conf.json"
cp "$T/cni.out" "$T/a2.json"
check "immediate re-ADD of cid-a/eth0 succeeds" sh -c "test $CNI_RC = 0 && jq -e '.ips[0].address' '$T/a2.json' >/dev/null"
IPA=$(ip_of "$T/a2.json")
sleep 0.5
check "re-ADDed pod: host veth $H still there" ip -n "${WC}n1" link show "$H"
check "re-ADDed pod: its route via $H" sh -c "ip -n ${WC}n1 route show proto 81 | grep -q '^$IPA dev $H '"
check "re-ADDed pod reaches the peer" ping_ok p1 "$IPP"
jq --slurpfile r "$T/a2.json" '. + {prevResult: $r[0]}' "$T/conf.json" >"$T/check.json"
cni "$WEFT" CHECK n1 p1 cid-a eth0 "$T/check.json"
check "CHECK of the re-ADDed pod" test "$CNI_RC" = 0

# --- an address reused at once by another pod keeps its new route --------------
cni "$WEFT" DEL n1 p1 cid-a eth0 "$T/conf.json"
check "DEL pod a again" test "$CNI_RC" = 0
cni "$WEFT" ADD n1 p3 cid-b eth0 "$T/conf.json" CNI_ARGS="IP=$IPA"
cp "$T/cni.out" "$T/b.json"
check "ADD pod b with a's address $IPA at once" sh -c "test $CNI_RC = 0 && test \"\$(jq -r '.ips[0].address' '$T/b.json')\" = '$IPA/32'"
HB=$(jq -r '.interfaces[0].name' "$T/b.json")
check "a's veth gone (within 3 s)" within 3 sh -c "! ip -n ${WC}n1 link show '$H' 2>/dev/null"
check "route to $IPA still via b's veth $HB" sh -c "ip -n ${WC}n1 route show proto 81 | grep -q '^$IPA dev $HB '"
check "pod b reaches the peer and back" sh -c "ip netns exec ${WC}p2 ping -c 1 -W 1 $IPA >/dev/null"
cni "$WEFT" DEL n1 p3 cid-b eth0 "$T/conf.json"
check "DEL pod b" test "$CNI_RC" = 0

# --- $N DELs back to back ---------------------------------------------------------
for i in $(seq 0 $((N - 1))); do ip netns add "${WC}q$i"; done
at_exit "for _p in \$(seq 0 $((N - 1))); do ip netns del '${WC}q'\$_p 2>/dev/null; done"
many() { # many CMD FROM TO: run CMD for pods FROM..TO one after the other
	local i bad=0
	for ((i = $2; i <= $3; i++)); do
		ip netns exec "${WC}n1" env CNI_COMMAND="$1" CNI_CONTAINERID="cq$i" CNI_NETNS="/run/netns/${WC}q$i" \
			CNI_IFNAME=eth0 CNI_PATH="$CNI_DIR" "$WEFT" <"$T/conf.json" >"$T/q.out" 2>&1 ||
			{ echo "$1 cq$i: $(cat "$T/q.out")"; bad=1; }
	done
	return $bad
}
check "$N ADDs" many ADD 0 $((N - 1))
check "$N host veths" test "$(weft_links n1 | grep -c '^wft')" = "$((N + 1))"
start=$(date +%s%N)
check "$N DELs back to back" many DEL 0 $((N - 1))
t=$((($(date +%s%N) - start) / 1000000))
echo "     ($N DELs answered in $t ms)"
check "all $N veths gone (within 5 s)" within 5 sh -c "test \"\$(ip -n ${WC}n1 -o link show | grep -c ': wft')\" = 1"
check "only the peer's route left" sh -c "test \"\$(ip -n ${WC}n1 route show proto 81 | wc -l)\" = 1"
check "no pod eth0 left" sh -c "for i in \$(seq 0 $((N - 1))); do ip -n ${WC}q\$i link show eth0 >/dev/null 2>&1 && exit 1; done; exit 0"

# --- SIGTERM with teardowns queued ---------------------------------------------
# From here weftd runs with teardowns made slow (100 ms each, a test knob:
# real ones take a few ms, faster than the plugin's DELs come), and the
# DELs come all at once, so that a queue is left at SIGTERM and at the
# crash below (50 x 100 ms: well within the 10 s weftd gives its queue at
# exit).
many_par() { # many_par CMD FROM TO: run CMD for pods FROM..TO all at once
	local i pids=()
	for ((i = $2; i <= $3; i++)); do
		ip netns exec "${WC}n1" env CNI_COMMAND="$1" CNI_CONTAINERID="cq$i" CNI_NETNS="/run/netns/${WC}q$i" \
			CNI_IFNAME=eth0 CNI_PATH="$CNI_DIR" "$WEFT" <"$T/conf.json" >/dev/null 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
}
# --- the routes go with the DEL, before the veth ---------------------------------
# Teardowns made slow (1 s): the veth waits in the queue, while its address,
# released, may be given to a pod on another node at once. This node must
# not route it into the dying veth meanwhile.
stop_weftd n1
export WEFT_TEARDOWN_DELAY_MS=1000
start_weftd n1 || { fail "weftd restart (slow teardowns)"; finish; }
cni "$WEFT" ADD n1 p1 cid-w eth0 "$T/conf.json"
cp "$T/cni.out" "$T/w.json"
check "ADD pod w" test "$CNI_RC" = 0
IPW=$(ip_of "$T/w.json")
HW=$(jq -r '.interfaces[0].name' "$T/w.json")
check "pod w: route to $IPW via $HW" sh -c "ip -n ${WC}n1 route show proto 81 | grep -q '^$IPW dev $HW '"
cni "$WEFT" DEL n1 p1 cid-w eth0 "$T/conf.json"
check "DEL pod w" test "$CNI_RC" = 0
check "right after the DEL: $HW still queued, the route to $IPW gone" \
	sh -c "ip -n ${WC}n1 link show '$HW' >/dev/null && ! ip -n ${WC}n1 route show proto 81 | grep -q '^$IPW '"
check "then the veth goes too (within 3 s)" within 3 sh -c "! ip -n ${WC}n1 link show '$HW' 2>/dev/null"

stop_weftd n1
export WEFT_TEARDOWN_DELAY_MS=100
start_weftd n1 || { fail "weftd restart (slow teardowns)"; finish; }
check "$N ADDs again" many ADD 0 $((N - 1))
many_par DEL 0 $((N - 1))
stop_weftd n1
check "SIGTERM: weftd finished the queued teardowns (no weft link but the peer's)" \
	sh -c "test \"\$(ip -n ${WC}n1 -o link show | grep -c ': wf')\" = 1"
queued=$(sed -n 's/.*finishing \([0-9]*\) queued teardown(s) before exiting.*/\1/p' "$T/weftd-n1.log" | tail -1)
finished=$(sed -n 's/.* \([0-9]*\) queued teardown(s) finished.*/\1/p' "$T/weftd-n1.log" | tail -1)
check "SIGTERM: exit logged the queue (${queued:-no} teardowns) and its end" test "${queued:-x}" = "${finished:-y}"

# --- crash (SIGKILL) with teardowns queued: the start-up sweep cleans up --------
start_weftd n1 || { fail "weftd restart"; finish; }
check "$N ADDs after restart" many ADD 0 $((N - 1))
many_par DEL 0 $((N - 1))
kill -9 "${_weftd_pid[n1]}"; wait "${_weftd_pid[n1]}" 2>/dev/null; _weftd_pid[n1]=
rm -f "$SOCK" # so that start_weftd waits for the new one (after reconciliation)
left=$(ip -n ${WC}n1 -o link show | grep -c ': wft')
echo "     ($left weft veths left at the crash)"
start_weftd n1 || { fail "weftd restart after crash"; finish; }
check "after crash + restart: no weft link but the peer's" \
	sh -c "test \"\$(ip -n ${WC}n1 -o link show | grep -c ': wf')\" = 1"
check "the crash left veths behind (queued teardowns)" [ "$left" -gt 1 ]
check "after crash + restart: sweep logged" grep -q "swept" "$T/weftd-n1.log"
check "after crash + restart: the peer's veth and route kept" \
	sh -c "ip -n ${WC}n1 route show proto 81 | grep -q '^$IPP '"
cni "$WEFT" DEL n1 p2 cid-peer eth0 "$T/conf.json"
check "DEL peer" test "$CNI_RC" = 0
check "nothing left (within 3 s)" within 3 no_weft_links n1
check "no addresses left" test "$(ipam_used)" = 0
check "ipam check clean" ctl ipam check
stop_weftd n1
finish
