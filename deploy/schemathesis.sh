#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned by deploy/fuzz/requirements.txt) into .tools/schemathesis
# for the fuzz test over the live /openapi.json. Idempotent: nothing is done while the installed
# set matches the requirements file.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/schemathesis
stamp=$venv/.genie-requirements-sha256
wanted=$(sha256sum deploy/fuzz/requirements.txt | cut -d' ' -f1)
if [ -x "$venv/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi
echo "[fuzz] installing $(cat deploy/fuzz/requirements.txt) (once)"
if ! python3 -m venv "$venv" 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; apt-get install -y -qq python3-venv >/dev/null; fi
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/fuzz/requirements.txt
echo "$wanted" > "$stamp"
