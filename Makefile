# Strata build entry points. Two commands set everything up on a fresh machine:
#   make run   builds and starts a single node on the embedded defaults
#   make test  installs what the tests need and runs every test, again with
#              the expensive invariant checks built in, then a short fuzz
#              pass over every fuzz target
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 3s
BIN := bin

.PHONY: all build run test test-tools test-unit test-invariants test-failstop test-replica-long test-group-long test-replication-long fuzz-smoke bench flamegraph generate lint tools clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/strata ./cmd/strata

run: build
	$(BIN)/strata serve

test: test-unit test-invariants test-failstop test-replica-long test-group-long fuzz-smoke

test-unit: test-tools
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# The fail-stop property tests at their full count (10,000 random sequences
# with injected storage failures for segment.Log and for ringlog), outside
# the race detector, which makes ringlog's about five times slower.
test-failstop:
	$(GO) test -count=1 -run 'FailStopNoAckedAppendLost' ./segment/ ./segment/ringlog/

# The replication simulation's long mode (docs/replication.md): 10,000
# seeds, where `make test` runs a few hundred. A failing seed prints the
# command that replays it.
test-replica-long:
	STRATA_REPLICA_SEEDS=10000 $(GO) test -count=1 -run 'TestSimulation$$' ./replica/

# The consumer-group coordinator's simulation at thousands of seeds
# (docs/consumer-groups.md), where `make test`'s unit pass runs a few
# hundred; about 30 s. A failing seed prints the command that replays it.
test-group-long:
	STRATA_GROUP_SEEDS=3000 $(GO) test -count=1 -run 'TestSimulation$$' ./server/group/

# The replication kill test's long mode (docs/replication.md): 100 rounds
# of kill -9 of a leader, a follower or the controller under acks=all load,
# where `make test` runs 20. Not part of `make test`: about 10 minutes.
test-replication-long:
	STRATA_REPLICATION_KILLS=100 $(GO) test -count=1 -timeout 30m -run 'TestReplicationKillNineUnderLoad$$' ./server/

# The packages whose tests reach code with expensive checks under the
# `invariants` build tag (scripts/invariant-packages.sh), run once more with
# them built in; -short keeps it a short run.
test-invariants:
	$(GO) test -count=1 -short -tags invariants -timeout 10m $$(scripts/invariant-packages.sh)

# Runs every Fuzz* target for FUZZTIME each; the seed corpora in testdata/ run
# as ordinary tests in test-unit as well.
fuzz-smoke:
	FUZZTIME=$(FUZZTIME) scripts/fuzz-smoke.sh

# The benchmark of docs/benchmarks.md: Strata under the sync and never flush
# policies beside the physical ceiling and NATS JetStream, then the
# replication section (three brokers on this machine: replication factor 3
# against 1, e2e latency, a follower catching up a 1 GiB backlog, leader
# failover); writes benchmarks/results/<date>-<label>.md and .json.
# BENCH_FLAGS passes more flags, e.g. BENCH_FLAGS='--duration 5s --label
# my-laptop', '--replication=false' to leave the replication section out,
# or '--suites=false --peer=false' for it alone.
bench:
	$(GO) run ./benchmarks $(BENCH_FLAGS)

# CPU flame graphs of the broker under loadgen (produce 1 KiB, then consume)
# into flamegraphs/<commit>-<workload>.html; see flamegraphs/README.md.
flamegraph:
	scripts/flamegraph.sh

generate: tools
	$(GO) generate ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | xargs -r grep -L '^// Code generated')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# flatc (Debian's flatbuffers-compiler) is needed only by `make generate`; the
# generated code is committed. It is installed here when missing and apt-get
# is usable, so a fresh machine needs nothing by hand.
tools:
	@command -v flatc >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flatbuffers-compiler >/dev/null) \
	      || echo "note: flatc could not be installed; only 'make generate' needs it"; \
	  else echo "note: flatc missing; only 'make generate' needs it"; fi; }

# ip (Debian's iproute2) is needed by the network-partition test
# (server/netns_test.go), which runs as root and skips without it; as with
# flatc, it is installed here when missing and apt-get is usable.
test-tools:
	@command -v ip >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null) \
	      || echo "note: iproute2 could not be installed; the network-partition test will skip"; \
	  else echo "note: ip missing; the network-partition test will skip"; fi; }

clean:
	rm -rf $(BIN)
