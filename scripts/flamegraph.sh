#!/usr/bin/env bash
# CPU flame graphs of the broker under load (`make flamegraph`).
#
# Builds bin/strata and bin/loadgen, starts a broker with its admin listener
# on a fresh data folder, and for each workload takes a CPU profile from
# /debug/pprof/profile while loadgen drives it:
#   produce  one producer sending 1 KiB records (acks 1, the default sync
#            flush policy)
#   consume  one consumer reading that topic from the start, again and again
# Then renders flamegraphs/<short-commit>-<workload>.html with
# flamegraphs/render, after installing d3 and d3-flame-graph from npm into a
# cache folder.
#
# Environment: PROFILE_SECONDS (default 15), CORES (broker shards, default
# every CPU), CACHE (default .cache), OUT (default flamegraphs).
set -euo pipefail

cd "$(dirname "$0")/.."
PROFILE_SECONDS=${PROFILE_SECONDS:-15}
CORES=${CORES:-0}
CACHE=${CACHE:-.cache}
OUT=${OUT:-flamegraphs}
D3_VERSION=7.9.2
D3_FLAME_GRAPH_VERSION=4.1.3
# Seconds loadgen runs before the profile starts, so that the profile sees
# the steady state rather than connection set-up and topic creation.
WARMUP_SECONDS=2
READY_TIMEOUT_SECONDS=60

go build -o bin/strata ./cmd/strata
go build -o bin/loadgen ./loadgen

npm_dir="$CACHE/flamegraph-npm"
if [[ ! -f "$npm_dir/node_modules/d3/package.json" || ! -f "$npm_dir/node_modules/d3-flame-graph/package.json" ]]; then
	mkdir -p "$npm_dir"
	npm install --prefix "$npm_dir" --no-audit --no-fund --silent \
		"d3@$D3_VERSION" "d3-flame-graph@$D3_FLAME_GRAPH_VERSION"
fi

work=$(mktemp -d)
broker_pid=""
loop_pid=""
cleanup() {
	if [[ -n "$loop_pid" ]]; then kill "$loop_pid" 2>/dev/null || true; wait "$loop_pid" 2>/dev/null || true; fi
	if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

bin/strata serve --data-dir "$work/data" --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
	--cores "$CORES" 2>"$work/broker.log" &
broker_pid=$!

# Wait for the readiness line (or the broker's exit).
ready=$(timeout "$READY_TIMEOUT_SECONDS" tail -n +1 -F --pid="$broker_pid" "$work/broker.log" 2>/dev/null |
	grep -m1 'strata broker ready' || true)
if [[ -z "$ready" ]]; then
	echo "flamegraph: the broker did not become ready:" >&2
	cat "$work/broker.log" >&2
	exit 1
fi
listen=$(sed -E 's/.* listen=([^ ]+).*/\1/' <<<"$ready")
admin=$(sed -E 's/.* admin=([^ ]+).*/\1/' <<<"$ready")
commit=$(git rev-parse --short HEAD)
echo "flamegraph: broker on $listen, admin $admin, commit $commit" >&2

profile() { # workload
	curl -fsS -o "$work/$1.pprof" "http://$admin/debug/pprof/profile?seconds=$PROFILE_SECONDS"
}

# produce: one producer of 1 KiB records for the warm-up plus the profile.
bin/loadgen produce --brokers "$listen" --topic flamegraph --record-size 1KiB --acks 1 \
	--duration "$((WARMUP_SECONDS + PROFILE_SECONDS + 1))s" >"$work/produce.txt" &
loop_pid=$!
sleep "$WARMUP_SECONDS"
profile produce
wait "$loop_pid"
loop_pid=""
cat "$work/produce.txt" >&2

# consume: read the topic from the start, over and over, until the profile
# is taken.
(
	while true; do
		bin/loadgen consume --brokers "$listen" --topic flamegraph >"$work/consume.txt"
	done
) &
loop_pid=$!
sleep "$WARMUP_SECONDS"
profile consume
kill "$loop_pid" 2>/dev/null || true
wait "$loop_pid" 2>/dev/null || true
loop_pid=""
cat "$work/consume.txt" >&2 || true

host=$(hostname)
machine="$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
for w in produce consume; do
	case $w in
	produce) what="produce, one producer, 1 KiB records, acks 1, flush policy sync" ;;
	consume) what="consume, one consumer reading 1 KiB records from the start" ;;
	esac
	go run ./flamegraphs/render -profile "$work/$w.pprof" -assets "$npm_dir/node_modules" \
		-title "strata $commit: $what; ${PROFILE_SECONDS}s CPU profile on $host ($machine)" \
		-o "$OUT/$commit-$w.html"
	echo "$OUT/$commit-$w.html"
done
