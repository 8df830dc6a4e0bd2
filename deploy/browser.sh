#!/usr/bin/env bash
# Installs what the browser tests need: Chromium from Debian's packages (/usr/bin/chromium) and the
# puppeteer-core pinned by deploy/browser/package-lock.json into deploy/browser/node_modules
# (puppeteer-core drives the installed Chromium; it downloads no browser). Idempotent: nothing is
# done while Chromium is installed and the installed tree matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/browser"

log() { printf '[browser] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  log "installing Node.js and npm"
  apt_install nodejs npm
fi
if [ ! -x /usr/bin/chromium ]; then
  log "installing Chromium (once)"
  apt_install chromium
fi

stamp=node_modules/.genie-lock-sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/puppeteer-core/package.json ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
log "installing puppeteer-core $(node -p "require('./package-lock.json').packages['node_modules/puppeteer-core'].version")"
# puppeteer-core has no install script; PUPPETEER_SKIP_DOWNLOAD is for safety all the same.
PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
echo "$wanted" > "$stamp"
log "installed"
