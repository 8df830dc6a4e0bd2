#!/usr/bin/env bash
# Installs what the browser tests need: Chromium from Debian's packages (/usr/bin/chromium) and the
# puppeteer-core pinned by deploy/browser/package-lock.json into deploy/browser/node_modules
# (puppeteer-core drives the installed Chromium; it downloads no browser). Idempotent: nothing is
# done while Chromium is installed and the installed tree matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/browser"
label=browser
. ../npm-locked.sh

if [ ! -x /usr/bin/chromium ]; then
  log "installing Chromium (once)"
  apt_install chromium
fi
# puppeteer-core has no install script; PUPPETEER_SKIP_DOWNLOAD is for safety all the same.
PUPPETEER_SKIP_DOWNLOAD=1 install_locked puppeteer-core node_modules/puppeteer-core/package.json
