#!/usr/bin/env bash
# Starts the local RabbitMQ afresh when the queues earlier test runs left behind have piled up.
# Every svc-queue test deployment declares six quorum queues of its own and none deletes them
# (deleting such a queue just after declaring it breaks RabbitMQ 3.10's dead-lettering for the
# whole node: svc-queue/README.md, "The broker"); a full test run leaves about 300, and a broker
# holding several runs' worth answers declares so slowly that the next run times out (and
# `rabbitmqctl stop_app`/`reset` hang on it). The tests' queues are all named `genie_test…` or
# `genie_smoke…`; above LIMIT of them (default 100) the broker is stopped, its data directory
# removed and it is started empty (the guest user comes back with it). Only for a machine where
# nothing but this project's tests uses the local RabbitMQ.
set -euo pipefail
limit=${BROKER_RESET_LIMIT:-100}
data=${RABBITMQ_MNESIA_BASE:-/var/lib/rabbitmq/mnesia}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
leftover=$(as_root timeout 60 rabbitmqctl -q list_queues name 2>/dev/null | grep -c '^genie_\(test\|smoke\)' || true)
if [ "$leftover" -le "$limit" ]; then
  echo "[broker] $leftover queues left by earlier test runs: kept"
  exit 0
fi
echo "[broker] $leftover queues left by earlier test runs: starting the local RabbitMQ empty"
as_root timeout 30 rabbitmqctl -q stop >/dev/null 2>&1 || as_root pkill -9 -f beam.smp || true
as_root pkill -9 -f epmd || true
sleep 1
as_root rm -rf "$data"
as_root rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 1 90); do port_open 5672 && exit 0; sleep 1; done
echo "[broker] RabbitMQ did not open port 5672 in 90 s" >&2
exit 1
