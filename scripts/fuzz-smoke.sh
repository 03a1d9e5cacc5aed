#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a short time (FUZZTIME, default
# 3s) so that a target that panics on new input is caught by `make test`.
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime runs out while a worker is mid-input
# (golang/go#75804, fixed in Go 1.27): no input failed and none is written.
# Such a run is repeated once; a failure that writes an input, or that
# happens twice, fails the smoke test.
set -euo pipefail
fuzztime=${FUZZTIME:-3s}
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The targets are found by their declarations rather than by `go test
# -list`, which would build every package's test binary once more only to
# list it.
for dir in $(git ls-files '*_test.go' | xargs grep -l '^func Fuzz[A-Za-z0-9_]*(' | xargs -n1 dirname | sort -u); do
  pkg=./$dir
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*(' "$dir"/*_test.go | sed 's/^func //; s/($//' | sort -u)
  for t in $targets; do
    for attempt in 1 2; do
      echo "fuzz $pkg $t ($fuzztime)"
      if go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; then
        break
      fi
      if [[ $attempt == 1 ]] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
        echo "fuzz $pkg $t: the coordinator's deadline race (golang/go#75804), no failing input; once more"
        continue
      fi
      exit 1
    done
  done
done
