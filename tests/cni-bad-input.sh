#!/bin/bash
# Bad input to the weft and weft-ipam plugins: each case gives the exact
# CNI error code, a message naming the field or variable, a non-zero exit,
# and no state change (store revision, kernel objects).
# Usage: cni-bad-input.sh WEFTD WEFT WEFT_IPAM WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/cni.sh" "$@"

make_ns n1 && make_ns p1 || { fail "namespaces"; finish; }
apply_pool pool1 10.65.0.0/16 || { fail "apply pool"; finish; }
apply_pool tiny 10.99.0.0/30 30 || { fail "apply pool tiny"; finish; }
start_weftd n1 || { fail "weftd start"; finish; }
SOCK=$T/run-n1/weftd.sock

# conf NAME JSON-BODY: write $T/NAME.json, a config with the socket filled in.
conf() { printf '%s\n' "$2" | sed "s|@SOCK@|$SOCK|" >"$T/$1.json"; }
base='"cniVersion": "1.0.0", "name": "net1", "type": "weft", "weftd_socket": "@SOCK@"'

# expect NAME CODE MSG-REGEX PLUGIN CONF [VAR=VAL...] (ADD in pod p1 unless
# CNI_* overrides are given): the error and no state change.
expect() {
	local name=$1 code=$2 pat=$3 plugin=$4 cf=$5 before after links
	shift 5
	before=$(store_rev)
	cni "$plugin" ADD n1 p1 cid-bad eth0 "$T/$cf.json" "$@"
	after=$(store_rev)
	links=$(weft_links n1)
	if [ "$CNI_RC" != 0 ] && jq -e --argjson c "$code" --arg p "$pat" \
		'.code == $c and (.msg | test($p)) and (.cniVersion | type) == "string"' "$T/cni.out" >/dev/null &&
		[ "$before" = "$after" ] && [ -z "$links" ] && ! ip -n "${WC}p1" link show eth0 >/dev/null 2>&1; then
		pass "$name"
	else
		fail "$name (exit $CNI_RC, store revision $before -> $after, links: ${links:-none})"
		sed 's/^/     | /' "$T/cni.out"
	fi
}

conf malformed '{"cniVersion": "1.0.0", "name": "net1", "type": "weft",'
expect "malformed JSON: code 6" 6 'line|column|offset' "$WEFT" malformed
expect "malformed JSON (weft-ipam): code 6" 6 'line|column|offset' "$WEFT_IPAM" malformed
# A NUL in a string: cJSON would read the name as "net1" and the ADD go
# through for another network than the one configured.
conf nul-name '{"cniVersion": "1.0.0", "name": "net1\u0000evil", "type": "weft", "weftd_socket": "@SOCK@"}'
expect "NUL in a string: code 6" 6 '^the network configuration at line 1, column [0-9]+ \(byte [0-9]+\): name: NUL characters \(\\u0000\) are not supported$' "$WEFT" nul-name
expect "NUL in a string (weft-ipam): code 6" 6 '^the network configuration at line 1, column [0-9]+ \(byte [0-9]+\): name: NUL characters' "$WEFT_IPAM" nul-name
conf notobject '[1, 2]'
expect "not an object: code 6" 6 'object' "$WEFT" notobject
conf mtu-type "{$base, \"mtu\": \"1400\"}"
expect "wrong type (mtu string): code 7" 7 '^mtu' "$WEFT" mtu-type
conf profiles-type "{$base, \"profiles\": \"web\"}"
expect "wrong type (profiles not a list): code 7" 7 '^profiles' "$WEFT" profiles-type
conf unknown-key "{$base, \"colour\": \"blue\"}"
expect "unknown key: code 2" 2 'colour' "$WEFT" unknown-key
conf bad-mode "{$base, \"mode\": \"bridge\"}"
expect "unknown mode: code 7" 7 '^mode' "$WEFT" bad-mode
conf no-master "{$base, \"mode\": \"macvlan\", \"ipam\": {\"type\": \"weft-ipam\", \"range\": \"192.168.91.0/24\"}}"
expect "macvlan without master: code 7" 7 'master' "$WEFT" no-master
conf bad-cidr "{$base, \"mode\": \"macvlan\", \"master\": \"eth1\", \"ipam\": {\"type\": \"weft-ipam\", \"range\": \"10.0.0.0/33\"}}"
expect "bad CIDR: code 7" 7 '^ipam\.range' "$WEFT" bad-cidr
conf outside "{$base, \"mode\": \"macvlan\", \"master\": \"eth1\", \"ipam\": {\"type\": \"weft-ipam\", \"range\": \"192.168.91.0/24\", \"range_start\": \"192.168.92.10\"}}"
expect "range_start outside the subnet: code 7" 7 '^ipam\.range_start' "$WEFT" outside
conf outside2 "{$base, \"mode\": \"macvlan\", \"master\": \"eth1\", \"ipam\": {\"type\": \"weft-ipam\", \"range\": \"192.168.91.0/24\", \"exclude\": [\"10.1.1.1\"]}}"
expect "exclude outside the subnet: code 7" 7 '^ipam\.exclude' "$WEFT" outside2
conf bad-version "{\"cniVersion\": \"0.2.0\", \"name\": \"net1\", \"type\": \"weft\"}"
expect "cniVersion 0.2.0: code 1" 1 'cniVersion|0\.2\.0' "$WEFT" bad-version

conf good "{$base}"
expect "missing CNI_CONTAINERID: code 4" 4 'CNI_CONTAINERID' "$WEFT" good CNI_CONTAINERID=
expect "missing CNI_NETNS: code 4" 4 'CNI_NETNS' "$WEFT" good CNI_NETNS=
# A FIFO where the namespace should be: weftd must neither block on it
# (it opened it for reading, and the whole daemon waited for a writer)
# nor take it. A plain file and another kind of namespace are no network
# namespace either.
mkfifo "$T/fifo"
: >"$T/plain"
expect "CNI_NETNS a FIFO: code 4 at once" 4 'CNI_NETNS: .* is not a network namespace' "$WEFT" good CNI_NETNS="$T/fifo"
expect "CNI_NETNS a plain file: code 4" 4 'CNI_NETNS: .* is not a network namespace' "$WEFT" good CNI_NETNS="$T/plain"
expect "CNI_NETNS a mount namespace: code 4" 4 'CNI_NETNS: .* is not a network namespace' "$WEFT" good CNI_NETNS=/proc/self/ns/mnt
expect "missing CNI_IFNAME: code 4" 4 'CNI_IFNAME' "$WEFT" good CNI_IFNAME=
expect "bad CNI_IFNAME: code 4" 4 'CNI_IFNAME' "$WEFT" good CNI_IFNAME=a/b
expect "malformed CNI_ARGS: code 4" 4 'CNI_ARGS' "$WEFT" good CNI_ARGS=K8S_POD_NAME
expect "unknown CNI_COMMAND: code 4" 4 'CNI_COMMAND' "$WEFT" good CNI_COMMAND=FROB

conf nopool "{$base, \"ipam\": {\"type\": \"weft-ipam\", \"ipv4_pools\": [\"nosuch\"]}}"
expect "unknown pool: code 102" 102 'ipv4_pools.*nosuch|nosuch' "$WEFT" nopool

# A static address in use, and the exhausted pool.
conf tiny "{$base, \"ipam\": {\"type\": \"weft-ipam\", \"ipv4_pools\": [\"tiny\"]}}"
for i in 1 2 3 4; do
	cni "$WEFT_IPAM" ADD n1 p1 "fill-$i" eth0 "$T/tiny.json"
	[ "$CNI_RC" = 0 ] || { fail "filling pool tiny ($i)"; sed 's/^/     | /' "$T/cni.out"; }
done
check "tiny pool full (4 used)" sh -c "test \"\$(ctl() { '$WEFTCTL' --store '$S' \"\$@\"; }; ctl ipam show -o json | jq '.pools[] | select(.name == \"tiny\") | .used')\" = 4"
expect "exhausted pool: code 101" 101 'ipv4_pools|tiny|free|exhaust' "$WEFT" tiny
expect "static address in use: code 103" 103 '10\.99\.0\.1' "$WEFT" good CNI_ARGS=IP=10.99.0.1
expect "static address outside every pool: code 7" 7 '10\.250\.0\.1' "$WEFT" good CNI_ARGS=IP=10.250.0.1

# A failure after IPAM (the pod namespace does not exist): rolled back.
used=$(ipam_used)
cni "$WEFT" ADD n1 nosuchpod cid-bad eth0 "$T/good.json"
check "dataplane failure: error, non-zero exit" sh -c "test $CNI_RC != 0 && jq -e '.code == 100' '$T/cni.out' >/dev/null"
check "dataplane failure: address released again" test "$(ipam_used)" = "$used"
check "dataplane failure: no record" sh -c "test \"\$('$WEFTCTL' --store '$S' get endpoints -o json | jq '.items | length')\" = 0"
check "dataplane failure: no links" test -z "$(weft_links n1)"

# weft-ipam rules.
conf ipam-noipam '{"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "master": "eth1"}'
expect "weft-ipam without ipam: code 7" 7 'ipam' "$WEFT_IPAM" ipam-noipam
stop_weftd n1

# weftd's socket path taken by a file that is no socket: weftd refuses to
# start and leaves the file (it used to remove whatever refused a connect).
make_ns n9 || fail "namespace n9"
mkdir -p "$T/run-n9" && echo keep >"$T/run-n9/weftd.sock"
timeout 20 ip netns exec "${WC}n9" "$WEFTD" --node n9 --store "$S" --run-dir "$T/run-n9" --no-bgp >"$T/weftd-n9.log" 2>&1
rc=$?
check "weftd: a plain file at its socket path is refused, not removed" \
	sh -c "test $rc != 0 && test $rc != 124 && grep -q 'is not a socket' '$T/weftd-n9.log' && test \"\$(cat '$T/run-n9/weftd.sock')\" = keep"
finish
