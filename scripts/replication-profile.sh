#!/usr/bin/env bash
# Where a replicated GB's CPU goes (docs/benchmarks.md, "Replication",
# "Where a follower's copy goes").
#
#   scripts/replication-profile.sh BIN OUT [SECONDS] [RF]
#
# BIN holds strata and loadgen (go build -o BIN/strata ./cmd/strata; go
# build -o BIN/loadgen ./loadgen). Starts three one-shard brokers on
# loopback (each a controller voter, unpinned, default session timeouts,
# admin listener on), creates a 6-partition topic of replication factor RF
# (default 3; min.insync.replicas 2 when RF > 1; flush policy never) with
# a warm-up of 2,000 records, then runs one loadgen producer (1 KiB
# records, acks=all) for SECONDS (default 10) while each broker's
# /debug/pprof/profile is taken. Writes to OUT: cpuN.pprof, each broker's
# CPU seconds over the run (/proc/PID/stat, io_uring workers included,
# which the Go profile cannot see), the /metrics counters that moved
# (deltaN.txt: ReplicaFetch requests, outbound receives and bytes, ring
# submissions), loadgen's report and `uptime` before and after. PERF=1
# adds `perf record -a -g` of the whole machine (OUT/perf.data): the
# kernel's share, io_uring workers included.
set -u
BIN=$1; OUT=$2; DUR=${3:-10}; RF=${4:-3}; PERF=${PERF:-0}
mkdir -p "$OUT"
D=$(mktemp -d /tmp/replprof.data.XXXX)
printf 'the cluster secret of a profile run\n' > $D/secret; chmod 600 $D/secret
B=$((20000 + RANDOM % 20000))
V="1@127.0.0.1:$((B+1)),2@127.0.0.1:$((B+2)),3@127.0.0.1:$((B+3))"
pids=(); curlpids=""
for id in 1 2 3; do
  $BIN/strata serve --node-id $id --controller-voters $V --cluster-secret-file $D/secret \
    --data-dir $D/$id --listen 127.0.0.1:$((B+10+id)) --admin 127.0.0.1:$((B+20+id)) \
    --cores 1 --pin=false --log-level info > $OUT/broker$id.log 2>&1 &
  pids+=($!)
done
cleanup() { for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; rm -rf $D; }
trap cleanup EXIT
for id in 1 2 3; do
  for i in $(seq 600); do grep -q "strata broker ready" $OUT/broker$id.log && break; sleep 0.1; done
done
BR="127.0.0.1:$((B+11)),127.0.0.1:$((B+12)),127.0.0.1:$((B+13))"
T=prof-rf$RF
MI=""; [ $RF -gt 1 ] && MI="--min-insync-replicas 2"
common="--brokers $BR --topic $T --json --partitions 6 --replication-factor $RF $MI --flush-policy never --record-size 1024 --procs 1"
# Until every broker is registered the topic cannot be created: retry.
for i in $(seq 30); do
  $BIN/loadgen produce --producers 1 --acks all --records 2000 $common > $OUT/warmup.json 2>$OUT/warmup.err && break
  [ $i = 30 ] && { echo warmup failed; cat $OUT/warmup.err; exit 1; }
  sleep 1
done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for i in 0 1 2; do id=$((i+1)); cpu ${pids[$i]} > $OUT/cpu$id.before; curl -s 127.0.0.1:$((B+20+id))/metrics > $OUT/metrics$id.before; done
for i in 0 1 2; do id=$((i+1));
  curl -s -o $OUT/cpu$id.pprof "127.0.0.1:$((B+20+id))/debug/pprof/profile?seconds=$((DUR-2))" & curlpids="$curlpids $!"
done
if [ "$PERF" = 1 ]; then perf record -a -g -o $OUT/perf.data -- sleep $((DUR-2)) > /dev/null 2>&1 & fi
uptime > $OUT/uptime.before
$BIN/loadgen produce --producers 1 --acks all --duration ${DUR}s $common > $OUT/produce.json 2>$OUT/produce.err
uptime > $OUT/uptime.after
sleep 1
for i in 0 1 2; do id=$((i+1)); cpu ${pids[$i]} > $OUT/cpu$id.after; curl -s 127.0.0.1:$((B+20+id))/metrics > $OUT/metrics$id.after; done
wait $curlpids
tck=$(getconf CLK_TCK)
bytes=$(tail -1 $OUT/produce.json | jq .bytes); mbs=$(tail -1 $OUT/produce.json | jq .mb_per_sec)
tot=0
for id in 1 2 3; do
  c=$(( $(cat $OUT/cpu$id.after) - $(cat $OUT/cpu$id.before) ))
  tot=$((tot + c))
  echo "broker$id cpu_s=$(echo "scale=2; $c/$tck" | bc)"
done
echo "rf=$RF bytes=$bytes mb_per_sec=$mbs broker_cpu_s=$(echo "scale=2; $tot/$tck" | bc) cpu_s_per_gb=$(echo "scale=3; $tot/$tck/($bytes/1000000000)" | bc)"
for id in 1 2 3; do
  join <(grep -E '^strata_(requests_total|outbound_|ring_|fetch_spliced|network_bytes)' $OUT/metrics$id.before | sed 's/ /\t/' | sort) \
       <(grep -E '^strata_(requests_total|outbound_|ring_|fetch_spliced|network_bytes)' $OUT/metrics$id.after | sed 's/ /\t/' | sort) -t $'\t' \
    | awk -F'\t' -v id=$id '{d=$3-$2; if (d>0) printf "broker%s %s %.0f\n", id, $1, d}' > $OUT/delta$id.txt
done
cat $OUT/uptime.before $OUT/uptime.after
