# gpgate — common tasks. `make run` serves the demo region; `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/gpgate
DATA    ?= ./gpgate-data
LISTEN  ?= 127.0.0.1:8080
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
PKGS    ?= ./...
FUZZTIME ?= 20s

.PHONY: build run demo test vet bench fuzz lint clean crash-test soak load

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/gpgate

# Generate the demo region once (kept between runs), then serve it.
run: build
	$(BIN) demo --data $(DATA)
	$(BIN) serve --data $(DATA) --listen $(LISTEN) --log-format text

demo: build
	$(BIN) demo --data $(DATA) --force

test: vet
	$(GO) test -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)

# Benchmarks of the hot paths; compare runs with benchstat (see docs/performance.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 $(PKGS) | tee bench.txt

# Each fuzz target for FUZZTIME (go test runs one fuzz target at a time).
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for name in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$name"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 $(PKGS)

clean:
	rm -rf bin $(DATA) bench.txt $(CLUSTER_DIR) load.md load.json

# The audit crash tests (also part of `make test`): SIGKILL mid-load (the store, then the real
# server under concurrent reads), restart, verify the chain, every acknowledged access present.
crash-test:
	$(GO) test ./audit/ -run '^TestCrashRecovery$$' -count=1 -v
	$(GO) test ./cmd/gpgate/ -run '^TestCrashKeepsAudit$$' -count=1 -v

# The soak test (docs/operations.md): a real `gpgate serve` on loopback, SOAK_CLIENTS consumer
# systems (registered through the admin API) finding patients, recording consents, reading records
# and refreshing tokens for SOAK_DURATION, while clients are disabled and re-enabled and agreements
# change through the admin API; then SIGTERM. Fails on any 5xx, memory or goroutine growth (read from
# /metrics), an audit log that does not hold one entry per answered request, or a chain that does not
# verify. `make test` runs a 20-second version (cmd/gpgate-soak TestSoakShort).
SOAK_DURATION ?= 10m
SOAK_CLIENTS  ?= 32
soak: build
	$(GO) run ./cmd/gpgate-soak --bin $(BIN) --duration $(SOAK_DURATION) --clients $(SOAK_CLIENTS)

# Third-party SMART/FHIR clients (npm: fhir-kit-client, fhirclient, @medplum/core, jose) against a live gpgate;
# needs node and npm (see conformance/clients/ci.sh).
.PHONY: clients-test
clients-test:
	GO="$(GO)" bash conformance/clients/ci.sh

# Every resource and Bundle gpgate emits (demo region of VALIDATE_PATIENTS, default 200, plus the
# shared GP2GP extracts), fetched over HTTP and put through ../shared/tools/fhir-validate; skips
# where ../shared is absent. validate-broken proves a broken resource fails it. docs/conformance.md
.PHONY: validate validate-broken
validate:
	GO="$(GO)" bash conformance/validate.sh
validate-broken:
	GO="$(GO)" bash conformance/validate.sh --break

# Shared Record Viewer: its Go tests, then end-to-end tests in Debian's headless Chromium
# (playwright-core and axe-core from npm, pinned in viewer/e2e) against a real `gpgate serve` on a
# small demo region plus the shared GP2GP extracts (E2E_SERVER=fake: the viewer over its fake core;
# VIEWER_FIXTURE=F: a running server). Screenshots and logs: viewer/e2e/artifacts/. Needs
# `apt-get install chromium` and node + npm. docs/viewer.md
.PHONY: test-viewer
test-viewer:
	$(GO) test -count=1 ./viewer/...
	GO="$(GO)" bash viewer/e2e/run.sh

# A three-node gpgate on PostgreSQL behind HAProxy, on loopback (Debian packages postgresql and
# haproxy: apt-get install postgresql haproxy), over a demo region whose clients and agreements
# live in the database; until Ctrl-C. The balancer is http://127.0.0.1:8090. docs/scale.md
CLUSTER_DIR ?= ./gpgate-cluster
.PHONY: cluster cluster-test
cluster: build
	$(GO) build -o bin/gpgate-cluster ./cmd/gpgate-cluster
	bin/gpgate-cluster --bin $(BIN) --dir $(CLUSTER_DIR)

# Through the balancer of a fresh cluster: the consent black-box checks and the conformance suite,
# then load while one node is killed and PostgreSQL restarted (every acknowledged request audited,
# no 5xx beyond the killed node's requests in flight, the chain verifies).
cluster-test:
	GPGATE_CLUSTER_TEST=1 GPGATE_PG_REQUIRED=1 $(GO) test ./cmd/gpgate/ -run '^TestCluster$$' -count=1 -v -timeout 15m

# Load: build, generate a demo region of LOAD_PATIENTS (default 1000; kept in
# LOAD_DATA when set), serve it on a free port, drive it with gpgate-load
# beside the bare-bytes baseline and the peer FHIR server, stop it. Writes
# load.md and load.json. See docs/performance.md.
load:
	GO="$(GO)" bash cmd/gpgate-load/run.sh
