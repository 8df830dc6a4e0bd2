# Sourced by the scripts that install an npm package pinned by a lockfile (directus.sh, sdk.sh,
# browser.sh), from the directory holding package-lock.json, after setting `label`.

log() { printf '[%s] %s\n' "$label" "$*"; }
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

# install_locked PACKAGE INSTALLED_FILE [NOTE] [-- npm ci options]: `npm ci` unless INSTALLED_FILE
# exists and the tree was installed from this very lockfile.
install_locked() {
  local package=$1 installed=$2 note=${3:-}
  shift 3 || shift $#
  [ "${1:-}" = "--" ] && shift
  local stamp=node_modules/.genie-lock-sha256 wanted
  wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -e "$installed" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return 0
  fi
  log "installing $package $(node -p "require('./package-lock.json').packages['node_modules/$package'].version")${note:+ $note}"
  npm ci --no-audit --no-fund --loglevel=error "$@"
  echo "$wanted" > "$stamp"
  log "installed"
}
