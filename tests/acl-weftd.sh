#!/bin/bash
# weftd's ACL half (felix/weftd-acl.c) on one node, without BGP or pods:
# Endpoint records with interface names stand for the pods (the backends
# key their dispatch by interface name, so no interface is needed), and
# the kernel's sets and rules in the node's namespace are checked.
#
#  - Switching backends: after weftd ran with the other backend, a start
#    that fails (store unreachable) leaves the other backend's rules in
#    place (the pods stay filtered); a start that succeeds removes them,
#    after its own first apply.
#  - WEFT_ACL_VERIFY: a difference found after an incremental sync
#    (injected with WEFT_ACL_VERIFY_INJECT) makes the next sync a full
#    compile and apply, without waiting for another event.
#  - A rule edit that names a tag again whose set lost its last rule in
#    an earlier rule edit: the set must hold the tag's current members,
#    not those of the time its last reference went.
#
# Root only; nothing outside the namespace it makes.
# Usage: acl-weftd.sh nft|ipt WEFTD WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
B=${1:-}
WEFTD=${2:-}
W=${3:-}
for b in "$WEFTD" "$W"; do
	[ -x "$b" ] || { echo "usage: $0 nft|ipt WEFTD WEFTCTL ($b is not executable)"; exit 2; }
done
case "$B" in
nft) OTHER=ipt ;;
ipt) OTHER=nft ;;
*) echo "usage: $0 nft|ipt WEFTD WEFTCTL"; exit 2 ;;
esac
for c in nft iptables-save iptables-restore ipset curl; do
	command -v $c >/dev/null || { echo "skipped: $c is not installed"; exit 77; }
done

P="wa$$-"
NS="${P}n1"
# The run dir is outside $T so that a later run finds a killed run's weftd.
R="/tmp/weft-aclw.wa$$"
S="file:$R/store"

# stop_weftd: SIGTERM by pid (pid file), wait, then SIGKILL.
stop_weftd() {
	local pf=$1/weftd.pid pid i
	[ -f "$pf" ] || return 0
	pid=$(cat "$pf")
	rm -f "$pf"
	grep -qF "$1" "/proc/$pid/cmdline" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

clean_leftover_runs /tmp/weft-aclw.wa wa stop_weftd
cleanup() {
	stop_weftd "$R"
	ip netns del "$NS" 2>/dev/null
	rm -rf "$R"
}
at_exit cleanup

ctl() { "$W" --store "$S" "$@"; }
in_ns() { ip netns exec "$NS" "$@"; }
metric() {
	local v
	v=$(in_ns curl -s -m 5 http://127.0.0.1:9099/metrics | awk -v m="$1" '$1 == m {print $2}')
	echo "${v:-0}"
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }

# start_weftd BACKEND STORE [ENV...]: weftd --no-bgp in the namespace, by
# pid; waits for its API socket (the first ACL apply comes before it).
start_weftd() {
	local backend=$1 store=$2 pid
	shift 2
	rm -f "$R/run/weftd.sock"
	# Not through in_ns: $! must be weftd's pid, not a subshell's.
	ip netns exec "$NS" env WEFT_ACL_VERIFY=1 "$@" "$WEFTD" --node n1 --store "$store" --run-dir "$R/run" \
		--no-bgp --acl "$backend" --log-level debug </dev/null >>"$R/weftd.log" 2>&1 &
	pid=$!
	echo "$pid" >"$R/weftd.pid"
	for _ in $(seq 200); do
		[ -S "$R/run/weftd.sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "weftd --acl $backend did not start:"
	tail -20 "$R/weftd.log" | sed 's/^/  | /'
	return 1
}
# The pid file names $R/run in the command line: stop_weftd's check.
stop() { stop_weftd "$R"; }

# has_rules BACKEND: that backend's rules are in the namespace's kernel.
has_rules() {
	case "$1" in
	nft) in_ns nft list table inet weft >/dev/null 2>&1 ;;
	ipt) in_ns iptables-save -t filter | grep -q -- '-j weft' && in_ns ipset list -n | grep -q '^weft' ;;
	esac
}
no_rules() {
	case "$1" in
	nft) ! in_ns nft list table inet weft >/dev/null 2>&1 ;;
	ipt) ! in_ns iptables-save -t filter | grep -q weft && ! in_ns ip6tables-save -t filter | grep -q weft &&
		! in_ns ipset list -n | grep -q '^weft' ;;
	esac
}

# set_name TAG: the program's IPv4 set for tag TAG (acl/compile.c: "wt4-"
# and the low 48 bits of FNV-1a 64 over "tag TAG"); ipt prefixes "weft-".
set_name() {
	python3 - "$1" "$B" <<-'EOF'
	import sys
	h = 0xcbf29ce484222325
	for b in ("tag " + sys.argv[1]).encode():
	    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
	print(("weft-" if sys.argv[2] == "ipt" else "") + "wt4-%012x" % (h & 0xffffffffffff))
	EOF
}
# members SET: the set's elements, one a line, sorted.
members() {
	case "$B" in
	nft) in_ns nft -j list set inet weft "$1" |
		jq -r '.nftables[] | select(.set) | .set.elem // [] | .[] | if type == "object" then (.prefix.addr + "/" + (.prefix.len | tostring)) else . end' | sort ;;
	ipt) in_ns ipset list "$1" | sed -n '/^Members:/,$p' | tail -n +2 | sed 's|/32$||' | sort ;;
	esac
}
no_rule_uses() { ! rule_uses "$1"; }
members_are() { [ "$(members "$1" | tr '\n' ' ')" = "$2 " ]; }
# rule_uses SET: a rule of the ruleset matches on SET.
rule_uses() {
	case "$B" in
	nft) in_ns nft list table inet weft | grep -q "saddr @$1 " ;;
	ipt) in_ns iptables-save -t filter | grep -q -- "--match-set $1 src" ;;
	esac
}

ip netns add "$NS" || { echo "cannot create the namespace"; exit 1; }
in_ns ip link set lo up
mkdir -p "$R/run"
command -v jq >/dev/null || { echo "skipped: jq is not installed"; exit 77; }

cat >"$T/base.yaml" <<'EOF'
kind: Profile
metadata: {name: WEB}
spec:
  tags: [WEB]
  inboundRules:
  - {action: allow, source: {tag: DB}}
  outboundRules:
  - {action: allow}
---
kind: Profile
metadata: {name: DB}
spec:
  tags: [DB]
  inboundRules:
  - {action: allow, protocol: tcp, destination: {ports: [5432]}}
  outboundRules:
  - {action: allow}
---
kind: Endpoint
metadata: {name: local1}
spec: {node: n1, hostIfname: wftloc1, ipNetworks: ["10.9.0.1/32"], profiles: [WEB]}
---
kind: Endpoint
metadata: {name: db1}
spec: {node: n2, ipNetworks: ["10.9.1.5/32"], profiles: [DB]}
EOF
cat >"$T/db2.yaml" <<'EOF'
kind: Endpoint
metadata: {name: db2}
spec: {node: n2, ipNetworks: ["10.9.1.6/32"], profiles: [DB]}
EOF
cat >"$T/db3.yaml" <<'EOF'
kind: Endpoint
metadata: {name: db3}
spec: {node: n2, ipNetworks: ["10.9.1.7/32"], profiles: [DB]}
EOF
check "store: profiles WEB and DB, endpoints local1 (here) and db1 (node n2)" ctl apply -f "$T/base.yaml"
DBSET=$(set_name DB)

# --- switching backends ----------------------------------------------------------
check "weftd --acl $OTHER starts" start_weftd "$OTHER" "$S"
check "the $OTHER backend's rules are in the kernel" has_rules "$OTHER"
stop
check "they stay when weftd stops" has_rules "$OTHER"
in_ns env WEFT_ACL_VERIFY=1 "$WEFTD" --node n1 --store 'etcd://127.0.0.1:1?timeout_ms=300' --run-dir "$R/run" \
	--no-bgp --acl "$B" </dev/null >>"$R/weftd.log" 2>&1
rc=$?
[ "$rc" != 0 ] && pass "weftd --acl $B with an unreachable store exits ($rc)" ||
	fail "weftd --acl $B with an unreachable store exited 0"
check "... and leaves the $OTHER backend's rules in place (the pods stay filtered)" has_rules "$OTHER"
check "... and programs nothing of its own" no_rules "$B"
check "weftd --acl $B starts" start_weftd "$B" "$S"
check "the $B backend's rules are in the kernel" has_rules "$B"
check "the $OTHER backend's rules are gone" no_rules "$OTHER"
check "weftd removed them after its first apply" \
	sh -c "grep -e 'acl: applied' -e 'removed what the $OTHER backend left' '$R/weftd.log' | tail -1 | grep -q 'removed what'"
stop

# --- a verify failure is repaired at once --------------------------------------------
check "weftd --acl $B starts (WEFT_ACL_VERIFY_INJECT=1)" start_weftd "$B" "$S" WEFT_ACL_VERIFY_INJECT=1
# The first incremental sync (db2 coming, on another node: a members-only
# compile) reports a difference (injected); the sync after it must be
# full, with no other event.
check "one full compile so far" metric_is 'weft_acl_compiles_total{kind="full"}' 1
check "endpoint db2 (10.9.1.6, DB) on node n2" ctl apply -f "$T/db2.yaml"
check "its sync was incremental (members only: db2 has no entry here)" within 5 metric_is 'weft_acl_compiles_total{kind="members"}' 1
check "the check after it failed (injected)" within 5 metric_is weft_acl_verify_failures_total 1
check "the next sync is a full compile, with no other event" within 5 metric_is 'weft_acl_compiles_total{kind="full"}' 2
check "... and a full apply" within 5 metric_is 'weft_acl_updates_total{kind="full"}' 2
check "the DB set: 10.9.1.5 10.9.1.6" members_are "$DBSET" "10.9.1.5 10.9.1.6"
check "delete db2" ctl delete endpoint db2
check "the DB set: 10.9.1.5" within 5 members_are "$DBSET" "10.9.1.5"
check "no more verify failures" metric_is weft_acl_verify_failures_total 1
stop

# --- a set reused by a rule edit holds current members ------------------------------
# Without WEFT_ACL_VERIFY: its check would repair a wrong set at once, and
# the kernel's sets are what is checked here.
check "weftd --acl $B starts again (WEFT_ACL_VERIFY=0)" start_weftd "$B" "$S" WEFT_ACL_VERIFY=0
check "the WEB chain matches the DB set" rule_uses "$DBSET"
check "WEB: allow tcp to ports 80" ctl profile WEB rule add inbound allow tcp to ports 80
check "WEB: no rule from tag DB any more" ctl profile WEB rule remove inbound allow from tag DB
check "no rule uses the DB set" within 5 no_rule_uses "$DBSET"
check "delete db1 (10.9.1.5)" ctl delete endpoint db1
check "endpoint db2 (10.9.1.6, DB)" ctl apply -f "$T/db2.yaml"
sleep 0.5
check "WEB: allow from tag DB again" ctl profile WEB rule add inbound allow from tag DB
check "the WEB chain matches the DB set again" within 5 rule_uses "$DBSET"
check "the DB set holds db2's 10.9.1.6 alone, not the deleted db1's 10.9.1.5" within 5 members_are "$DBSET" "10.9.1.6"
check "endpoint db3 (10.9.1.7, DB)" ctl apply -f "$T/db3.yaml"
check "the DB set follows: 10.9.1.6 10.9.1.7" within 5 members_are "$DBSET" "10.9.1.6 10.9.1.7"
check "rule edits went incrementally" [ "$(metric 'weft_acl_compiles_total{kind="rules"}')" -ge 2 ]
check "weftd logged no ACL apply failure" sh -c "! grep -E 'acl: (apply|compile)' '$R/weftd.log'"
stop
check "weftd stopped cleanly (no sanitizer report)" sh -c "! grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error' -e 'LeakSanitizer' '$R/weftd.log'"
finish
