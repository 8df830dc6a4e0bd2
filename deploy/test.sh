#!/usr/bin/env bash
# Runs every test of the workspace against the real PostgreSQL and RabbitMQ (starting them first
# where they are not running), a real Directus, the official Directus SDK and a headless Chromium
# driven by puppeteer-core (installed once, pinned); ends with one line totalling every test
# binary's results.
# First the offline checks of the Helm chart and the Dockerfile (deploy/helm-check.sh): a failure
# there stops the run before any build. After the tests, the chart's environment is run for real
# with the genie binary they built (deploy/helm-smoke.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/helm-check.sh
./deploy/services.sh
./deploy/broker-reset.sh
./deploy/directus.sh
./deploy/browser.sh
./deploy/sdk.sh
./deploy/schemathesis.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
./deploy/helm-smoke.sh
cat target/fuzz-summary.txt 2>/dev/null || true
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
