#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, trust auth on loopback), RabbitMQ (127.0.0.1:5672,
# guest/guest) and Redis (127.0.0.1:6379) are running, installing them from Debian's packages where they are missing, and
# that the local `genie` database exists; installs ffmpeg (svc-queue's video work) the same way.
# Idempotent: safe to run again and again.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 90); do
    port_open "$port" && return 0
    sleep 1
  done
  log "$name did not open port $port in 90 s" >&2
  return 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
pg_ok() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; }

# PostgreSQL
if ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
  log "installing PostgreSQL"
  apt_install postgresql postgresql-client
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
if ! port_open 5432; then
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
fi
if ! pg_ok; then
  # Tests and local runs connect as postgres over loopback without a password.
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  log "allowing trust authentication on loopback in $hba"
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
  pg_ok || { log "cannot connect to PostgreSQL as postgres on 127.0.0.1" >&2; exit 1; }
fi
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'genie'")" != 1 ]; then
  log "creating database genie"
  psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE genie' >/dev/null
fi

# RabbitMQ
if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null; then
    log "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
fi

# Redis (the gateway's shared rate limits)
if ! port_open 6379; then
  if ! command -v redis-server >/dev/null; then
    log "installing Redis"
    apt_install redis-server
  fi
  log "starting Redis"
  as_root redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
  wait_port 6379 Redis
fi

# ffmpeg (svc-queue's video operations; without it they are refused at enqueue)
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  log "installing ffmpeg"
  apt_install ffmpeg
fi

log "PostgreSQL, RabbitMQ and Redis are up; ffmpeg is installed"
