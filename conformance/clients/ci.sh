#!/usr/bin/env bash
# Third-party SMART/FHIR clients (fhir-kit-client, fhirclient, @medplum/core) against a
# live gpgate (`make clients-test`):
# installs the pinned npm packages (npm ci), builds gpgate, generates a
# 50-patient demo region, serves it on a free port, and runs run.mjs as the
# demo consumer system (demo-ehr) against the largest demo record.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
GO="${GO:-go}"

for tool in node npm "$GO"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "clients-test: $tool is required" >&2; exit 1; }
done

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

start=$(date +%s)
echo "-- npm ci ($(node --version), npm $(npm --version 2>/dev/null))"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "-- build gpgate"
(cd "$root" && "$GO" build -o "$tmp/gpgate" ./cmd/gpgate)

echo "-- gpgate demo --patients 50"
"$tmp/gpgate" demo --data "$tmp/data" --patients 50 >"$tmp/demo.out" 2>"$tmp/demo.err" || {
  cat "$tmp/demo.err" >&2
  exit 1
}
nhs="$(node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const n = s.notable.find((x) => x.kind === "largest");
  if (!n) process.exit(1);
  console.log(n.nhs);
' "$tmp/data/demo-summary.json")"
# The demo consumer system and its key file, as the README names them.
client="${GPGATE_CLIENT:-demo-ehr}"
key="$tmp/data/demo-client.jwk"
grep -Fq "$client" "$tmp/demo.out" && [ -s "$key" ] || {
  echo "clients-test: gpgate demo did not register $client with a key at $key" >&2
  cat "$tmp/demo.out" >&2
  exit 1
}

echo "-- gpgate serve --listen 127.0.0.1:0"
"$tmp/gpgate" serve --data "$tmp/data" --listen 127.0.0.1:0 --log-format text >"$tmp/serve.out" 2>"$tmp/serve.log" &
server_pid=$!

base=""
for _ in $(seq 1 300); do
  base="$(sed -n 's/^gpgate serving FHIR R4 at //p' "$tmp/serve.out")"
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "clients-test: gpgate serve exited" >&2; cat "$tmp/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "clients-test: gpgate serve printed no URL" >&2; cat "$tmp/serve.log" >&2; exit 1; }

# Wait until /metadata answers.
node -e '
  const url = process.argv[1] + "/metadata";
  const until = Date.now() + 30000;
  (async () => {
    for (;;) {
      try { if ((await fetch(url)).ok) process.exit(0); } catch {}
      if (Date.now() > until) { console.error("clients-test: no answer from " + url); process.exit(1); }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
' "$base"

echo "-- run.mjs $base (client $client)"
status=0
node "$here/run.mjs" "$base" "$key" "$client" "$nhs" || status=$?

if [ "$status" -ne 0 ]; then
  echo "-- gpgate log (last 40 lines)" >&2
  tail -n 40 "$tmp/serve.log" >&2
fi
echo "-- clients-test finished in $(( $(date +%s) - start )) s, status $status"
exit "$status"
