# tests/lib/etcd.sh - start and stop real etcd servers on loopback for tests
# and benchmarks. Source it (after tests/lib/common.sh, or alone: it then
# installs its own exit trap).
#
#   etcd_start NAME [tls]   start etcd NAME on free 127.0.0.1 ports, wait until
#                           healthy. Sets ETCD_<NAME>_URL (etcd://127.0.0.1:PORT or
#                           etcds://...?ca=..&cert=..&key=..), ETCD_<NAME>_PORT,
#                           ETCD_<NAME>_PID, ETCD_<NAME>_DIR.
#   etcd_stop NAME          kill it by pid and wait (data kept)
#   etcd_restart NAME       start it again on the same ports with the same data
#   etcd_curl NAME PATH BODY   POST to its JSON gateway (with the TLS client cert)
#   etcd_compact NAME REV   compact its history up to REV
#   etcd_free_port          print a TCP port nobody listens on at the moment
#   etcd_hang_listener      start a loopback listener that accepts connections and
#                           never answers; sets HANG_PORT and HANG_PID
#   etcd_tls_certs DIR      make ca.pem, server.pem/-key.pem (IP SAN 127.0.0.1),
#                           client.pem/-key.pem with openssl in DIR
#
# Everything lives under one scratch dir, $ETCD_SCRATCH; every process started
# is stopped by pid on exit. Scratch dirs of killed earlier runs are cleaned at
# source time (their processes are killed by pid only if their command line
# names that dir, so a recycled pid is never hit).

ETCD_BIN=${ETCD_BIN:-etcd}

_etcd_clean_leftovers() {
	local d owner pid
	for d in /tmp/weft-etcd.*; do
		[ -d "$d" ] || continue
		owner=$(cat "$d/owner" 2>/dev/null || echo 0)
		if [ "$owner" != 0 ] && kill -0 "$owner" 2>/dev/null; then
			continue
		fi
		for pid in $(cat "$d"/*.pid 2>/dev/null); do
			if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$d"; then
				kill -9 "$pid" 2>/dev/null || true
			fi
		done
		rm -rf "$d"
	done
}
_etcd_clean_leftovers

ETCD_SCRATCH=$(mktemp -d /tmp/weft-etcd.XXXXXX)
echo $$ >"$ETCD_SCRATCH/owner"

_etcd_cleanup() {
	local f pid
	for f in "$ETCD_SCRATCH"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			for _ in 1 2 3 4 5 6 7 8 9 10; do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$ETCD_SCRATCH"
}

if declare -F at_exit >/dev/null; then
	at_exit _etcd_cleanup
else
	trap _etcd_cleanup EXIT
	trap 'exit 130' INT TERM
fi

etcd_free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

etcd_tls_certs() {
	local d=$1
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=weft-test-ca" \
			-keyout ca-key.pem -out ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
			-extfile server.ext -out server.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=weft-client" -keyout client-key.pem -out client.csr
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
			-extfile client.ext -out client.pem
	) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
}

# _etcd_var NAME FIELD: the value of ETCD_<NAME>_<FIELD>.
_etcd_var() { local v="ETCD_${1}_$2"; printf '%s' "${!v:-}"; }

_etcd_launch() {
	local name=$1 d port peer tls scheme
	d=$(_etcd_var "$name" DIR)
	port=$(_etcd_var "$name" PORT)
	peer=$(_etcd_var "$name" PEER_PORT)
	tls=$(_etcd_var "$name" TLS)
	scheme=http
	local extra=()
	if [ "$tls" = 1 ]; then
		scheme=https
		extra=(--cert-file "$d/certs/server.pem" --key-file "$d/certs/server-key.pem"
			--client-cert-auth --trusted-ca-file "$d/certs/ca.pem")
	fi
	"$ETCD_BIN" --name default --data-dir "$d/data" \
		--listen-client-urls "$scheme://127.0.0.1:$port" \
		--advertise-client-urls "$scheme://127.0.0.1:$port" \
		--listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "default=http://127.0.0.1:$peer" \
		--initial-cluster-state new "${extra[@]}" >>"$d/etcd.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$ETCD_SCRATCH/etcd-$name.pid"
	printf -v "ETCD_${name}_PID" '%s' "$pid"
	# Healthy = the gateway answers a range (the store revision is known).
	local i
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "etcd $name exited; log:" >&2
			tail -20 "$d/etcd.log" >&2
			return 1
		fi
		if etcd_curl "$name" /v3/kv/range '{"key":"AA=="}' 2>/dev/null | grep -q '"revision"'; then
			return 0
		fi
		sleep 0.2
	done
	echo "etcd $name did not become healthy in 20 s; log:" >&2
	tail -20 "$d/etcd.log" >&2
	return 1
}

etcd_start() {
	local name=$1 tls=0 d
	[ "${2:-}" = tls ] && tls=1
	d="$ETCD_SCRATCH/$name"
	mkdir -p "$d"
	printf -v "ETCD_${name}_DIR" '%s' "$d"
	printf -v "ETCD_${name}_TLS" '%s' "$tls"
	printf -v "ETCD_${name}_PORT" '%s' "$(etcd_free_port)"
	printf -v "ETCD_${name}_PEER_PORT" '%s' "$(etcd_free_port)"
	local port
	port=$(_etcd_var "$name" PORT)
	if [ "$tls" = 1 ]; then
		etcd_tls_certs "$d/certs" || return 1
		printf -v "ETCD_${name}_URL" '%s' \
			"etcds://127.0.0.1:$port?ca=$d/certs/ca.pem&cert=$d/certs/client.pem&key=$d/certs/client-key.pem"
	else
		printf -v "ETCD_${name}_URL" '%s' "etcd://127.0.0.1:$port"
	fi
	_etcd_launch "$name"
}

etcd_stop() {
	local name=$1 pid
	pid=$(_etcd_var "$name" PID)
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$ETCD_SCRATCH/etcd-$name.pid"
}

etcd_restart() {
	etcd_stop "$1"
	_etcd_launch "$1"
}

etcd_curl() {
	local name=$1 path=$2 body=$3 d port
	d=$(_etcd_var "$name" DIR)
	port=$(_etcd_var "$name" PORT)
	if [ "$(_etcd_var "$name" TLS)" = 1 ]; then
		curl -sS --max-time 5 --cacert "$d/certs/ca.pem" --cert "$d/certs/client.pem" \
			--key "$d/certs/client-key.pem" "https://127.0.0.1:$port$path" -d "$body"
	else
		curl -sS --max-time 5 --noproxy '*' "http://127.0.0.1:$port$path" -d "$body"
	fi
}

etcd_compact() {
	etcd_curl "$1" /v3/kv/compaction "{\"revision\":\"$2\",\"physical\":true}"
}

etcd_hang_listener() {
	HANG_PORT=$(etcd_free_port)
	# The script names the scratch dir so that leftover cleanup recognizes it.
	python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)  # accepted, never read from or answered
' "$HANG_PORT" "$ETCD_SCRATCH" >/dev/null 2>&1 &
	HANG_PID=$!
	echo "$HANG_PID" >"$ETCD_SCRATCH/hang-$HANG_PORT.pid"
	etcd_wait_port "$HANG_PORT" "hang listener"
}

# etcd_wait_port PORT WHAT: wait up to 5 s until 127.0.0.1:PORT accepts.
etcd_wait_port() {
	local i
	for ((i = 0; i < 50; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "$2 did not start" >&2
	return 1
}
