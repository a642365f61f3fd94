# tests/lib/fabric.sh - an N-node weft fabric for the BGP integration tests
# (tests/bgp-*.sh), sourced after common.sh. The topology is deploy/lab's
# (docs/lab.md): a namespace ${FP}fab holding the bridge br0 (198.18.0.1/24,
# the top-of-rack switch), node namespaces ${FP}nI with eth0 198.18.0.(10+I)/24
# and a default route via 198.18.0.1, one file: store shared by all, weftd per
# node (started by pid with --ip; it runs BIRD as its child) and pods made by
# the real weft CNI plugin. Nothing touches the root namespace.
#
# Usage of a test: bgp-X.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
# Gives: $WEFTD $WEFT $WEFTCTL $DRIVER, $FP (name prefix, unique per run),
# $FR (run dir), $S (the store URL), and:
#   fabric_up N [YAML]        fabric namespace + store (YAML applied first;
#                             default: mesh BGPConfig and pool 10.65.0.0/16
#                             with /26 blocks) + nodes 1..N
#   fabric_init               just the fabric namespace and the store
#   fabric_add_node I [ARGS]  node I: namespace, underlay, weftd (ARGS go to
#                             weftd and are reused by restart_weftd)
#   start_weftd I / stop_weftd I / kill_weftd I [SIG]
#   node_ns I, node_name I, node_ip I, node_dir I, weftd_pid I, bird_pid I
#   pod_add NODE POD [IP]     a pod (namespace ${FP}p-POD) on node NODE through
#                             the weft plugin (IP: a static address, CNI_ARGS
#                             IP=); prints its IP
#   pod_del POD               CNI DEL and the namespace goes
#   pod_ns POD, pod_ip POD
#   ctl ARGS, drv ARGS        weftctl / test-bgp-driver on the store
#   bird_routes I             the node's kernel routes from BIRD (proto bird)
#   established I             the node's Established BGP sessions (names)
#   wait_established I N [S]  until node I has >= N Established sessions
#   within SECS CMD...        (common.sh) poll CMD every 0.1 s until it succeeds
#   has_route I PREFIX        node I's kernel has PREFIX from BIRD
#   can_ping POD IP / can_tcp POD POD2
#   fabric_down               stop everything (weftd by SIGTERM, with the
#                             sanitizer check; every process left in our
#                             namespaces by pid), delete the namespaces
#   fabric_finish             fabric_down, the root-namespace check, finish
# Leftovers of a killed earlier run (namespaces wf<pid>-*, /tmp/weft-fabric.*)
# are removed when this file is sourced.
need_root
WEFTD=${1:-}
WEFT=${2:-}
WEFTCTL=${3:-}
DRIVER=${4:-}
for b in "$WEFTD" "$WEFT" "$WEFTCTL" "$DRIVER"; do
	[ -x "$b" ] || { echo "usage: $0 WEFTD WEFT WEFTCTL TEST-BGP-DRIVER ($b is not executable)"; exit 2; }
done
if ! command -v bird >/dev/null || ! command -v birdc >/dev/null; then
	echo "skipped: bird is not installed (apt-get install bird2)"
	exit 77
fi

# weftd checks every incremental ACL sync against a full compile
# (felix/weftd-acl.c; weft_acl_verify_failures_total counts differences).
export WEFT_ACL_VERIFY=1

FP="wf$$-"
# Outside $T, so that a later run finds a killed run's run dir by its name.
FR="/tmp/weft-fabric.wf$$"
S="file:$FR/store"
FAB="${FP}fab"
CNI_DIR=$(dirname "$WEFT")
declare -A _node_args _weftd_pid

# _ns_pids NS: every process in namespace NS (whoever started it: weftd,
# its BIRD, an orphaned BIRD, FRR, iperf3 in a pod).
_ns_pids() { ip netns pids "$1" 2>/dev/null || true; }

# _alive PID: running and not a zombie.
_alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# _ns_kill NS...: SIGKILL every process in the namespaces, wait (bounded)
# until they are gone. By pid, never by name.
_ns_kill() {
	local ns pid pids="" i
	for ns in "$@"; do
		for pid in $(_ns_pids "$ns"); do
			kill -9 "$pid" 2>/dev/null && pids="$pids $pid"
		done
	done
	for pid in $pids; do
		for i in $(seq 50); do
			_alive "$pid" || break
			sleep 0.05
		done
	done
}

_our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1" || true; }

fabric_cleanup_leftovers() {
	local ns pid d
	for ns in $(_our_namespaces 'wf[0-9]+-'); do
		pid=${ns#wf}
		pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null && continue
		_ns_kill "$ns"
		ip netns del "$ns" 2>/dev/null
	done
	for d in /tmp/weft-fabric.wf*; do
		[ -d "$d" ] || continue
		pid=${d#/tmp/weft-fabric.wf}
		kill -0 "$pid" 2>/dev/null || rm -rf "$d"
	done
}

node_ns() { echo "${FP}n$1"; }
node_name() { echo "node$1"; }
node_ip() { echo "198.18.0.$((10 + $1))"; }
node_dir() { echo "$FR/n$1"; }
pod_ns() { echo "${FP}p-$1"; }
pod_ip() { cat "$FR/pods/$1.ip"; }
weftd_pid() { echo "${_weftd_pid[$1]:-}"; }
bird_pid() { cat "$(node_dir "$1")/bird.pid" 2>/dev/null; }
ctl() { "$WEFTCTL" --store "$S" "$@"; }
drv() { "$DRIVER" "$@"; }


fabric_init() {
	mkdir -p "$FR/pods" || return 1
	ip netns add "$FAB" || return 1
	ip -n "$FAB" link set lo up
	ip -n "$FAB" link add br0 type bridge
	ip -n "$FAB" addr add 198.18.0.1/24 dev br0
	ip -n "$FAB" link set br0 up
}

fabric_default_yaml() {
	cat <<-EOF
	kind: BGPConfig
	metadata: {name: default}
	spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
	---
	kind: IPPool
	metadata: {name: pool1}
	spec: {cidr: 10.65.0.0/16, blockSize: 26, natOutgoing: false, vxlanMode: Never}
	EOF
}

fabric_up() {
	local n=$1 yaml=${2:-} i
	fabric_init || return 1
	if [ -n "$yaml" ]; then
		ctl apply -f "$yaml" >/dev/null || return 1
	else
		fabric_default_yaml | ctl apply -f - >/dev/null || return 1
	fi
	for i in $(seq 1 "$n"); do
		fabric_add_node "$i" || return 1
	done
}

# fabric_add_node I [WEFTD-ARGS...]: the namespace is made from inside the
# fabric namespace, its veth peer straight into the node's: the name eth0
# only ever exists inside the node namespace.
fabric_add_node() {
	local i=$1 ns
	shift
	ns=$(node_ns "$i")
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up
	ip -n "$FAB" link add "n$i" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$FAB" link set "n$i" master br0 up
	ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via 198.18.0.1
	mkdir -p "$(node_dir "$i")"
	printf '{"cniVersion": "1.0.0", "name": "fabric", "type": "weft", "weftd_socket": "%s"}\n' \
		"$(node_dir "$i")/weftd.sock" >"$(node_dir "$i")/cni.conf"
	_node_args[$i]="$*"
	start_weftd "$i"
}

# _bird_answers I: BIRD's control socket answers.
_bird_answers() { birdc -s "$(node_dir "$1")/bird.ctl" show status 2>/dev/null | grep -q 'Daemon is up'; }

# start_weftd I: weftd in node I's namespace, by pid; waits until its API
# socket is there and its BIRD answers on the control socket.
start_weftd() {
	local i=$1 dir pid
	dir=$(node_dir "$i")
	rm -f "$dir/weftd.sock"
	# shellcheck disable=SC2086
	ip netns exec "$(node_ns "$i")" "$WEFTD" --node "$(node_name "$i")" --ip "$(node_ip "$i")/24" \
		--store "$S" --run-dir "$dir" ${_node_args[$i]:-} </dev/null >>"$dir/weftd.log" 2>&1 &
	pid=$!
	_weftd_pid[$i]=$pid
	echo "$pid" >"$dir/weftd.pid"
	for _ in $(seq 200); do
		[ -S "$dir/weftd.sock" ] && [ -s "$dir/bird.pid" ] && _alive "$(bird_pid "$i")" && _bird_answers "$i" &&
			return 0
		_alive "$pid" || break
		sleep 0.05
	done
	echo "weftd on $(node_name "$i") did not start (or its BIRD did not):"
	sed 's/^/  | /' "$dir/weftd.log" | tail -20
	return 1
}

# _sanitizer_check I: a sanitizer build reports leaks and errors at exit.
_sanitizer_check() {
	local log
	log="$(node_dir "$1")/weftd.log"
	# ASan/LSan say "...Sanitizer", UBSan "runtime error:".
	if grep -qE 'Sanitizer|runtime error:' "$log" 2>/dev/null; then
		fail "weftd $(node_name "$1"): sanitizer report"
		grep -E -A30 'Sanitizer|runtime error:' "$log" | sed 's/^/     | /'
		sed -i 's/Sanitizer/Sanitizer(reported)/; s/runtime error:/runtime error(reported):/' "$log"
	fi
}

# stop_weftd I: SIGTERM (weftd stops its BIRD), bounded wait, then SIGKILL.
stop_weftd() {
	local i=$1 pid
	pid=${_weftd_pid[$i]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 150); do
		_alive "$pid" || break
		sleep 0.1
	done
	if _alive "$pid"; then
		fail "weftd $(node_name "$i") (pid $pid) did not exit within 15 s of SIGTERM"
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	_weftd_pid[$i]=
	_sanitizer_check "$i"
}

# kill_weftd I [SIG]: signal weftd (default SIGKILL) and reap it; its BIRD
# child is not touched here.
kill_weftd() {
	local i=$1 sig=${2:-KILL} pid
	pid=${_weftd_pid[$i]:-}
	[ -n "$pid" ] || return 1
	kill "-$sig" "$pid" || return 1
	wait "$pid" 2>/dev/null
	_weftd_pid[$i]=
	return 0
}

# cni_pod CMD NODE POD [IP]: the weft plugin as a runtime calls it, from the
# node's namespace; the result on stdout. IP: a static address request
# (CNI_ARGS IP=).
cni_pod() {
	local cmd=$1 i=$2 pod=$3 args="K8S_POD_NAMESPACE=fabric;K8S_POD_NAME=$3"
	[ -n "${4:-}" ] && args="$args;IP=$4"
	ip netns exec "$(node_ns "$i")" env CNI_COMMAND="$cmd" CNI_CONTAINERID="${FP}$pod" \
		CNI_NETNS="/run/netns/$(pod_ns "$pod")" CNI_IFNAME=eth0 CNI_PATH="$CNI_DIR" \
		CNI_ARGS="$args" \
		"$WEFT" <"$(node_dir "$i")/cni.conf"
}

pod_add() {
	local i=$1 pod=$2 out ip
	ip netns add "$(pod_ns "$pod")" || return 1
	ip -n "$(pod_ns "$pod")" link set lo up
	out=$(cni_pod ADD "$i" "$pod" "${3:-}" 2>&1) || { echo "CNI ADD $pod on $(node_name "$i"): $out" >&2; return 1; }
	ip=$(echo "$out" | jq -r '.ips[0].address' 2>/dev/null)
	ip=${ip%/*}
	[ -n "$ip" ] && [ "$ip" != null ] || { echo "no address in the CNI result: $out" >&2; return 1; }
	echo "$i" >"$FR/pods/$pod.node"
	echo "$ip" >"$FR/pods/$pod.ip"
	echo "$ip"
}

pod_del() {
	local pod=$1 i out
	i=$(cat "$FR/pods/$pod.node") || return 1
	out=$(cni_pod DEL "$i" "$pod" 2>&1) || { echo "CNI DEL $pod: $out" >&2; return 1; }
	_ns_kill "$(pod_ns "$pod")"
	ip netns del "$(pod_ns "$pod")"
	rm -f "$FR/pods/$pod.node" "$FR/pods/$pod.ip"
}

bird_routes() { ip -n "$(node_ns "$1")" route show proto bird; }
has_route() { bird_routes "$1" | grep -q "^$2 "; }
no_route() { ! has_route "$@"; }

# established I: the names of node I's Established BGP sessions.
established() {
	birdc -s "$(node_dir "$1")/bird.ctl" show protocols 2>/dev/null |
		awk '$2 == "BGP" && $NF == "Established" {print $1}'
}
_n_established() { [ "$(established "$1" | wc -l)" -ge "$2" ]; }
wait_established() { within "${3:-30}" _n_established "$1" "$2"; }

# block_of IP [LEN]: the block (default /26) holding IP.
block_of() {
	python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1]+"/"+sys.argv[2], strict=False))' \
		"$1" "${2:-26}"
}

# can_ping POD IP: three tries of one second.
can_ping() {
	for _ in 1 2 3; do
		ip netns exec "$(pod_ns "$1")" ping -c1 -W1 -q "$2" >/dev/null 2>&1 && return 0
	done
	return 1
}

# can_tcp POD POD2: a TCP connection from POD to a listener on POD2's
# address carries a line to it.
can_tcp() {
	local from=$1 to=$2 dst port=7000 tok out lpid
	dst=$(pod_ip "$to")
	tok="weft-$from-$to-$$"
	out="$FR/tcp.$from.$to"
	rm -f "$out"
	ip netns exec "$(pod_ns "$to")" timeout 5 nc -l "$dst" "$port" >"$out" 2>/dev/null &
	lpid=$!
	for _ in $(seq 50); do
		ip netns exec "$(pod_ns "$to")" ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && break
		sleep 0.05
	done
	echo "$tok" | ip netns exec "$(pod_ns "$from")" timeout 5 nc -N "$dst" "$port" >/dev/null 2>&1
	wait "$lpid" 2>/dev/null
	grep -qx "$tok" "$out"
}

# root_state: what the root namespace has (names, addresses, routes) and
# which of our namespaces exist; compared before/after by fabric_finish.
root_state() {
	ip -o link show | awk -F': ' '{print $2}' | sort
	ip -o addr show | awk '{print $2, $4}' | sort
	ip route show
	_our_namespaces "$FP"
}

_fabric_down_done=0
fabric_down() {
	local i ns d
	[ "$_fabric_down_done" = 1 ] && return 0
	_fabric_down_done=1
	for i in "${!_weftd_pid[@]}"; do
		stop_weftd "$i"
	done
	# Everything else still in our namespaces: pods' servers, FRR, a BIRD
	# whose weftd was killed. Processes first: a deleted namespace name
	# would hide them.
	# shellcheck disable=SC2046 # one namespace per word
	_ns_kill $(_our_namespaces "$FP")
	for ns in $(_our_namespaces "$FP"); do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$FR"
}

fabric_finish() {
	local log
	# The logs go with the run dir: show their ends when something failed.
	if [ "$_failed" != 0 ]; then
		for log in "$FR"/n*/weftd.log; do
			[ -f "$log" ] || continue
			echo "     --- ${log#"$FR"/} (last 15 lines)"
			tail -15 "$log" | sed 's/^/     | /'
		done
	fi
	fabric_down
	root_state >"$T/root.after"
	check "root namespace unchanged, none of our namespaces left" diff -u "$T/root.before" "$T/root.after"
	finish
}

fabric_cleanup_leftovers
root_state >"$T/root.before"
at_exit fabric_down
