#!/usr/bin/env bash
# Prints the packages whose tests exercise the expensive invariant checks:
# every package with a file built under the `invariants` tag, and every
# package of the module that imports one of them. `make test` runs their
# tests once more with -tags invariants, so those checks are never dead
# code; a package that adds invariant checks is picked up without a change
# here.
set -euo pipefail
cd "$(dirname "$0")/.."
module=$(go list -m)
tagged=$(git ls-files '*.go' | xargs -r grep -lE '^//go:build (.*[^!])?invariants\b' |
  xargs -r -n1 dirname | sort -u | sed "s#^\.\$#$module#; s#^#$module/#; s#^$module/$module\$#$module#")
if [[ -z $tagged ]]; then
  exit 0
fi
go list -tags invariants -f '{{.ImportPath}}{{range .Deps}} {{.}}{{end}}' ./... |
  awk -v tagged="$tagged" 'BEGIN { n = split(tagged, t, "\n"); for (i = 1; i <= n; i++) want[t[i]] = 1 }
    { for (i = 1; i <= NF; i++) if ($i in want) { print $1; break } }'
