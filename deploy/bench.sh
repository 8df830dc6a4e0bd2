#!/usr/bin/env bash
# The hot path benchmark (genie/benches/hot_path.rs): starts PostgreSQL where it is not running,
# then pgbench -S and -N against the release `genie up` through the gateway, 32 connections each;
# prints one table, also as Markdown. About two minutes after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/services.sh
command -v pgbench >/dev/null || { echo "pgbench is not on PATH (Debian: postgresql-client)" >&2; exit 1; }
cargo bench --locked -p genie --bench hot_path "$@"
