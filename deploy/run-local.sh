#!/usr/bin/env bash
# Runs the whole platform on its local defaults: starts PostgreSQL and RabbitMQ where needed,
# builds, migrates, and runs every service and the gateway in one process (`genie up`).
# Variables already set in the environment win over deploy/local.env.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

./deploy/services.sh
# Split at the first '=' only: values such as base64 keys end in '=' themselves.
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  key=${line%%=*}
  [ -n "${!key:-}" ] || export "$line"
done < deploy/local.env

cargo build --release --locked -p genie
./target/release/genie migrate

cat <<MSG

  Genie is starting on http://${GATEWAY_ADDR}
  Administrator: ${ADMIN_EMAIL} / ${ADMIN_PASSWORD}

  Try:
    curl -s -X POST http://${GATEWAY_ADDR}/auth/login -H 'Content-Type: application/json' \\
      -d '{"email":"${ADMIN_EMAIL}","password":"${ADMIN_PASSWORD}"}'
    curl -s http://${GATEWAY_ADDR}/health/detailed
    open http://${GATEWAY_ADDR}/docs

MSG
exec ./target/release/genie up
