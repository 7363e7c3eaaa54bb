#!/usr/bin/env bash
# make load: build gpgate and gpgate-load, generate a demo region (kept in
# LOAD_DATA between runs; a fresh temporary one when LOAD_DATA is unset),
# serve it on a free loopback port, run gpgate-load against it (baseline and
# peer in the same run), stop the server. Extra gpgate-load flags: LOAD_FLAGS.
set -euo pipefail
GO=${GO:-go}
PATIENTS=${LOAD_PATIENTS:-1000}
OUT=${LOAD_OUT:-load.md}
cd "$(dirname "$0")/../.."
mkdir -p bin
$GO build -o bin/gpgate ./cmd/gpgate
$GO build -o bin/gpgate-load ./cmd/gpgate-load

tmpdata=""
if [ -z "${LOAD_DATA:-}" ]; then
	LOAD_DATA=$(mktemp -d)
	tmpdata=$LOAD_DATA
fi
pid=""
log=$(mktemp)
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -f "$log"
	if [ -n "$tmpdata" ]; then rm -rf "$tmpdata"; fi
}
trap cleanup EXIT
# The peer FHIR server (Medplum, npm): installed from the pinned lock file
# when npm is there; gpgate-load leaves the peer out otherwise.
if [ ! -d cmd/gpgate-load/peer/node_modules ] && command -v npm >/dev/null; then
	npm ci --prefix cmd/gpgate-load/peer --no-audit --no-fund >/dev/null 2>&1 || echo "make load: npm ci failed; the peer is left out" >&2
fi

fast=""
if [ "$PATIENTS" -gt 10000 ]; then fast="--fast"; fi
bin/gpgate demo --data "$LOAD_DATA" --patients "$PATIENTS" $fast >/dev/null

# The load generator is one address and a few clients standing for a
# region's consumers: serve's per-address and per-client rate limits (50/s
# by default) would answer most of it 429, so they are off unless
# LOAD_SERVE_FLAGS sets them.
bin/gpgate serve --data "$LOAD_DATA" --listen 127.0.0.1:0 --log-level warn \
	${LOAD_SERVE_FLAGS:---rate-address 0 --rate-client 0 --client-concurrency 0} >"$log" 2>&1 &
pid=$!
url=""
started=$(date +%s%N)
for _ in $(seq 1 200); do
	url=$(sed -n 's/^gpgate serving FHIR R4 at //p' "$log")
	[ -n "$url" ] && break
	if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
	sleep 0.05
done
[ -n "$url" ] || { echo "make load: the server did not start" >&2; cat "$log" >&2; exit 1; }
echo "make load: gpgate serving $PATIENTS patients at $url (ready in $(( ($(date +%s%N) - started) / 1000000 )) ms)" >&2

bin/gpgate-load -url "$url" -data "$LOAD_DATA" -server-pid "$pid" -json "${OUT%.md}.json" ${LOAD_FLAGS:-} | tee "$OUT"
