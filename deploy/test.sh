#!/usr/bin/env bash
# Runs every test of the workspace against the real PostgreSQL and RabbitMQ, starting them first
# where they are not running.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/services.sh
cargo test --workspace --locked "$@"
