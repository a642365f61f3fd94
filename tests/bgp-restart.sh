#!/bin/bash
# Restarts under traffic: an iperf3 TCP stream runs from a pod on node1 to a
# pod on node2 while
#   1. weftd on node1 is killed with SIGKILL and started again: its BIRD
#      child is orphaned and keeps running; the new weftd replaces it
#      (SIGKILL, so that peers keep our routes as stale: graceful restart)
#      with a BIRD started with -R, re-renders the same config and serves
#      CNI again;
#   2. BIRD on node2 is killed with SIGKILL: weftd restarts it (-R) after
#      its backoff.
# Each time the stream completes without error and without a stalled
# second, the block routes (proto bird) and the pods' routes (weft's
# protocol) never leave either kernel, and the sessions come back.
#   3. (scenario "crash") weftd on node1 and its BIRD are killed together,
#      as a container restart or a cgroup kill does, and weftd is started
#      again: the new BIRD must recover gracefully too (-R), or the node's
#      kernel loses the other nodes' blocks until the sessions are back.
#   4. (scenario "stop") weftd on node1 is stopped with SIGTERM and started
#      again, as for an upgrade: BIRD goes down for graceful restart, the
#      peer keeps the node's routes, the next BIRD recovers with -R.
# Usage: bgp-restart.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER [SCENARIO...]
# (scenarios: weftd, bird, crash, stop; default: weftd bird)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"
shift 4
scenarios=${*:-weftd bird}
want() { case " $scenarios " in *" $1 "*) return 0 ;; esac; return 1; }

if ! command -v iperf3 >/dev/null; then
	echo "skipped: iperf3 is not installed"
	exit 77
fi

t0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - t0) / 1000000)) ms"; }

check "fabric up: 2 nodes" fabric_up 2
check "node1: session Established" wait_established 1 1 30
check "node2: session Established" wait_established 2 1 30
A=$(pod_add 1 a) && pass "pod a on node1: $A" || fail "pod a on node1"
B=$(pod_add 2 b) && pass "pod b on node2: $B" || fail "pod b on node2"
BA=$(block_of "$A")
BB=$(block_of "$B")
check "node1: node2's block $BB" within 15 has_route 1 "$BB"
check "node2: node1's block $BA" within 15 has_route 2 "$BA"
check "a reaches b" can_ping a "$B"

# The routes that must never go: each node's route to the other's block
# (BIRD) and to its own pod (weft, protocol 81). Sampled every 0.1 s.
routes_ok() {
	ip -n "$(node_ns 1)" route show proto bird | grep -q "^$BB via" &&
		ip -n "$(node_ns 2)" route show proto bird | grep -q "^$BA via" &&
		ip -n "$(node_ns 1)" route show proto 81 | grep -q "^$A " &&
		ip -n "$(node_ns 2)" route show proto 81 | grep -q "^$B "
}
# (A subshell: it ends with the test even when the test is SIGKILLed, which
# no namespace clean-up would see.)
monitor() {
	while kill -0 $$ 2>/dev/null; do
		routes_ok || echo "$(date +%T.%N) missing" >>"$1"
		sleep 0.1
	done
}

# stream TAG: start iperf3 (server in b, one test; client in a for 10 s at
# a modest rate: the machine is shared). Sets $cpid.
stream() {
	ip netns exec "$(pod_ns b)" iperf3 -s -1 -B "$B" -p 5201 >"$T/iperf-s.$1" 2>&1 &
	for _ in $(seq 50); do
		ip netns exec "$(pod_ns b)" ss -ltnH "sport = :5201" 2>/dev/null | grep -q . && break
		sleep 0.05
	done
	ip netns exec "$(pod_ns a)" iperf3 -c "$B" -p 5201 -t 10 -i 1 -b 200M -J >"$T/iperf.$1" 2>&1 &
	cpid=$!
}
# stream_ok TAG: iperf3 succeeded, moved data in every one-second interval
# (no stall), and received about what it sent.
stream_ok() {
	local f="$T/iperf.$1"
	jq -e '.error == null' "$f" >/dev/null || { jq -r '.error' "$f"; return 1; }
	jq -e '[.intervals[].sum.bits_per_second] | length >= 9 and (min > 1000000)' "$f" >/dev/null ||
		{ jq -c '[.intervals[].sum.bits_per_second | floor]' "$f"; return 1; }
	jq -e '.end.sum_received.bytes > 0.9 * .end.sum_sent.bytes' "$f" >/dev/null
}
stream_summary() {
	jq -r '"\(.end.sum_received.bytes / 1048576 | floor) MiB in \(.end.sum_received.seconds * 10 | floor / 10) s, slowest second \([.intervals[].sum.bits_per_second] | min / 1000000 | floor) Mbit/s, retransmits \(.end.sum_sent.retransmits)"' "$T/iperf.$1" 2>/dev/null
}

# since I PROTO: the session's since, to see that the peer went through a
# restart (and kept the routes anyway).
since() { birdc -s "$(node_dir "$1")/bird.ctl" show protocols "$2" | awk -v p="$2" '$1 == p {print $5, $6}'; }
# start_monitor TAG / stop_monitor: the route sampler, by pid.
start_monitor() {
	monitor "$T/missing.$1" &
	mon=$!
	at_exit "kill $mon 2>/dev/null"
}
stop_monitor() {
	kill "$mon" 2>/dev/null
	wait "$mon" 2>/dev/null
}
# stream_end TAG WHAT: the stream started by `stream TAG` ended well across
# WHAT, the sessions came back, and the sampler saw no route missing.
stream_end() {
	local tag=$1 what=$2 rc
	wait "$cpid"
	rc=$?
	[ "$rc" = 0 ] && pass "iperf3 across $what: exit 0" || fail "iperf3 across $what: exit $rc"
	check "iperf3: no error, no stalled second ($(stream_summary "$tag"))" stream_ok "$tag"
	check "node1: session back" wait_established 1 1 30
	check "node2: session back" wait_established 2 1 30
	stop_monitor
	check "routes never left the kernels across $what" test ! -s "$T/missing.$tag"
	[ -s "$T/missing.$tag" ] && { wc -l <"$T/missing.$tag" | sed 's/^/     | samples missing: /'; head -3 "$T/missing.$tag" | sed 's/^/     | /'; }
	return 0
}

# --- 1. kill -9 weftd on node1 ------------------------------------------------------
scenario_weftd() {
conf1=$(md5sum <"$(node_dir 1)/bird.conf")
wpid=$(weftd_pid 1)
bold=$(bird_pid 1)
since2=$(since 2 Mesh_198_18_0_11)
sleep 1.1 # since has a one-second resolution
start_monitor weftd
stream weftd
sleep 2
check "kill -9 weftd on node1 (pid $wpid) during the stream" kill_weftd 1 KILL
sleep 0.3
# BIRD runs with -f as weftd's child, without a parent-death signal: it
# survives its parent, reparented.
if _alive "$bold"; then
	pass "node1: BIRD (pid $bold) survives weftd's SIGKILL (orphaned, ppid $(awk '{print $4}' /proc/"$bold"/stat))"
else
	fail "node1: BIRD (pid $bold) died with weftd"
fi
check "node1: the orphaned BIRD still answers" _bird_answers 1
sleep 1
check "weftd on node1 starts again" start_weftd 1
new_bird() {
	local p
	p=$(bird_pid 1)
	[ -n "$p" ] && [ "$p" != "$bold" ] && _alive "$p" && _bird_answers 1
}
check "node1: a new BIRD runs" within 10 new_bird
check "node1: the orphaned BIRD (pid $bold) is gone" within 5 sh -c "! kill -0 $bold 2>/dev/null || grep -q '^State:.*Z' /proc/$bold/status"
bnew=$(bird_pid 1)
check "node1: the new BIRD is the new weftd's child" sh -c "test \"\$(awk '{print \$4}' /proc/$bnew/stat)\" = '$(weftd_pid 1)'"
check "node1: the new BIRD runs with -R (graceful restart recovery)" sh -c "tr '\\0' ' ' </proc/$bnew/cmdline | grep -q ' -R'"
check "weftd log: replaced the left-over BIRD" grep -q "replacing pid $bold left over" "$(node_dir 1)/weftd.log"
wait "$cpid"
rc=$?
[ "$rc" = 0 ] && pass "iperf3 across the weftd restart: exit 0" || fail "iperf3 across the weftd restart: exit $rc"
check "iperf3: no error, no stalled second ($(stream_summary weftd))" stream_ok weftd
check "node1: session back" wait_established 1 1 30
check "node2: session back" wait_established 2 1 30
stop_monitor
check "routes never left the kernels during the restart" test ! -s "$T/missing.weftd"
[ -s "$T/missing.weftd" ] && head -5 "$T/missing.weftd" | sed 's/^/     | /'
s=$(since 2 Mesh_198_18_0_11)
[ "$s" != "$since2" ] && pass "node2: the session went down and up meanwhile ($since2 -> $s): graceful restart kept the routes" ||
	fail "node2: the session never went down"
check "node1: config re-rendered identical" sh -c "test \"\$(md5sum <'$(node_dir 1)/bird.conf')\" = '$conf1'"
check "node1: weftd serves CNI again (pod c)" pod_add 1 c
check "c reaches b" can_ping c "$B"
pod_del c
echo "     weftd restart checked after $(elapsed)"
}

# --- 2. kill -9 BIRD on node2 ----------------------------------------------------------
scenario_bird() {
start_monitor bird
bold=$(bird_pid 2)
stream bird
sleep 2
check "kill -9 BIRD on node2 (pid $bold) during the stream" kill -9 "$bold"
new_bird2() {
	local p
	p=$(bird_pid 2)
	[ -n "$p" ] && [ "$p" != "$bold" ] && _alive "$p" && _bird_answers 2
}
check "node2: weftd started a new BIRD" within 10 new_bird2
bnew=$(bird_pid 2)
check "node2: with -R" sh -c "tr '\\0' ' ' </proc/$bnew/cmdline | grep -q ' -R'"
check "node2: the same weftd (not restarted)" sh -c "test \"\$(awk '{print \$4}' /proc/$bnew/stat)\" = '$(weftd_pid 2)'"
check "weftd log: BIRD killed by signal 9, restarted" grep -q "bird (pid $bold) killed by signal 9" "$(node_dir 2)/weftd.log"
wait "$cpid"
rc=$?
[ "$rc" = 0 ] && pass "iperf3 across the BIRD restart: exit 0" || fail "iperf3 across the BIRD restart: exit $rc"
check "iperf3: no error, no stalled second ($(stream_summary bird))" stream_ok bird
check "node1: session back" wait_established 1 1 30
check "node2: session back" wait_established 2 1 30
stop_monitor
check "routes never left the kernels during the BIRD restart" test ! -s "$T/missing.bird"
[ -s "$T/missing.bird" ] && head -5 "$T/missing.bird" | sed 's/^/     | /'
check "a reaches b" can_ping a "$B"
echo "     BIRD restart checked after $(elapsed)"
}

# --- 3. weftd and its BIRD killed together ---------------------------------------------
scenario_crash() {
wpid=$(weftd_pid 1)
bold=$(bird_pid 1)
start_monitor crash
stream crash
sleep 2
check "kill -9 weftd (pid $wpid) and its BIRD (pid $bold) on node1 together" kill -9 "$wpid" "$bold"
kill_weftd 1 KILL 2>/dev/null # reaps it
check "node1: the BIRD is gone" within 5 sh -c "! kill -0 $bold 2>/dev/null || grep -q '^State:.*Z' /proc/$bold/status"
sleep 0.5
check "weftd on node1 starts again" start_weftd 1
bnew=$(bird_pid 1)
check "node1: a new BIRD, child of the new weftd" sh -c "test \"\$(awk '{print \$4}' /proc/$bnew/stat)\" = '$(weftd_pid 1)'"
# Its pid file was left behind (BIRD removes it on a clean exit only): the
# sign that its kernel routes are still there and -R must keep them.
check "node1: the new BIRD runs with -R (the old one did not exit cleanly)" sh -c "tr '\\0' ' ' </proc/$bnew/cmdline | grep -q ' -R'"
stream_end crash "the crash"
check "a reaches b" can_ping a "$B"
echo "     crash checked after $(elapsed)"
}

# --- 4. weftd on node1 stopped cleanly (SIGTERM) and started again --------------------
# As `systemctl restart` does for an upgrade: weftd stops its BIRD for
# graceful restart (no Cease), so node2 keeps node1's block as stale, and
# the next BIRD recovers with -R: the node's pods stay reachable.
scenario_stop() {
bold=$(bird_pid 1)
start_monitor stop
stream stop
sleep 2
check "SIGTERM weftd on node1 during the stream" kill_weftd 1 TERM
check "node1: its BIRD is gone" within 5 sh -c "! kill -0 $bold 2>/dev/null || grep -q '^State:.*Z' /proc/$bold/status"
check "weftd log: BIRD stopped for graceful restart" grep -q "bird: pid $bold stopped for graceful restart" "$(node_dir 1)/weftd.log"
check "node2: node1's block kept while node1 is down" has_route 2 "$BA"
sleep 1
check "weftd on node1 starts again" start_weftd 1
bnew=$(bird_pid 1)
check "node1: the new BIRD runs with -R" sh -c "tr '\\0' ' ' </proc/$bnew/cmdline | grep -q ' -R'"
stream_end stop "the clean restart"
check "a reaches b" can_ping a "$B"
echo "     clean restart checked after $(elapsed)"
}

for sc in $scenarios; do
	case "$sc" in
	weftd | bird | crash | stop) "scenario_$sc" ;;
	*) fail "unknown scenario $sc" ;;
	esac
done
fabric_finish
