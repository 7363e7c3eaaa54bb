#!/usr/bin/env bash
# End-to-end browser tests of the Shared Record Viewer.
#
# Without VIEWER_FIXTURE, builds and starts the viewer demo server
# (viewer/cmd/viewerdemo: the viewer over the fake core, hostile data) on a
# loopback port and points the tests at it. With VIEWER_FIXTURE=FILE, tests
# a server that is already running (FILE names its URL, accounts and
# patients; see viewer/cmd/viewerdemo for the format).
#
# Needs: Go, node + npm (npm ci here), Debian's chromium (/usr/bin/chromium,
# or CHROMIUM=path). Screenshots go to viewer/e2e/artifacts/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
GO="${GO:-go}"
cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
rm -rf artifacts && mkdir -p artifacts

pid=""
tmp="$(mktemp -d)"
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${VIEWER_FIXTURE:-}" ]; then
  bin="$tmp/viewerdemo"
  (cd "$root" && "$GO" build -o "$bin" ./viewer/cmd/viewerdemo)
  export VIEWER_FIXTURE="$here/artifacts/fixture.json"
  "$bin" -listen 127.0.0.1:0 -fixture "$VIEWER_FIXTURE" >"$here/artifacts/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    [ -s "$VIEWER_FIXTURE" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$here/artifacts/server.log"; echo "viewer demo server died" >&2; exit 1; }
    sleep 0.2
  done
  [ -s "$VIEWER_FIXTURE" ] || { echo "viewer demo server did not start" >&2; exit 1; }
fi
node --test --test-name-pattern="${E2E_PATTERN:-.}" --test-concurrency=1 --test-reporter=spec viewer.test.mjs
