#!/usr/bin/env bash
# CI: `gpgate conformance` against a freshly generated demo region served by `gpgate serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpgate-suite.XXXXXX")
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
$GO build -o "$work/gpgate" ./cmd/gpgate
"$work/gpgate" demo --data "$work/data" --patients "${SUITE_PATIENTS:-200}" --fast >/dev/null 2>&1
"$work/gpgate" serve --data "$work/data" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q "serving FHIR R4 at" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/.*serving FHIR R4 at //p' "$work/serve.out")
[ -n "$base" ] || { echo "suite: server did not start" >&2; cat "$work/serve.log" >&2; exit 2; }
"$work/gpgate" conformance --base "$base" --client demo-ehr --key "$work/data/demo-client.jwk" \
  --audit-client demo-auditor --audit-key "$work/data/demo-auditor.jwk" --report "${SUITE_REPORT:-$work/report.json}"
