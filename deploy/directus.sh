#!/usr/bin/env bash
# Installs the Directus pinned by deploy/directus/package-lock.json into deploy/directus/node_modules,
# for the tests of svc-auth's directus mode (they run a real Directus on a random port). Idempotent:
# nothing is done while the installed tree matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/directus"

log() { printf '[directus] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  log "installing Node.js and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

stamp=node_modules/.genie-lock-sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/directus ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
log "installing Directus $(node -p "require('./package-lock.json').packages['node_modules/directus'].version") (a few minutes, once)"
npm ci --no-audit --no-fund --loglevel=error
echo "$wanted" > "$stamp"
log "installed"
