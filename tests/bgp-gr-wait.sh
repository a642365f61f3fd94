#!/bin/bash
# Graceful restart recovery must not wait for a dead peer for long: node3
# dies for good, then weftd on node1 is killed and started again (its BIRD
# replaced by one started with -R). node1's BIRD keeps the old kernel
# routes while it recovers, and node2's live session comes back at once,
# but node3 will never send its End-of-RIB: until the recovery gives up
# (`graceful restart wait`, BIRD's default 240 s) the kernel channel takes
# no update at all. A block node2 claims meanwhile must still reach node1's
# kernel within a bounded time (the rendered wait plus the session start).
# Usage: bgp-gr-wait.sh WEFTD WEFT WEFTCTL TEST-BGP-DRIVER
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/fabric.sh"

t0=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - t0) / 1000000)) ms"; }

# /30 blocks: node2's fifth pod needs a new block.
cat >"$T/gr.yaml" <<EOF
kind: BGPConfig
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true}
---
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 30}
EOF
check "fabric up: 3 nodes, /30 blocks" fabric_up 3 "$T/gr.yaml"
check "node1: 2 Established sessions" wait_established 1 2 30
declare -A pip
for p in 1a 2a 3a; do
	pip[$p]=$(pod_add "${p:0:1}" "$p") && pass "pod $p: ${pip[$p]}" || fail "pod $p"
done
for j in 2 3; do
	check "node1: node$j's block" within 15 has_route 1 "$(block_of "${pip[${j}a]}" 30)"
done

# node3 dies for good: weftd and its BIRD.
b3=$(bird_pid 3)
check "node3 dies (weftd and BIRD, SIGKILL)" kill -9 "$(weftd_pid 3)" "$b3"
kill_weftd 3 KILL 2>/dev/null
# weftd on node1 crashes and comes back: its BIRD is replaced, -R.
b1=$(bird_pid 1)
check "kill -9 weftd on node1" kill_weftd 1 KILL
sleep 0.5
check "weftd on node1 starts again" start_weftd 1
check "node1: the new BIRD recovers (-R)" sh -c "p=\$(cat '$(node_dir 1)/bird.pid'); test \"\$p\" != '$b1' && tr '\\0' ' ' </proc/\$p/cmdline | grep -q ' -R'"
check "node1: session to node2 back" within 30 sh -c "birdc -s '$(node_dir 1)/bird.ctl' show protocols Mesh_198_18_0_12 | grep -q Established"
t1=$(date +%s)
# node2 claims a new block.
for p in 2b 2c 2d 2e; do
	pip[$p]=$(pod_add 2 "$p") && pass "pod $p: ${pip[$p]}" || fail "pod $p"
done
B2b=$(block_of "${pip[2e]}" 30)
check "node2's fifth pod is in a new block $B2b" test "$B2b" != "$(block_of "${pip[2a]}" 30)"
check "node1's BIRD has $B2b from node2" within 10 sh -c "birdc -s '$(node_dir 1)/bird.ctl' show route $B2b | grep -q Mesh_198_18_0_12"
if within 40 has_route 1 "$B2b"; then
	pass "node1's kernel got $B2b after $(($(date +%s) - t1)) s (the recovery did not wait for node3)"
else
	fail "node1's kernel still lacks $B2b after $(($(date +%s) - t1)) s: the recovery waits for the dead node3"
	birdc -s "$(node_dir 1)/bird.ctl" show protocols all weft_kernel | grep -E 'GR recovery|Routes' | sed 's/^/     | /'
fi
check "1a reaches 2e" can_ping 1a "${pip[2e]}"
echo "     done after $(elapsed)"
fabric_finish
