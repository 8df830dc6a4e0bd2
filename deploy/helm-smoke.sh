#!/usr/bin/env bash
# Runs the gateway, the five services and the queue worker as the Helm chart configures them, on
# this machine: renders the chart (one database per service, the Secret from values, ports of its
# own, queue names of its own), gives each `genie serve <component>` exactly the environment its
# pod would get (the files volume, one PersistentVolumeClaim mounted by svc-queue and the worker,
# is one temporary directory both get), and checks that the gateway turns ready with every
# service listed, the worker's gRPC health turns SERVING, a login works, a call reaches every
# service, and an uploaded PNG resized by a media job comes back (deploy/helm-smoke.py).
# It proves the variable names and the wiring, not the cluster objects (helm-check.sh does those).
#
# Needs a built genie binary: GENIE_BIN, else target/debug/genie (cargo build -p genie), and the
# local PostgreSQL, Redis and RabbitMQ (deploy/services.sh). Creates five databases and drops them
# after. svc-queue's exchanges and queues are named under a prefix of the run's own,
# `genie_smoke_<unix seconds>_<pid>.`, so that the worker consumes this run's jobs only. A run
# never deletes its own queues: RabbitMQ 3.10 can lose its at-least-once dead-lettering for the
# whole node when such a queue is deleted just after it was declared (svc-queue/README.md, "The
# broker"). Queues of runs older than an hour, long settled, are deleted in the background with
# rabbitmqctl (where it may be run), as the tests do (common/src/testing.rs, broker_prefix).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
genie=${GENIE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/genie}
[ -x "$genie" ] || { echo "helm-smoke: no genie binary at $genie (cargo build -p genie, or set GENIE_BIN)" >&2; exit 2; }
[ -x .tools/bin/helm ] || bash deploy/helm-check.sh >/dev/null

admin=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
suffix=$$
dbs=(genie_smoke_auth_$suffix genie_smoke_usage_$suffix genie_smoke_credentials_$suffix genie_smoke_skills_$suffix
  genie_smoke_queue_$suffix)
started=$(date +%s)
queue_prefix=genie_smoke_${started}_$$.
delete_stale_queues() {
  command -v rabbitmqctl >/dev/null || return 0
  local queue secs
  rabbitmqctl -q list_queues name 2>/dev/null | while read -r queue; do
    [[ $queue =~ ^genie_smoke_([0-9]+)_[0-9]+\. ]] || continue
    secs=${BASH_REMATCH[1]}
    if [ "$((secs + 3600))" -lt "$started" ] && [[ $queue != "$queue_prefix"* ]]; then
      rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
    fi
  done
}
delete_stale_queues </dev/null >/dev/null 2>&1 &
# The worker's health port: a free one (a `genie up` here may hold its default, 50057).
worker_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
cleanup() {
  for db in "${dbs[@]}"; do psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for db in "${dbs[@]}"; do psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null; done
db_url() { printf '%s/%s' "${admin%/*}" "$1"; }

cat >"$work/values.yaml" <<YAML
secrets:
  create: true
  values:
    INTERNAL_TOKEN: smoke-only-internal-token-0123456789abcdef
    DIRECTUS_SECRET: smoke-only-directus-secret-0123456789abcdef
    RBAC_SYNC_WEBHOOK_SECRET: smoke-only-rbac-sync-secret
    CREDENTIALS_ENC_KEY_B64: c21va2Utb25seS12YXVsdC1rZXktZm9yLWhlbG0hISE=
    AUTH_DATABASE_URL: $(db_url "${dbs[0]}")
    USAGE_DATABASE_URL: $(db_url "${dbs[1]}")
    CREDENTIALS_DATABASE_URL: $(db_url "${dbs[2]}")
    SKILLS_DATABASE_URL: $(db_url "${dbs[3]}")
    QUEUE_DATABASE_URL: $(db_url "${dbs[4]}")
    QUEUE_AMQP_URL: amqp://guest:guest@127.0.0.1:5672/%2f
    REDIS_URL: redis://127.0.0.1:6379
    ADMIN_PASSWORD: smoke-admin-password
gateway:
  port: 23001
  env:
    REDIS_KEY_PREFIX: genie-helm-smoke-$suffix
    GATEWAY_LOGIN_LIMIT: 50
auth:
  port: 25051
  env:
    ADMIN_EMAIL: admin@helm-smoke.local
    AUTH_DATABASE_POOL_SIZE: 4
usage:
  port: 25052
  env:
    USAGE_DATABASE_POOL_SIZE: 4
credentials:
  port: 25053
  env:
    CREDENTIALS_DATABASE_POOL_SIZE: 4
skills:
  port: 25055
  env:
    SKILLS_DATABASE_POOL_SIZE: 4
queue:
  port: 25056
  env:
    QUEUE_DATABASE_POOL_SIZE: 4
    QUEUE_NAME_PREFIX: $queue_prefix
queueWorker:
  port: $worker_port
YAML
if ! .tools/bin/helm template smoke deploy/helm/genie -f "$work/values.yaml" |
  .tools/venv/bin/python deploy/helm-smoke.py "$genie" "$work"; then
  for log in "$work"/*.log; do echo "--- $(basename "$log")"; tail -n 15 "$log"; done >&2
  exit 1
fi
