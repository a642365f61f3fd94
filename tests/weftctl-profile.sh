#!/bin/bash
# weftctl profile (classic calicoctl v1 rule syntax) and weftctl policy trace
# on the embedded store: the classic WEB/DB example, rule show output,
# remove by number and by text, --at, tags, bad rules (message checked,
# nothing written), traces over stored endpoints.
# Usage: weftctl-profile.sh WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
W=$1
S="file:$T/store"
ctl() { "$W" --store "$S" "$@"; }

revision() { ctl store check 2>/dev/null | sed -E 's/.*revision ([0-9]+).*/\1/'; }

# expect_err NAME RC MESSAGE CMD...: exit code RC, exactly the one stderr
# line "weftctl: MESSAGE", and nothing written.
expect_err() {
	local name=$1 want_rc=$2 msg=$3; shift 3
	local before after rc
	before=$(revision)
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	after=$(revision)
	if [ "$rc" = "$want_rc" ] && [ "$(cat "$T/err")" = "weftctl: $msg" ] && [ "$before" = "$after" ]; then
		pass "$name"
	else
		fail "$name (rc=$rc, want $want_rc; revision $before -> $after)"
		echo "     | want: weftctl: $msg"
		sed 's/^/     | got:  /' "$T/err"
	fi
}

# expect_out NAME CMD...: stdout equals the text in $T/want.
expect_out() {
	local name=$1; shift
	if "$@" >"$T/got" 2>"$T/err" && diff -u "$T/want" "$T/got" >"$T/diff"; then
		pass "$name"
	else
		fail "$name"
		sed 's/^/     | /' "$T/diff" "$T/err"
	fi
}

# --- the classic example --------------------------------------------------
check "create WEB" ctl profile WEB create
check "create DB" ctl profile DB create
cat >"$T/want" <<'EOT'
Profile WEB
Tags: WEB
Inbound rules:
   1 allow from tag WEB
Outbound rules:
   1 allow
EOT
expect_out "new profile has the v1 defaults" ctl profile WEB show
expect_err "create existing" 1 "profile WEB already exists; nothing written" ctl profile WEB create

check "WEB: remove default rule by number" ctl profile WEB rule remove inbound 1
check "WEB: allow from tag WEB" ctl profile WEB rule add inbound allow from tag WEB
check "WEB: allow tcp to ports 80,443" ctl profile WEB rule add inbound allow tcp to ports 80,443
check "DB: remove default rule by text" ctl profile DB rule remove inbound allow from tag DB
check "DB: allow tcp 5432 from WEB (rule as one word)" ctl profile DB rule add inbound "allow tcp from tag WEB to ports 5432"

cat >"$T/want" <<'EOT'
Inbound rules:
   1 allow from tag WEB
   2 allow tcp to ports 80,443
Outbound rules:
   1 allow
EOT
expect_out "WEB rule show" ctl profile WEB rule show
cat >"$T/want" <<'EOT'
Inbound rules:
   1 allow tcp from tag WEB to ports 5432
Outbound rules:
   1 allow
EOT
expect_out "DB rule show" ctl profile DB rule show
check "stored as the model's rule JSON" sh -c "\"$W\" --store '$S' get profile DB -o json | tr -d ' \n\t' | grep -qF '\"inboundRules\":[{\"action\":\"allow\",\"protocol\":\"tcp\",\"source\":{\"tag\":\"WEB\"},\"destination\":{\"ports\":[5432]}}]'"

# --- --at, remove by number and by text --------------------------------------
check "--at 1" ctl profile WEB rule add inbound --at 1 deny tcp from cidr 10.9.0.0/16 to ports 8000:8080,22
check "--at=3" ctl profile WEB rule add inbound --at=3 log icmp type 8 from not tag WEB
check "outbound at end" ctl profile WEB rule add outbound deny udp to not ports 53
cat >"$T/want" <<'EOT'
Inbound rules:
   1 deny tcp from cidr 10.9.0.0/16 to ports 8000:8080,22
   2 allow from tag WEB
   3 log icmp type 8 from not tag WEB
   4 allow tcp to ports 80,443
Outbound rules:
   1 allow
   2 deny udp to not ports 53
EOT
expect_out "rule show after --at" ctl profile WEB rule show
expect_err "--at out of range" 1 "--at 6: profile WEB has 4 inbound rules (give 1..5); nothing written" \
	ctl profile WEB rule add inbound --at 6 allow
expect_err "--at not a number" 2 "profile: rule add: --at x: expected one position 1, 2, ... (see weftctl profile --help)" \
	ctl profile WEB rule add inbound --at x allow
check "remove by text (other spelling)" ctl profile WEB rule remove inbound LOG ICMP type 8 from '!tag' WEB
check "remove by number" ctl profile WEB rule remove inbound 1
check "remove outbound by text" ctl profile WEB rule remove outbound deny udp to not ports 53
expect_err "remove missing number" 1 "profile WEB has no inbound rule 9 (it has 2); nothing written" \
	ctl profile WEB rule remove inbound 9
expect_err "remove missing text" 1 'profile WEB has no inbound rule "deny"; nothing written' \
	ctl profile WEB rule remove inbound deny
expect_err "remove 0" 2 'profile: rule remove: "0" is not a rule number (1, 2, ...) (see weftctl profile --help)' \
	ctl profile WEB rule remove inbound 0
# A stored rule with an empty list (no condition) is found by its words.
cat >"$T/empty.yaml" <<'EOT'
kind: Profile
metadata: {name: EMPTY}
spec:
  inboundRules: [{action: allow, protocol: tcp, destination: {ports: [], tag: X}}]
EOT
check "apply a rule with an empty list" ctl apply -f "$T/empty.yaml"
check "remove it by its words" ctl profile EMPTY rule remove inbound allow tcp to tag X
check "profile EMPTY has no inbound rules" sh -c "\"$W\" --store '$S' profile EMPTY rule show | grep -q 'none: all inbound traffic is denied'"
check "delete EMPTY" ctl profile EMPTY delete
cat >"$T/want" <<'EOT'
Inbound rules:
   1 allow from tag WEB
   2 allow tcp to ports 80,443
Outbound rules:
   1 allow
EOT
expect_out "back to the classic WEB" ctl profile WEB rule show

# --- tags ------------------------------------------------------------------
check "tag add" ctl profile WEB tag add FRONT
check "tag add again is a no-op" sh -c "\"$W\" --store '$S' profile WEB tag add FRONT | grep -q 'already has tag FRONT'"
expect_err "tag remove missing" 1 "profile WEB has no tag NOPE; nothing written" ctl profile WEB tag remove NOPE
expect_err "bad tag" 2 "WEB: spec.tags[2]: \"a b\" is not a valid tag (letters, digits, '_', '.' and '-', at most 253 characters); nothing written" \
	ctl profile WEB tag add "a b"
check "tag shown" sh -c "\"$W\" --store '$S' profile WEB show | grep -qx 'Tags: WEB, FRONT'"
check "tag remove" ctl profile WEB tag remove FRONT
check "tag gone" sh -c "\"$W\" --store '$S' profile WEB show | grep -qx 'Tags: WEB'"

# --- bad rules: exit 2, the word and the field named, nothing written -------
bad() { expect_err "bad rule: $1" 2 "rule: $2; nothing written" ctl profile WEB rule add inbound "${@:3}"; }
bad "typo" 'word 3 "fron": expected ipv4, ipv6, type, not, from, to or end of rule' allow tcp fron tag WEB
bad "action" 'word 1 "permit": expected allow, deny, log or pass' permit tcp
bad "pass in a profile" 'word 1 "pass": action: "pass" is only allowed in policies' pass
bad "port out of range" 'word 5 "80,99999": destination.ports[1]: "99999" is not a port (0..65535) or a port range (like "8000:8080")' \
	allow tcp to ports 80,99999
bad "port range reversed" 'word 5 "90:80": destination.ports[0]: "90:80" is not a port range: 90 is above 80' \
	allow tcp to ports 90:80
bad "ports without tcp/udp" 'word 4 "80": destination.ports: ports need protocol tcp, udp, sctp or udplite' \
	allow to ports 80
bad "missing value" 'word 4 "tag": missing value (a tag)' allow tcp from tag
bad "bad cidr" 'word 4 "10.0.0.0/33": source.nets[0]: "10.0.0.0/33" is not a CIDR' allow from cidr 10.0.0.0/33
bad "icmp type range" 'word 4 "300": icmp.type: 300 is out of range 0..255' allow icmp type 300
bad "type without icmp" 'word 3 "type": icmp: icmp needs protocol icmp or icmpv6' allow tcp type 8
bad "twice" 'word 5 "tag": tag given twice after from' allow from tag A tag B
bad "bad tag" "word 4 \"a/b\": source.tag: \"a/b\" is not a valid tag (letters, digits, '_', '.' and '-', at most 253 characters)" \
	allow from tag a/b
expect_err "empty rule" 2 "profile: rule add inbound: expected a rule (see weftctl profile --help)" ctl profile WEB rule add inbound
expect_err "bad direction" 2 'profile: rule add: expected inbound or outbound, not "in" (see weftctl profile --help)' \
	ctl profile WEB rule add in allow
expect_err "missing profile" 1 "profile NOPE not found" ctl profile NOPE rule add inbound allow
expect_err "bad profile name" 2 'profile: metadata.name: "a/b" is not a valid name (letters, digits, '"'"'_'"'"', '"'"'.'"'"' and '"'"'-'"'"', at most 253 characters)' \
	ctl profile a/b show
check "WEB unchanged by the bad rules" sh -c "\"$W\" --store '$S' profile WEB rule show | diff -u '$T/want' -"

# --- concurrent changes: every write is a CAS, none is lost -----------------
check "create CC" ctl profile CC create
for i in 1 2 3 4; do
	ctl profile CC rule add inbound allow tcp to ports $((1000 + i)) >/dev/null 2>"$T/cc-err-$i" &
done
wait
n_ok=0
for i in 1 2 3 4; do
	if [ -s "$T/cc-err-$i" ]; then
		grep -q "kept changing under us" "$T/cc-err-$i" || { fail "concurrent add $i: $(cat "$T/cc-err-$i")"; continue; }
	else
		n_ok=$((n_ok + 1))
	fi
done
n_rules=$(ctl profile CC rule show | grep -c 'allow tcp to ports 100[1-4]$')
[ "$n_rules" = "$n_ok" ] && [ "$n_ok" -ge 1 ] && pass "concurrent adds: $n_ok of 4 written, none lost" ||
	fail "concurrent adds: $n_ok succeeded but $n_rules rules stored"

# --- list, delete, help ------------------------------------------------------
check "list" sh -c "\"$W\" --store '$S' profile list | grep -Eq '^WEB +2 +1 +WEB$'"
check "create and delete" sh -c "\"$W\" --store '$S' profile TMP create && \"$W\" --store '$S' profile TMP delete"
expect_err "delete missing" 1 "profile TMP not found; nothing deleted" ctl profile TMP delete
check "profile --help" sh -c "\"$W\" profile --help | grep -q 'rule add (inbound|outbound)'"
check "policy --help" sh -c "\"$W\" policy --help | grep -q 'Exit codes: 0 allowed, 3 denied'"
check "profile in weftctl --help" sh -c "\"$W\" --help | grep -q 'policy trace'"

# --- policy trace on stored endpoints ----------------------------------------
cat >"$T/eps.yaml" <<'EOT'
kind: Endpoint
metadata: {name: web-1, labels: {role: web}}
spec: {node: node-1, hostIfname: wftweb1, mac: "ee:ee:ee:00:00:01", ipNetworks: [10.65.0.1/32], profiles: [WEB]}
---
kind: Endpoint
metadata: {name: web-2, labels: {role: web}}
spec: {node: node-2, hostIfname: wftweb2, mac: "ee:ee:ee:00:00:02", ipNetworks: [10.65.0.2/32], profiles: [WEB]}
---
kind: Endpoint
metadata: {name: db-1, labels: {role: db}}
spec: {node: node-2, hostIfname: wftdb1, mac: "ee:ee:ee:00:00:03", ipNetworks: [10.65.0.3/32], profiles: [DB]}
---
kind: Endpoint
metadata: {name: other-1}
spec: {node: node-1, hostIfname: wftother1, mac: "ee:ee:ee:00:00:04", ipNetworks: [10.65.0.4/32], profiles: [OTHER]}
---
kind: Profile
metadata: {name: OTHER}
EOT
check "apply endpoints" ctl apply -f "$T/eps.yaml"

# trace NAME RC PATTERN ARGS...: exit code RC and stdout matching every
# line of PATTERN (extended regexps, one per line).
trace() {
	local name=$1 want_rc=$2 pat=$3; shift 3
	local rc ok=1
	ctl policy trace "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if grep -q "not built in" "$T/err"; then
		echo "skip $name (the ACL compiler is not built in)"
		return
	fi
	[ "$rc" = "$want_rc" ] || ok=0
	while IFS= read -r p; do
		grep -Eq -- "$p" "$T/out" || { ok=0; echo "     | no line matches: $p"; }
	done <<<"$pat"
	if [ $ok = 1 ]; then
		pass "$name"
	else
		fail "$name (rc=$rc, want $want_rc)"
		sed 's/^/     | /' "$T/out" "$T/err"
	fi
}

trace "web -> db tcp/5432 allowed" 0 \
'^ALLOW tcp 10.65.0.1 -> 10.65.0.3 port 5432$
^  egress  web-1: allowed by profile WEB outbound rule 1
^  ingress db-1: allowed by profile DB inbound rule 1
rule: allow tcp from tag WEB to ports 5432$' web-1 db-1 tcp/5432
trace "web -> db by address" 0 '^ALLOW tcp 10.65.0.1 -> 10.65.0.3 port 5432$' 10.65.0.1 10.65.0.3 tcp/5432
trace "web -> db tcp/22 denied" 3 \
'^DENY tcp 10.65.0.1 -> 10.65.0.3 port 22$
^  ingress db-1: denied by .*profile DB' web-1 db-1 tcp/22
trace "other -> db tcp/5432 denied" 3 '^DENY
^  ingress db-1: denied' other-1 db-1 tcp/5432
trace "other -> web tcp/80 allowed" 0 '^ALLOW
^  ingress web-1: allowed by profile WEB inbound rule 2
rule: allow tcp to ports 80,443$' other-1 web-1 tcp/80
trace "outside -> web tcp/443 allowed" 0 '^ALLOW tcp 198.51.100.7 -> 10.65.0.1 port 443$
^  egress  198.51.100.7: not checked' 198.51.100.7 web-1 tcp/443
trace "outside -> web tcp/22 denied" 3 '^DENY' 198.51.100.7 web-1 tcp/22
trace "web -> web udp/53 allowed (tag)" 0 '^ALLOW udp
^  ingress web-1: allowed by profile WEB inbound rule 1
rule: allow from tag WEB$' web-2 web-1 udp/53
trace "db -> web icmp denied" 3 '^DENY icmp 10.65.0.3 -> 10.65.0.1' db-1 web-1 icmp/8

cat >"$T/policy.yaml" <<'EOT'
kind: Policy
metadata: {name: db-no-ping}
spec:
  order: 10
  selector: role == 'db'
  ingress:
  - {action: deny, protocol: icmp}
  - {action: pass}
EOT
check "apply a policy" ctl apply -f "$T/policy.yaml"
trace "policy denies icmp to db" 3 '^DENY icmp
^  ingress db-1: denied by policy db-no-ping ingress rule 1
rule: deny icmp$' web-1 db-1 icmp
trace "policy passes tcp/5432 to the profiles" 0 '^ALLOW
^  ingress db-1: allowed by profile DB inbound rule 1' web-1 db-1 tcp/5432

trace "web -> its node, failsafe tcp/22 allowed" 0 '^ALLOW tcp 10.65.0.1 -> 198.18.0.11 port 22$
tcp port 22 to the host is a failsafe port
^  ingress host:198.18.0.11: the node itself' web-1 host:198.18.0.11 tcp/22
trace "web -> its node tcp/8080 denied (no policy allow)" 3 '^DENY
needs a policy allow or a failsafe port' web-1 host:198.18.0.11 tcp/8080
trace "node -> web tcp/8080 allowed" 0 '^ALLOW
host-to-workload rule' host:198.18.0.11 web-1 tcp/8080
expect_err "trace bad host:" 1 '"host:nope": expected host:ADDR with the node address' ctl policy trace web-1 host:nope
expect_err "trace unknown endpoint" 1 '"nosuch" is neither an endpoint name nor an address' ctl policy trace nosuch db-1
expect_err "trace bad proto" 2 'policy: "tcp/x": bad port (see weftctl policy --help)' ctl policy trace web-1 db-1 tcp/x
expect_err "trace family mismatch" 1 'web-1 and fd00::1 have no address family in common' ctl policy trace web-1 fd00::1

# Source ports: a traced connection comes from an ephemeral port (32768)
# unless --sport says otherwise, as a client's does in the kernel.
check "profile SRV" ctl profile SRV create
check "SRV: no default inbound rule" ctl profile SRV rule remove inbound 1
check "SRV: allow tcp from ports 1024:65535 to ports 80" ctl profile SRV rule add inbound allow tcp from ports 1024:65535 to ports 80
check "SRV: allow tcp from not ports 1:1023 to ports 81" ctl profile SRV rule add inbound allow tcp from not ports 1:1023 to ports 81
cat >"$T/srv.yaml" <<'EOT'
kind: Endpoint
metadata: {name: srv-1}
spec: {node: node-2, hostIfname: wftsrv1, mac: "ee:ee:ee:00:00:05", ipNetworks: [10.65.0.5/32], profiles: [SRV]}
EOT
check "apply srv-1" ctl apply -f "$T/srv.yaml"
trace "web -> srv tcp/80 from an ephemeral port allowed" 0 \
'^ALLOW tcp 10.65.0.1 -> 10.65.0.5 port 80$
^  source port 32768 \(the default: an ephemeral port; --sport N for another\)$
^  ingress srv-1: allowed by profile SRV inbound rule 1
rule: allow tcp from ports 1024:65535 to ports 80$' web-1 srv-1 tcp/80
trace "web -> srv tcp/80 --sport 1000 denied" 3 \
'^DENY tcp 10.65.0.1 -> 10.65.0.5 port 80$
^  source port 1000 \(--sport\)$
^  ingress srv-1: denied by profile SRV inbound: no rule matched' web-1 srv-1 tcp/80 --sport 1000
trace "web -> srv tcp/81 (not ports 1:1023) allowed" 0 \
'^  ingress srv-1: allowed by profile SRV inbound rule 2' web-1 srv-1 tcp/81
trace "web -> srv tcp/81 --sport=99 denied" 3 '^  source port 99 \(--sport\)$' --sport=99 web-1 srv-1 tcp/81
trace "no source port line for icmp" 3 '^DENY icmp' web-1 srv-1 icmp
check "... indeed none" sh -c "! grep -q 'source port' '$T/out'"
expect_err "trace --sport with icmp" 2 'policy: --sport: icmp has no ports (tcp, udp, sctp or udplite do) (see weftctl policy --help)' \
	ctl policy trace --sport 5 web-1 srv-1 icmp
expect_err "trace --sport 0" 2 'policy: --sport: "0" is not a port 1..65535 (see weftctl policy --help)' \
	ctl policy trace --sport 0 web-1 srv-1
expect_err "trace --sport without a port" 2 'policy: --sport: expected a port (see weftctl policy --help)' \
	ctl policy trace web-1 srv-1 --sport

# 30 weftctl processes edit one profile at once: every compare-and-swap
# conflict is retried from a fresh read (for up to 5 s), so all succeed
# and no rule is lost.
check "profile RACE create" ctl profile RACE create
pids=()
for i in $(seq 30); do
	ctl profile RACE rule add inbound allow tcp to ports $((2000 + i)) >/dev/null 2>"$T/race.$i" &
	pids+=($!)
done
nfail=0
for i in $(seq 30); do wait "${pids[$((i - 1))]}" || nfail=$((nfail + 1)); done
check "30 parallel rule adds: all exit 0 ($nfail failed)" [ "$nfail" = 0 ]
check "... and all 30 rules are there" sh -c "test \"\$('$W' --store '$S' profile RACE rule show | grep -cE 'allow tcp to ports 20[0-9][0-9]\$')\" = 30"
cat "$T"/race.* | sed 's/^/     | /' | head -5

finish
