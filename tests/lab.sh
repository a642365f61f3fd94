#!/bin/bash
# The lab: up, what it made, up again over a killed run's leftovers, down
# removes everything; the root namespace is left exactly as it was.
# Usage: lab.sh DEPLOY_LAB BUILD_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
need_root
LAB=$1
export WEFT_BUILD=$2
P="wl$$-"
P=${P:0:8}
at_exit "'$LAB' down --prefix $P >/dev/null 2>&1"

root_state() { ip -o link show | awk -F': ' '{print $2}' | sort; ip -o addr show | awk '{print $2, $4}' | sort; ip route show; }
root_state >"$T/root.before"

check "lab up (3 nodes)" "$LAB" up --prefix "$P" --nodes 3
check "fabric and 3 node namespaces" sh -c "test \"\$(ip netns list | grep -cE '^${P}(fabric|node[0-9]+)( |\$)')\" = 4"
check "node2 has eth0 198.18.0.12" sh -c "ip -n ${P}node2 -o addr show dev eth0 | grep -q 198.18.0.12/24"
check "nodes registered in the store" sh -c "'$WEFT_BUILD/ctl/weftctl' --store file:/run/weft-lab/${P%-}/store get nodes | grep -cE '^node[123] ' | grep -q 3"
check "pool in the store" sh -c "'$WEFT_BUILD/ctl/weftctl' --store file:/run/weft-lab/${P%-}/store get pools | grep -q 10.65.0.0/16"
check "node1 reaches node3 across the fabric" ip netns exec "${P}node1" ping -c1 -W2 198.18.0.13

# A killed run leaves everything behind; up must still work over it.
check "lab up again over leftovers (2 nodes)" "$LAB" up --prefix "$P" --nodes 2
check "now fabric + 2 nodes" sh -c "test \"\$(ip netns list | grep -cE '^${P}(fabric|node[0-9]+)( |\$)')\" = 3"

check "lab down" "$LAB" down --prefix "$P"
check "no namespaces left" sh -c "! ip netns list | grep -qE '^${P}'"
check "no state dir left" test ! -e "/run/weft-lab/${P%-}"
root_state >"$T/root.after"
check "root namespace unchanged" diff -u "$T/root.before" "$T/root.after"

check "bad --nodes rejected" sh -c "! '$LAB' up --prefix $P --nodes 0 2>/dev/null"
check "bad --prefix rejected" sh -c "! '$LAB' up --prefix 'a b' 2>/dev/null"
finish
