#!/usr/bin/env bash
# Installs the Directus pinned by deploy/directus/package-lock.json into deploy/directus/node_modules,
# for the tests of svc-auth's directus mode (they run a real Directus on a random port). Idempotent:
# nothing is done while the installed tree matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/directus"
label=directus
. ../npm-locked.sh

install_locked directus node_modules/.bin/directus "(a few minutes, once)"
