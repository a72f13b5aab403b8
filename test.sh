#!/usr/bin/env bash
# Runs every test of the repository: the main module with the race detector,
# then the modules with heavy test-only dependencies (tests/compat runs the
# same operations against an embedded etcd and against kvstore; bench is the
# side-by-side benchmark harness).
set -euo pipefail
cd "$(dirname "$0")"
go test -race -count=1 ./...
(cd tests/compat && go test -race -count=1 ./...)
# The benchmark harness: each workload briefly against a real coordd and a
# real etcd, checking the numbers are sane (the benchmark itself is
# `cd bench && go run ./cmd/bench`).
(cd bench && go test -race -count=1 ./...)
