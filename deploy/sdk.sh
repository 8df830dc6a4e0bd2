#!/usr/bin/env bash
# Installs the official Directus SDK pinned by deploy/sdk/package-lock.json into
# deploy/sdk/node_modules, for the e2e test that drives the gateway with it
# (tests/tests/e2e/directus_sdk.rs runs deploy/sdk/sdk_check.mjs). Idempotent: nothing is done
# while the installed tree matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/sdk"

log() { printf '[sdk] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  log "installing Node.js and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

stamp=node_modules/.genie-lock-sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/@directus/sdk/package.json ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
log "installing @directus/sdk $(node -p "require('./package-lock.json').packages['node_modules/@directus/sdk'].version")"
# The SDK asks for Node 22 (engines) but runs on the Node 20 of Debian's package: the test
# proves it; engine-strict stays off so that npm only warns.
npm ci --no-audit --no-fund --loglevel=error --engine-strict=false
echo "$wanted" > "$stamp"
log "installed"
