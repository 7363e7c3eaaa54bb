#!/usr/bin/env bash
# ab.sh: two gpgate builds, one region, alternating turns (A, B, A, B, ...):
# each turn serves DATA with one build, drives it with gpgate-load (no peer),
# and prints the gpgate line with the server's CPU time per operation
# (utime+stime over the turn / operations; setup included, alike for both).
#
#   cmd/gpgate-load/ab.sh OLD_BINARY NEW_BINARY DATA [TURNS] [SCENARIO] [CONCURRENCY]
#   e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/gpgate-old ./cmd/gpgate)
#        go build -o /tmp/gpgate-new ./cmd/gpgate && go build -o bin/gpgate-load ./cmd/gpgate-load
#        cmd/gpgate-load/ab.sh /tmp/gpgate-old /tmp/gpgate-new ./gpgate-data 3 everything-500 16
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,10p "$0" >&2; exit 2; }
A=$1 B=$2 DATA=$3 TURNS=${4:-3} SC=${5:-everything-500} C=${6:-16}
cd "$(dirname "$0")/../.."
[ -x bin/gpgate-load ] || go build -o bin/gpgate-load ./cmd/gpgate-load
port=${AB_PORT:-18090}
hz=$(getconf CLK_TCK)
for _ in $(seq 1 "$TURNS"); do
	for v in A B; do
		bin=$A
		[ "$v" = B ] && bin=$B
		"$bin" serve --data "$DATA" --listen "127.0.0.1:$port" --log-level warn \
			--rate-address 0 --rate-client 0 --client-concurrency 0 >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/metadata" && break; sleep 0.05; done
		t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
		out=$(bin/gpgate-load -url "http://127.0.0.1:$port" -data "$DATA" -no-peer -c "$C" -rounds 1 \
			-warmup 1s -duration 5s -scenarios "$SC" 2>/dev/null)
		t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
		echo "$out" | awk -v v="$v" -v t=$((t1 - t0)) -v hz="$hz" \
			'/^ +[0-9]+ +[0-9]/{printf "%s %s  | server cpu %.0f us/op\n", v, $0, t/hz*1e6/($2*6)}'
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	done
done
