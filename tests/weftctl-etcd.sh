#!/bin/bash
# weftctl writes to an etcd that fails: a write whose outcome is unknown (the
# request was sent and no answer came, or etcd answered 5xx such as "request
# timed out") is reported as such, never as "nothing written"; a write that
# certainly did not happen (connection refused, a 4xx, a 5xx saying etcd
# refused it before proposing it: "no leader", "raft proposal dropped")
# still says "nothing written". Fake servers stand in for etcd (python3): no etcd needed.
# Usage: weftctl-etcd.sh WEFTCTL
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/etcd.sh"
W=$1

cat >"$T/profile.yaml" <<EOT
kind: Profile
metadata: {name: web}
EOT

# fake_etcd STATUS BODY: an HTTP server that answers every POST with STATUS
# and BODY; sets FAKE_PORT. Stopped by pid on exit (lib/etcd.sh).
fake_etcd() {
	FAKE_PORT=$(etcd_free_port)
	python3 -c 'import sys, http.server
status, body = int(sys.argv[2]), sys.argv[3].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$FAKE_PORT" "$1" "$2" "$ETCD_SCRATCH" >/dev/null 2>&1 &
	echo $! >"$ETCD_SCRATCH/fake-$FAKE_PORT.pid"
	etcd_wait_port "$FAKE_PORT" "fake etcd"
}

# expect NAME unknown|nothing URL CMD...: weftctl --store URL CMD exits 1
# with one stderr line that says the outcome is unknown (and not "nothing
# written"), or that nothing was written.
expect() {
	local name=$1 want=$2 url=$3 rc ok=0; shift 3
	"$W" --store "$url" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$want" = unknown ]; then
		grep -q "may or may not have been applied); check with weftctl get$" "$T/err" &&
			! grep -q "nothing written" "$T/err" && ok=1
	else
		grep -q "^weftctl: store write failed, nothing written: " "$T/err" &&
			! grep -q "may or may not" "$T/err" && ok=1
	fi
	if [ "$rc" = 1 ] && [ "$ok" = 1 ] && [ "$(wc -l <"$T/err")" = 1 ]; then
		pass "$name"
	else
		fail "$name (rc=$rc)"; sed 's/^/     | /' "$T/err"
	fi
}

etcd_hang_listener || { fail "start the hanging listener"; finish; }
HANG="etcd://127.0.0.1:$HANG_PORT?timeout_ms=1000"
expect "apply, no answer: outcome unknown" unknown "$HANG" apply -f "$T/profile.yaml"
expect "profile create, no answer: outcome unknown" unknown "$HANG" profile db create

fake_etcd 503 '{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}' ||
	{ fail "start the fake etcd"; finish; }
expect "apply, 503 request timed out: outcome unknown" unknown "etcd://127.0.0.1:$FAKE_PORT?timeout_ms=2000" \
	apply -f "$T/profile.yaml"
grep -q "etcdserver: request timed out" "$T/err" && pass "etcd's message is kept" || fail "etcd's message is kept"

# Refused before it was proposed: certainly not applied.
fake_etcd 503 '{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}' ||
	{ fail "start the fake etcd"; finish; }
expect "apply, 503 no leader: nothing written" nothing "etcd://127.0.0.1:$FAKE_PORT?timeout_ms=2000" \
	apply -f "$T/profile.yaml"
grep -q "etcdserver: no leader" "$T/err" && pass "no leader: etcd's message is kept" ||
	fail "no leader: etcd's message is kept"
fake_etcd 500 '{"error":"raft proposal dropped","code":2,"message":"raft proposal dropped"}' ||
	{ fail "start the fake etcd"; finish; }
expect "apply, 500 raft proposal dropped: nothing written" nothing "etcd://127.0.0.1:$FAKE_PORT?timeout_ms=2000" \
	apply -f "$T/profile.yaml"

fake_etcd 400 '{"error":"etcdserver: request is too large","code":3,"message":"etcdserver: request is too large"}' ||
	{ fail "start the fake etcd"; finish; }
expect "apply, 400 request too large: nothing written" nothing "etcd://127.0.0.1:$FAKE_PORT?timeout_ms=2000" \
	apply -f "$T/profile.yaml"

DEAD=$(etcd_free_port)
expect "apply, connection refused: nothing written" nothing "etcd://127.0.0.1:$DEAD?timeout_ms=1000" \
	apply -f "$T/profile.yaml"
finish
