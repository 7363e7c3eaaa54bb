#!/usr/bin/env bash
# End-to-end browser tests of the Shared Record Viewer (make test-viewer).
#
# By default, against the real server: builds gpgate, generates a small demo
# region, adjusts its agreements (one practice's agreement with the
# clinician's organisation ended: "another organisation's patient"; a
# summary-only organisation), serves the shared GP2GP extracts as a gp2gp
# practice when ../shared is there (their free text must never show), adds
# one viewer account per organisation, serves on a free loopback port,
# writes the fixture (docs/viewer.md) and runs the suite; the server stops
# at the end.
#
#   E2E_SERVER=fake   the viewer demo server instead (viewer/cmd/viewerdemo:
#                     the fake core with hostile data; fast)
#   VIEWER_FIXTURE=F  a server that is already running, named by fixture F
#   E2E_PATTERN=RE    only the tests whose names match
#
# Needs: Go, node + npm (npm ci here), Debian's chromium (/usr/bin/chromium,
# or CHROMIUM=path). Screenshots and logs go to viewer/e2e/artifacts/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
GO="${GO:-go}"
cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
rm -rf artifacts && mkdir -p artifacts
art="$here/artifacts"
t0=$(date +%s)

pid=""
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gpgate-viewer-e2e.XXXXXX")"
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fake() {
  bin="$tmp/viewerdemo"
  (cd "$root" && "$GO" build -o "$bin" ./viewer/cmd/viewerdemo)
  export VIEWER_FIXTURE="$art/fixture.json"
  "$bin" -listen 127.0.0.1:0 -fixture "$VIEWER_FIXTURE" >"$art/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    [ -s "$VIEWER_FIXTURE" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$art/server.log"; echo "viewer demo server died" >&2; exit 1; }
    sleep 0.2
  done
  [ -s "$VIEWER_FIXTURE" ] || { echo "viewer demo server did not start" >&2; exit 1; }
}

real() {
  bin="$tmp/gpgate"
  data="$tmp/data"
  (cd "$root" && "$GO" build -o "$bin" ./cmd/gpgate)
  # 8 patients over 4 practices: the largest record, the dissenting patient
  # and a third practice's patients, each at a practice of its own.
  "$bin" demo --data "$data" --patients 8 --practices 4 --fast >"$art/demo.out" 2>"$art/demo.log"
  eval "$(node fixture.mjs plan "$data/demo-summary.json")"
  export FULL_NHS DISSENT_NHS OTHER_NHS INVALID_NHS UNKNOWN_NHS
  lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }
  # Another organisation's patient: the clinician's organisation (RXX01)
  # has no agreement in force with this practice any more.
  "$bin" agreements end --data "$data" --id "demo-$(lower "$OTHER_PRACTICE")-rxx01" >>"$art/setup.log"
  # A summary-only organisation (RXX05) for the full patient's practice.
  "$bin" agreements add --data "$data" --provider "$FULL_PRACTICE" --consumers RXX05 --areas summary >>"$art/setup.log"

  # The shared GP2GP extracts as a gp2gp practice with a full agreement for
  # the clinician's organisation: their free text must never reach a page.
  practices=()
  shared="$(cd "$root/.." && pwd)/shared/testdata"
  if [ -d "$shared/gp2gp/extracts" ] && [ -d "$shared/pds" ]; then
    ex="$tmp/extracts"; mkdir -p "$ex"
    mapfile -t xmls < <(cd "$shared/gp2gp/extracts" && ls -1 -- *.xml | sort | sed 's|^|extracts/|')
    # and one whole extract among the feature files with an entry marked
    # NOPAT (withheld: the viewer must say some items are)
    nopat=$(cd "$shared/gp2gp" && grep -rlE 'confidentialityCode[^>]*code="NOPAT"' features 2>/dev/null | sort | while read -r f; do grep -q '<EhrExtract' "$f" && { echo "$f"; break; }; done || true)
    [ -n "$nopat" ] && xmls+=("$nopat")
    mapfile -t pds < <(cd "$shared/pds" && ls -1 -- patient_*.json | sed -n 's/^patient_\([0-9]\{10\}\)\.json$/\1/p' | sort)
    nb=${#xmls[@]}; [ "$nb" -le "${#pds[@]}" ] || nb=${#pds[@]}
    GP2GP_NHS=""; GP2GP_EXTRACTS=""
    {
      echo "{"
      for ((i = 0; i < nb; i++)); do
        f="$shared/gp2gp/${xmls[$i]}"
        printf '%s  "%s": "%s"' "$([ $i -gt 0 ] && echo ,)" "$f" "${pds[$i]}"; echo
        GP2GP_NHS+="${GP2GP_NHS:+,}${pds[$i]}"; GP2GP_EXTRACTS+="${GP2GP_EXTRACTS:+,}$f"
      done
      echo "}"
    } >"$ex/manifest.json"
    printf '{"practices":[{"ods":"A20047","name":"Extract Practice","kind":"gp2gp","dir":"%s","pds":"%s"}]}\n' "$ex" "$shared/pds" >"$tmp/practices.json"
    practices=(--practices "$tmp/practices.json")
    "$bin" agreements add --data "$data" --provider A20047 --consumers RXX01 --areas all --break-glass >>"$art/setup.log"
    export GP2GP_NHS GP2GP_EXTRACTS
    echo "viewer e2e: serving $nb GP2GP extracts from ../shared as practice A20047${nopat:+ (one with NOPAT entries: $nopat)}"
  else
    echo "viewer e2e: SKIP the GP2GP free-text pages: ../shared/testdata (gp2gp/extracts, pds) is absent"
  fi

  # One viewer account per organisation.
  export E2E_PASSWORD="e2e passphrase $(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  adduser() { # prefix username org role sds name
    printf '%s\n' "$E2E_PASSWORD" | "$bin" users add --data "$data" --username "$2" --org "$3" --role "$4" --sds-id "$5" --name "$6" --password-stdin >>"$art/setup.log"
    export "$1_USER=$2" "$1_ORG=$3" "$1_SDS=$5"
  }
  adduser CLINICIAN dr.full RXX01 "Doctor" 555000000101 "Dr Alex Clinician"
  adduser LIMITED para.bp RXX03 "Paramedic" 555000000103 "Sam Paramedic"
  adduser NOBG gp.ooh RXX04 "Doctor" 555000000104 "Dr Jo Outofhours"
  adduser SUMMARY nurse.summary RXX05 "Nurse" 555000000105 "Kim Nurse"
  adduser LOCKED locum.e2e RXX01 "Doctor" 555000000109 "Dr Lee Locum" # locked out by the rate-limit test

  "$bin" serve --data "$data" --listen 127.0.0.1:0 --log-format text "${practices[@]}" >"$tmp/serve.out" 2>"$art/server.log" &
  pid=$!
  base=""
  for _ in $(seq 1 300); do
    base=$(sed -n 's/.*serving FHIR R4 at //p' "$tmp/serve.out" 2>/dev/null)
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$art/server.log" >&2; echo "gpgate serve died" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$base" ] || { echo "gpgate serve did not start" >&2; exit 1; }
  export FHIR_BASE="$base" VIEWER_URL="$base/viewer/" GPGATE_BIN="$bin" AUDITOR_KEY="$data/demo-auditor.jwk"
  export VIEWER_FIXTURE="$art/fixture.json"
  node fixture.mjs write >"$VIEWER_FIXTURE"
  echo "viewer e2e: gpgate serving at $base ($(( $(date +%s) - t0 )) s to set up)"
}

if [ -z "${VIEWER_FIXTURE:-}" ]; then
  case "${E2E_SERVER:-real}" in
    real) real ;;
    fake) fake ;;
    *) echo "E2E_SERVER must be real or fake" >&2; exit 2 ;;
  esac
fi
set +e
node --test --test-name-pattern="${E2E_PATTERN:-.}" --test-concurrency=1 --test-reporter=spec viewer.test.mjs
rc=$?
set -e
# The server's log names no patient: no NHS number (with or without spaces),
# no patient id of the region.
if [ -n "${PATIENT_IDENTIFIERS:-}" ]; then
  pat="$PATIENT_IDENTIFIERS${GP2GP_NHS:+|${GP2GP_NHS//,/|}}"
  spaced=$(printf '%s' "$pat" | tr '|' '\n' | sed -nE 's/^([0-9]{3})([0-9]{3})([0-9]{4})$/\1 \2 \3/p' | paste -sd'|' -)
  if grep -nE "$pat${spaced:+|$spaced}" "$art/server.log" | head -5 | grep .; then
    echo "viewer e2e: FAIL: the server log names a patient (above)" >&2
    rc=1
  fi
fi
echo "viewer e2e: $(( $(date +%s) - t0 )) s in all (exit $rc); screenshots in $art"
exit $rc
