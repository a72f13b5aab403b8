#!/usr/bin/env bash
# Runs every test of the repository: the main module with the race detector,
# then the modules with heavy test-only dependencies (tests/compat runs the
# same operations against an embedded etcd and against kvstore).
set -euo pipefail
cd "$(dirname "$0")"
go test -race -count=1 ./...
(cd tests/compat && go test -race -count=1 ./...)
