# tests/lib/cni.sh - helpers for the CNI integration tests (tests/cni-*.sh),
# sourced after common.sh. Usage of a test: cni-X.sh WEFTD WEFT WEFT_IPAM WEFTCTL
# Gives: $WEFTD $WEFT $WEFT_IPAM $WEFTCTL, $WC (namespace prefix, unique per
# run), $S (a fresh file: store), and:
#   cni_cleanup_leftovers         remove namespaces of killed earlier runs
#   make_ns NAME                  a namespace ${WC}NAME with lo up (removed at exit)
#   start_weftd NODE [RUNDIR]     weftd in ${WC}NODE, socket RUNDIR/weftd.sock
#   stop_weftd NODE               stop it (by pid) and wait
#   cni PLUGIN CMD NODE POD CID IFNAME CONF [VAR=VAL...]
#                                 run a plugin as a runtime would; stdout to
#                                 $T/cni.out, exit code in $CNI_RC
#   ctl ARGS...                   weftctl on the test store
#   apply_pool NAME CIDR [BLOCKSIZE]
#   within SECS CMD...            (common.sh) poll CMD every 0.1 s until it succeeds,
#                                 at most SECS seconds: weftd's DEL answers
#                                 before its worker has deleted the host
#                                 veth (docs/weftd.md), so tests wait for
#                                 kernel objects to go
need_root
WEFTD=$1
WEFT=$2
WEFT_IPAM=$3
WEFTCTL=$4
for b in "$WEFTD" "$WEFT" "$WEFT_IPAM" "$WEFTCTL"; do
	[ -x "$b" ] || { echo "usage: $0 WEFTD WEFT WEFT_IPAM WEFTCTL ($b is not executable)"; exit 2; }
done
WC="wc$$-"
S="file:$T/store"
CNI_DIR=$(dirname "$WEFT")
declare -A _weftd_pid

cni_cleanup_leftovers() {
	local ns pid
	for ns in $(ip netns list | awk '{print $1}' | grep -E '^wc[0-9]+-'); do
		pid=${ns#wc}
		pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null || ip netns del "$ns" 2>/dev/null
	done
}

make_ns() {
	ip netns add "${WC}$1" || return 1
	at_exit "ip netns del '${WC}$1' 2>/dev/null"
	ip -n "${WC}$1" link set lo up
}

start_weftd() {
	local node=$1 run=${2:-$T/run-$1} i
	mkdir -p "$run"
	ip netns exec "${WC}$node" "$WEFTD" --node "$node" --store "$S" --run-dir "$run" --no-bgp \
		>>"$T/weftd-$node.log" 2>&1 &
	_weftd_pid[$node]=$!
	at_exit "stop_weftd '$node'"
	for i in $(seq 100); do
		[ -S "$run/weftd.sock" ] && return 0
		kill -0 "${_weftd_pid[$node]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "weftd for $node did not start:"; sed 's/^/  | /' "$T/weftd-$node.log"
	return 1
}

stop_weftd() {
	local pid=${_weftd_pid[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	_weftd_pid[$1]=
	# In a sanitizer build, leaks and errors are reported at exit.
	if grep -qE 'Sanitizer|runtime error:' "$T/weftd-$1.log" 2>/dev/null; then
		fail "weftd $1: sanitizer report"
		grep -E -A20 'Sanitizer|runtime error:' "$T/weftd-$1.log" | sed 's/^/     | /'
		sed -i 's/Sanitizer/Sanitizer(reported)/' "$T/weftd-$1.log"
	fi
}

cni() {
	local plugin=$1 cmd=$2 node=$3 pod=$4 cid=$5 ifname=$6 conf=$7 netns
	shift 7
	netns=/run/netns/${WC}$pod
	[ -n "$pod" ] || netns=
	ip netns exec "${WC}$node" env CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" CNI_NETNS="$netns" \
		CNI_IFNAME="$ifname" CNI_PATH="$CNI_DIR" "$@" "$plugin" <"$conf" >"$T/cni.out" 2>"$T/cni.err"
	CNI_RC=$?
}

ctl() { "$WEFTCTL" --store "$S" "$@"; }

apply_pool() {
	printf 'kind: IPPool\nmetadata: {name: %s}\nspec: {cidr: %s, blockSize: %s}\n' "$1" "$2" "${3:-26}" |
		ctl apply -f - >/dev/null
}


# weft_links NODE: the weft-owned host links in a node namespace.
weft_links() { ip -n "${WC}$1" -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(wft|wfb)' || true; }
# weft_routes NODE: routes with weft's protocol number.
weft_routes() { ip -n "${WC}$1" route show proto 81; }
# no_weft_links NODE / no_weft_routes NODE: succeed when there are none
# (functions, so `check ... within 3 no_weft_links n1` works; a `sh -c`
# would not see weft_links).
no_weft_links() { test -z "$(weft_links "$1")"; }
no_weft_routes() { test -z "$(weft_routes "$1")"; }

cni_cleanup_leftovers

# ipam_used: addresses allocated in every pool and range.
ipam_used() { ctl ipam show -o json | jq '([.pools[].used] + [.ranges[].used]) | add // 0'; }
# store_rev: the store's current revision.
store_rev() { ctl store check | sed -E 's/.*revision ([0-9]+).*/\1/'; }
