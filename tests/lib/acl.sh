# shellcheck shell=bash
# tests/lib/acl.sh - end-to-end ACL helpers on the BGP fabric of
# tests/lib/fabric.sh (sourced after it): weftd with --acl BACKEND on every
# node, pods with profiles and labels through the real weft CNI plugin,
# TCP/UDP servers in pods and nodes, and connection checks that tell a
# dropped packet (a timeout) from a refused one.
#
# Gives:
#   acl_backend_setup BACKEND  nft, ipt (iptables as installed) or
#                              ipt-legacy; exits 77 when the backend's tools
#                              are missing. Sets $ACL_BACKEND.
#   acl_fabric_up N            fabric_up N with weftd --acl $ACL_BACKEND
#   acl_pod_add NODE POD NET PROFILES LABELS [SERVER-SPECS]
#                              a pod through the weft plugin with a CNI
#                              config of its own: network NET, "profiles"
#                              PROFILES (a JSON array, or "" for none: the
#                              network's default profile), "labels" LABELS
#                              (a JSON object or ""). With SERVER-SPECS
#                              ("tcp:80 udp:53 ...") a server is listening
#                              in the pod's namespace before the CNI ADD.
#                              Prints the pod's IPv4 address.
#   acl_pod_del POD            CNI DEL with the pod's own config, namespace gone
#   acl_server_pod POD SPECS / acl_server_node I SPECS
#                              start a server (by pid, killed at exit) that
#                              accepts TCP and echoes UDP on the ports
#                              ("tcp:80 udp:53"), and logs what it got
#   acl_client NS PROTO IP PORT [ARGS]   one attempt (exit 0 connected or
#                              answered, 1 timed out, 2 refused/unreachable)
#   acl_probe FROM TO SPEC     FROM, TO pod names (TO may be an address);
#                              SPEC tcp/N, udp/N or icmp; prints ok, drop,
#                              refused or error
#   acl_expect NAME WANT FROM TO SPEC     WANT ok or drop: pass/fail
#   acl_eventually NAME WANT FROM TO SPEC [SECS]  the same, retried
#   acl_trace FROM TO SPEC     weftctl policy trace on the pods' addresses:
#                              prints ok (exit 0), drop (exit 3) or error
#   acl_set_name TAG           the program's IPv4 set for tag TAG
#   acl_set_has I SET IP       node I's kernel set SET holds IP
#   acl_ruleset I              node I's whole ruleset (nft or iptables-save)
#   acl_root_state             the root namespace's nftables, iptables and
#                              ipsets (counters stripped), for the final check
ACL_TIMEOUT=${ACL_TIMEOUT:-1}
ACL_BACKEND=
declare -A _acl_srv_pid

acl_backend_setup() {
	ACL_BACKEND=$1
	case "$1" in
	nft)
		command -v nft >/dev/null || { echo "skipped: nft is not installed"; exit 77; } ;;
	ipt)
		command -v iptables-restore >/dev/null && command -v ipset >/dev/null ||
			{ echo "skipped: iptables-restore or ipset is not installed"; exit 77; } ;;
	ipt-legacy)
		command -v iptables-legacy-restore >/dev/null && command -v ipset >/dev/null ||
			{ echo "skipped: iptables-legacy or ipset is not installed"; exit 77; }
		export WEFT_IPTABLES=iptables-legacy ;;
	*)
		echo "usage: backend nft, ipt or ipt-legacy, not \"$1\""; exit 2 ;;
	esac
}

_acl_weftd_backend() { [ "$ACL_BACKEND" = ipt-legacy ] && echo ipt || echo "$ACL_BACKEND"; }

_acl_iptables() { echo "${WEFT_IPTABLES:-iptables}"; }

acl_fabric_up() {
	local n=$1 i
	fabric_init || return 1
	fabric_default_yaml | ctl apply -f - >/dev/null || return 1
	for i in $(seq 1 "$n"); do
		fabric_add_node "$i" --acl "$(_acl_weftd_backend)" || return 1
	done
}

# --- servers and clients (python3: one process serves many ports) -----------

cat >"$T/acl-srv.py" <<'EOF'
import selectors, socket, sys
ready, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
sel = selectors.DefaultSelector()
for spec in sys.argv[3:]:
    proto, port = spec.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    if proto == "tcp":
        s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, (proto, port))
open(ready, "w").close()
while True:
    for key, _ in sel.select():
        proto, port = key.data
        try:
            if proto == "tcp":
                c, peer = key.fileobj.accept()
                log.write("tcp %s %s\n" % (port, peer[0]))
                c.setblocking(True)
                c.settimeout(1)
                try:
                    c.sendall(b"weft\n")
                finally:
                    c.close()
            else:
                data, peer = key.fileobj.recvfrom(2048)
                log.write("udp %s %s %s\n" % (port, peer[0], data.decode(errors="replace")))
                key.fileobj.sendto(b"weft:" + data, peer)
        except OSError:
            pass
EOF

# acl-cli.py PROTO IP PORT [--src A] [--timeout S] [--until S] [--payload P]:
# exit 0 connected (tcp) or answered (udp), 1 timed out, 2 refused or
# unreachable, 3 anything else. --until retries attempts of 0.1 s until S
# seconds have passed and prints the milliseconds to the first success.
cat >"$T/acl-cli.py" <<'EOF'
import errno, socket, sys, time
proto, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
src, timeout = opts.get("--src"), float(opts.get("--timeout", "1"))
until, payload = opts.get("--until"), opts.get("--payload", "ping").encode()

def once(t):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(t)
    try:
        if src:
            s.bind((src, 0))
        s.connect((ip, port))
        if proto == "udp":
            s.send(payload)
            s.recv(2048)
        return 0
    except socket.timeout:
        return 1
    except OSError as e:
        return 2 if e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH) else 3
    finally:
        s.close()

if until:
    t0 = time.monotonic()
    end = t0 + float(until)
    while True:
        r = once(0.1)
        if r == 0:
            print("%d" % ((time.monotonic() - t0) * 1000))
            sys.exit(0)
        if time.monotonic() >= end:
            sys.exit(r)
        if r != 1:
            time.sleep(0.05)
sys.exit(once(timeout))
EOF

# _acl_server NS KEY SPECS...: the server in namespace NS, by pid; waits
# until every port is bound.
_acl_server() {
	local ns=$1 key=$2 n pid
	shift 2
	rm -f "$T/srv.$key.ready"
	# shellcheck disable=SC2068
	ip netns exec "$ns" python3 "$T/acl-srv.py" "$T/srv.$key.ready" "$T/srv.$key.log" $@ \
		</dev/null >>"$T/srv.$key.err" 2>&1 &
	pid=$!
	_acl_srv_pid[$key]="${_acl_srv_pid[$key]:-} $pid"
	for n in $(seq 100); do
		[ -e "$T/srv.$key.ready" ] && return 0
		_alive "$pid" || break
		sleep 0.05
	done
	echo "server in $ns ($*) did not start:" >&2
	cat "$T/srv.$key.err" >&2
	return 1
}

acl_server_pod() { local p=$1; shift; _acl_server "$(pod_ns "$p")" "$p" "$@"; }
acl_server_node() { local i=$1; shift; _acl_server "$(node_ns "$i")" "node$i" "$@"; }

# acl_server_log KEY: what the server of pod KEY (or nodeI) got.
acl_server_log() { cat "$T/srv.$1.log" 2>/dev/null; }

_acl_stop_servers() {
	local k pid
	for k in "${!_acl_srv_pid[@]}"; do
		for pid in ${_acl_srv_pid[$k]}; do
			kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
		done
	done
	_acl_srv_pid=()
}

acl_client() {
	local ns=$1
	shift
	ip netns exec "$ns" python3 "$T/acl-cli.py" "$@"
}

# _acl_dst TO: a pod's address, or TO itself when it is an address.
_acl_dst() {
	if [[ $1 =~ ^[0-9.]+$ ]]; then echo "$1"; else pod_ip "$1"; fi
}

acl_probe() {
	local from=$1 to=$2 spec=$3 dst rc
	dst=$(_acl_dst "$to") || { echo error; return; }
	case "$spec" in
	icmp)
		ip netns exec "$(pod_ns "$from")" ping -n -c1 -W "$ACL_TIMEOUT" -q "$dst" >/dev/null 2>&1
		rc=$? ;;
	tcp/* | udp/*)
		acl_client "$(pod_ns "$from")" "${spec%/*}" "$dst" "${spec#*/}" --timeout "$ACL_TIMEOUT"
		rc=$? ;;
	*)
		echo error; return ;;
	esac
	case "$rc" in
	0) echo ok ;;
	1) echo drop ;;
	2) echo refused ;;
	*) echo error ;;
	esac
}

acl_expect() {
	local name=$1 want=$2 got
	shift 2
	got=$(acl_probe "$@")
	if [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name: want $want, got $got ($1 -> $2 $3)"
	fi
}

acl_eventually() {
	local name=$1 want=$2 from=$3 to=$4 spec=$5 secs=${6:-3} end got
	end=$(($(date +%s%N) + secs * 1000000000))
	while :; do
		got=$(acl_probe "$from" "$to" "$spec")
		[ "$got" = "$want" ] && break
		[ "$(date +%s%N)" -lt "$end" ] || break
		sleep 0.1
	done
	if [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name: want $want within $secs s, got $got ($from -> $to $spec)"
	fi
}

acl_trace() {
	local src dst spec=$3 rc
	src=$(_acl_dst "$1") && dst=$(_acl_dst "$2") || { echo error; return; }
	[ "$spec" = icmp ] && spec=icmp/8
	ctl policy trace "$src" "$dst" "$spec" >"$T/trace.out" 2>&1
	rc=$?
	case "$rc" in
	0) echo ok ;;
	3) echo drop ;;
	*) echo error ;;
	esac
}

# --- pods with their own CNI config ------------------------------------------

# _acl_cni CMD POD: the weft plugin with the pod's config, from its node's
# namespace, as fabric.sh's cni_pod does.
_acl_cni() {
	local cmd=$1 pod=$2 i
	i=$(cat "$FR/pods/$pod.node") || return 1
	ip netns exec "$(node_ns "$i")" env CNI_COMMAND="$cmd" CNI_CONTAINERID="${FP}$pod" \
		CNI_NETNS="/run/netns/$(pod_ns "$pod")" CNI_IFNAME=eth0 CNI_PATH="$CNI_DIR" \
		CNI_ARGS="K8S_POD_NAMESPACE=fabric;K8S_POD_NAME=$pod" \
		"$WEFT" <"$FR/pods/$pod.conf"
}

acl_pod_add() {
	local i=$1 pod=$2 net=$3 profiles=$4 labels=$5 srv=${6:-} out ip extra=""
	ip netns add "$(pod_ns "$pod")" || return 1
	ip -n "$(pod_ns "$pod")" link set lo up
	[ -n "$profiles" ] && extra="$extra, \"profiles\": $profiles"
	[ -n "$labels" ] && extra="$extra, \"labels\": $labels"
	printf '{"cniVersion": "1.0.0", "name": "%s", "type": "weft", "weftd_socket": "%s"%s}\n' \
		"$net" "$(node_dir "$i")/weftd.sock" "$extra" >"$FR/pods/$pod.conf"
	echo "$i" >"$FR/pods/$pod.node"
	if [ -n "$srv" ]; then
		# shellcheck disable=SC2086
		acl_server_pod "$pod" $srv || return 1
	fi
	out=$(_acl_cni ADD "$pod" 2>&1) || { echo "CNI ADD $pod on $(node_name "$i"): $out" >&2; return 1; }
	ip=$(echo "$out" | jq -r '.ips[0].address' 2>/dev/null)
	ip=${ip%/*}
	[ -n "$ip" ] && [ "$ip" != null ] || { echo "no address in the CNI result: $out" >&2; return 1; }
	echo "$ip" >"$FR/pods/$pod.ip"
	echo "$ip"
}

acl_pod_del() {
	local pod=$1 out pid
	out=$(_acl_cni DEL "$pod" 2>&1) || { echo "CNI DEL $pod: $out" >&2; return 1; }
	for pid in ${_acl_srv_pid[$pod]:-}; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	unset "_acl_srv_pid[$pod]"
	_ns_kill "$(pod_ns "$pod")"
	ip netns del "$(pod_ns "$pod")"
	rm -f "$FR/pods/$pod.node" "$FR/pods/$pod.ip" "$FR/pods/$pod.conf"
}

# --- the kernel's view ----------------------------------------------------------

# acl_set_name TAG: acl/compile.c names a tag's set "wt4-" + the low 48 bits
# of FNV-1a 64 over "tag TAG"; the ipt backend prefixes "weft-".
acl_set_name() {
	python3 - "$1" <<-'EOF'
	import sys
	h = 0xcbf29ce484222325
	for b in ("tag " + sys.argv[1]).encode():
	    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
	print("wt4-%012x" % (h & 0xffffffffffff))
	EOF
}

acl_set_has() {
	local i=$1 set=$2 ip=$3
	case "$ACL_BACKEND" in
	nft) ip netns exec "$(node_ns "$i")" nft get element inet weft "$set" "{ $ip }" >/dev/null 2>&1 ;;
	*) ip netns exec "$(node_ns "$i")" ipset test "weft-$set" "$ip" >/dev/null 2>&1 ;;
	esac
}

acl_ruleset() {
	local i=$1 ipt
	case "$ACL_BACKEND" in
	nft) ip netns exec "$(node_ns "$i")" nft list ruleset ;;
	*)
		ipt=$(_acl_iptables)
		ip netns exec "$(node_ns "$i")" "$ipt-save"
		ip netns exec "$(node_ns "$i")" ipset list ;;
	esac
}

# acl_root_state: read only; counters (which move with the host's traffic)
# and comment lines with timestamps stripped.
acl_root_state() {
	echo "== nft"
	nft list ruleset 2>&1 | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/g'
	echo "== iptables"
	iptables-save 2>&1 | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//g'
	echo "== ip6tables"
	ip6tables-save 2>&1 | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//g'
	echo "== ipset"
	ipset list -n 2>&1 | sort
}

acl_root_state >"$T/acl-root.before"
at_exit _acl_stop_servers
