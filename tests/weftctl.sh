#!/bin/bash
# weftctl end to end on the embedded store: apply/create/replace/delete/get,
# all-or-nothing on bad manifests, store URL precedence, exit codes, --help.
# Usage: weftctl.sh WEFTCTL MANIFEST_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
W=$1
M=$2
S="file:$T/store"
ctl() { "$W" --store "$S" "$@"; }

# expect_fail NAME PATTERN CMD...: exit 1, one stderr line matching PATTERN,
# and nothing written (the store revision is unchanged).
expect_fail() {
	local name=$1 pat=$2; shift 2
	local before after rc
	before=$(ctl store check 2>/dev/null | sed -E 's/.*revision ([0-9]+).*/\1/')
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	after=$(ctl store check 2>/dev/null | sed -E 's/.*revision ([0-9]+).*/\1/')
	if [ "$rc" = 1 ] && grep -qE -- "$pat" "$T/err" && [ "$(wc -l <"$T/err")" = 1 ] && [ "$before" = "$after" ]; then
		pass "$name"
	else
		fail "$name (rc=$rc, revision $before -> $after)"
		sed 's/^/     | /' "$T/err"
	fi
}

check "apply yaml" ctl apply -f "$M/good.yaml"
check "apply json from stdin" sh -c "\"$W\" --store '$S' apply -f - < '$M/good.json'"
check "get ippools table" sh -c "\"$W\" --store '$S' get ippools | grep -E '^pool1 +10.65.0.0/16 +26'"
check "get pool by short name" sh -c "\"$W\" --store '$S' get pool pool2 | grep -q 10.66.0.0/16"
check "get -o json single" sh -c "\"$W\" --store '$S' get ippool pool1 -o json | grep -q '\"cidr\":[[:space:]]*\"10.65.0.0/16\"'"
check "get -o yaml list round-trips through apply" sh -c \
	"\"$W\" --store '$S' get ippools -o yaml > '$T/pools.yaml' && \"$W\" --store '$S' apply -f '$T/pools.yaml'"
check "get -o json list round-trips through apply" sh -c \
	"\"$W\" --store '$S' get nodes -o json > '$T/nodes.json' && \"$W\" --store '$S' replace -f '$T/nodes.json'"
check "defaults filled (profile rules)" sh -c "\"$W\" --store '$S' get profile web -o json | grep -q inboundRules"

expect_fail "create existing fails, nothing written" "pool1.*already exists" ctl create -f "$M/good.yaml"
cat >"$T/new-and-missing.yaml" <<EOT
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.65.0.0/16, blockSize: 27}
---
kind: IPPool
metadata: {name: nosuch}
spec: {cidr: 10.99.0.0/16}
EOT
expect_fail "replace missing fails, nothing written" "nosuch.*not found" ctl replace -f "$T/new-and-missing.yaml"
check "pool1 still blockSize 26" sh -c "\"$W\" --store '$S' get pool pool1 -o json | grep -q '\"blockSize\":[[:space:]]*26'"

expect_fail "bad yaml" "line [0-9]+" ctl apply -f "$M/bad-yaml.yaml"
expect_fail "unknown kind" "kind.*IPool" ctl apply -f "$M/bad-kind.yaml"
expect_fail "unknown field" "pool9: spec.colour: unknown field" ctl apply -f "$M/bad-field.yaml"
expect_fail "bad cidr" 'pool9: spec.cidr: "10.65.0.0/33" is not a CIDR' ctl apply -f "$M/bad-cidr.yaml"
expect_fail "blockSize out of range" "pool9: spec.blockSize: .*19.*20" ctl apply -f "$M/bad-blocksize.yaml"
expect_fail "duplicate names" "ok1.*duplicate|duplicate.*ok1" ctl apply -f "$M/bad-duplicate.yaml"
# IPPools must not overlap (IPAM claims no block from overlapping pools).
cat >"$T/overlap.yaml" <<EOT
kind: IPPool
metadata: {name: pool9}
spec: {cidr: 10.65.4.0/24, blockSize: 28}
EOT
expect_fail "apply of a pool overlapping a stored one" \
	"^weftctl: pool9: spec.cidr: 10.65.4.0/24 overlaps IPPool pool1 \(10.65.0.0/16\); nothing written" \
	ctl apply -f "$T/overlap.yaml"
expect_fail "create of a pool overlapping a stored one" "pool9: spec.cidr: .*overlaps IPPool pool1" \
	ctl create -f "$T/overlap.yaml"
cat >"$T/overlap2.yaml" <<EOT
kind: IPPool
metadata: {name: ok1}
spec: {cidr: 10.98.0.0/16}
---
kind: IPPool
metadata: {name: ok2}
spec: {cidr: 10.98.128.0/17}
EOT
expect_fail "two overlapping pools in one manifest" "ok1: spec.cidr: 10.98.0.0/16 overlaps IPPool ok2" \
	ctl apply -f "$T/overlap2.yaml"
cat >"$T/move.yaml" <<EOT
kind: IPPool
metadata: {name: pool2}
spec: {cidr: 10.67.0.0/16}
---
kind: IPPool
metadata: {name: pool8}
spec: {cidr: 10.66.0.0/16}
EOT
check "a pool may take the cidr another pool of the manifest leaves" ctl apply -f "$T/move.yaml"
expect_fail "moving it back while pool8 holds it" "pool2: spec.cidr: 10.66.0.0/16 overlaps IPPool pool8" \
	ctl apply -f "$M/good.json"
check "pool8 gone again" ctl delete ippool pool8
check "pool2 back" ctl apply -f "$M/good.json"
check "ok1 from the bad manifests was never written" sh -c "! \"$W\" --store '$S' get pool ok1 2>/dev/null"

expect_fail "delete missing fails, nothing deleted" "nosuch.*not found" ctl delete ippool pool1 nosuch
check "delete by name" ctl delete ippool pool2
check "deleted pool is gone" sh -c "! \"$W\" --store '$S' get pool pool2 2>/dev/null"
check "delete -f" ctl delete -f "$M/good.yaml"
check "no pools left after delete -f" sh -c "test \"\$(\"$W\" --store '$S' get pools | wc -l)\" = 1"

# A Policy's order is any number: the table prints integers as integers and
# everything else, 1e300 included, as a number that reads back the same.
cat >"$T/orders.yaml" <<EOT
kind: Policy
metadata: {name: huge}
spec: {order: 1e300}
---
kind: Policy
metadata: {name: past-int64}
spec: {order: -9.3e18}
---
kind: Policy
metadata: {name: fine}
spec: {order: 0.1000001}
---
kind: Policy
metadata: {name: plain}
spec: {order: 9000000000000000000}
EOT
check "apply policies with odd orders" ctl apply -f "$T/orders.yaml"
ctl get policies >"$T/policies" 2>&1
if grep -qE '^huge +1e\+300 ' "$T/policies" && grep -qE '^past-int64 +-9.3e\+18 ' "$T/policies" &&
	grep -qE '^fine +0.1000001 ' "$T/policies" && grep -qE '^plain +9000000000000000000 ' "$T/policies"; then
	pass "get policies prints every order as it is"
else
	fail "get policies prints every order as it is"; sed 's/^/     | /' "$T/policies"
fi
check "delete the policies" ctl delete -f "$T/orders.yaml"

# Store URL precedence: --store, then WEFT_STORE, then the config file.
mkdir -p "$T/a" "$T/b" "$T/c"
printf 'store: file:%s/c\n' "$T" >"$T/weftctl.yaml"
check "config file store" sh -c "WEFT_STORE= \"$W\" --config '$T/weftctl.yaml' apply -f '$M/good.yaml' && test -e '$T/c/store.log'"
check "WEFT_STORE beats config" sh -c "WEFT_STORE=file:$T/b \"$W\" --config '$T/weftctl.yaml' apply -f '$M/good.yaml' && test -e '$T/b/store.log'"
check "--store beats WEFT_STORE" sh -c "WEFT_STORE=file:$T/b \"$W\" --store file:$T/a apply -f '$M/good.yaml' && test -e '$T/a/store.log'"
check "WEFT_CONFIG" sh -c "WEFT_STORE= WEFT_CONFIG='$T/weftctl.yaml' \"$W\" get pools | grep -q pool1"
printf 'stor: file:/x\n' >"$T/bad.yaml"
expect_fail "config unknown key" "stor: unknown field" "$W" --config "$T/bad.yaml" get pools
expect_fail "bad store url" "unknown scheme" "$W" --store "bogus://x" get pools

# Exit codes and help.
"$W" >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] && pass "no command exits 2" || fail "no command exits 2 (rc=$rc)"
"$W" --store "$S" get 2>/dev/null; rc=$?
[ "$rc" = 2 ] && pass "get without kind exits 2" || fail "get without kind exits 2 (rc=$rc)"
expect_fail "unknown kind on get" 'unknown kind "frob"' ctl get frob
for c in apply create replace delete get store version; do
	check "$c --help" sh -c "\"$W\" $c --help | grep -q Usage"
done
check "--help" sh -c "\"$W\" --help | grep -q Commands"

finish
