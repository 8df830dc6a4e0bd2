#!/usr/bin/env bash
# Installs the official Directus SDK pinned by deploy/sdk/package-lock.json into
# deploy/sdk/node_modules, for the e2e test that drives the gateway with it
# (tests/tests/e2e/directus_sdk.rs runs deploy/sdk/sdk_check.mjs). Idempotent: nothing is done
# while the installed tree matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/sdk"
label=sdk
. ../npm-locked.sh

# The SDK asks for Node 22 (engines) but runs on the Node 20 of Debian's package: the test
# proves it; engine-strict stays off so that npm only warns.
install_locked @directus/sdk node_modules/@directus/sdk/package.json "" -- --engine-strict=false
