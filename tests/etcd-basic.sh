#!/bin/bash
# etcd-basic.sh LIVE - the etcd backend's API and watch against a real etcd:
# every operation, a watcher in another process, a large catch-up and
# -ESTALE after a compaction. LIVE is the test-etcd-live binary.
LIVE=$1
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/etcd.sh"

etcd_start A || { fail "start etcd"; finish; }
URL="$ETCD_A_URL?timeout_ms=2000"

check "API without a prefix" "$LIVE" "$URL" basic
check "API with prefix=/weft" "$LIVE" "$URL&prefix=/weft" basic

# A watcher in another process sees writes of this one, in order.
"$LIVE" "$URL" watch /x/ 3 10000 >"$T/watch.out" 2>&1 &
wpid=$!
for _ in $(seq 50); do grep -q ready "$T/watch.out" && break; sleep 0.1; done
"$LIVE" "$URL" put /x/1 one >/dev/null
"$LIVE" "$URL" put /y/ignored no >/dev/null
"$LIVE" "$URL" put /x/2 two >/dev/null
"$LIVE" "$URL" put /x/1 uno >/dev/null
if wait "$wpid" && [ "$(awk '$1 == "PUT" {print $2 "=" $3}' "$T/watch.out" | tr '\n' ' ')" = "/x/1=one /x/2=two /x/1=uno " ]; then
	pass "watch in another process"
else
	fail "watch in another process"; sed 's/^/     | /' "$T/watch.out"
fi

# A watch from the past gets its history as one JSON line per batch of
# revisions, here about 28 MB: it must be read in linear time. Scanning the
# whole line again for each chunk took 16 s at -O2 and minutes with ASan.
check "catch-up of 20 x 1 MiB values within 10 s" "$LIVE" "$URL" catchup 20 1024 10000

# Compact past some history: a watch from before it is -ESTALE.
rev=$("$LIVE" "$URL" put /x/3 three)
"$LIVE" "$URL" put /x/3 trois >/dev/null
etcd_compact A "$rev" >/dev/null
check "watch from a compacted revision is -ESTALE" "$LIVE" "$URL" stale $((rev - 1))
check "get after compaction" "$LIVE" "$URL" get /x/3
finish
