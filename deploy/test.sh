#!/usr/bin/env bash
# Runs every test of the workspace against the real PostgreSQL and RabbitMQ (starting them first
# where they are not running), a real Directus, the official Directus SDK and a headless Chromium
# driven by puppeteer-core (installed once, pinned); ends with one line totalling every test
# binary's results.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/services.sh
./deploy/directus.sh
./deploy/browser.sh
./deploy/sdk.sh
./deploy/schemathesis.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
cat target/fuzz-summary.txt 2>/dev/null || true
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
