#!/usr/bin/env bash
# Brings the files of Swagger UI that the gateway serves at /docs (gateway/src/docs_ui.rs embeds
# them in the binary) from the npm package swagger-ui-dist into gateway/assets/swagger-ui/, with
# its licence, and records the version and checksums there. The files are committed, so building
# needs no network; run this only to upgrade: deploy/vendor-swagger-ui.sh <version>.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-5.35.0}
files=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)
dest=gateway/assets/swagger-ui

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# `npm pack` downloads the package's tarball without installing it, so no install script runs.
tarball=$(npm pack --silent --pack-destination "$work" "swagger-ui-dist@$version")
tar -xzf "$work/$tarball" -C "$work"
actual=$(node -p "require('$work/package/package.json').version")
[ "$actual" = "$version" ] || { echo "asked for $version, got $actual" >&2; exit 1; }

mkdir -p "$dest"
for file in "${files[@]}"; do
  cp "$work/package/$file" "$dest/$file"
done
{
  echo "# Swagger UI $version"
  echo
  echo "From the npm package \`swagger-ui-dist@$version\` (Apache-2.0, see LICENSE and NOTICE;"
  echo "the licences of what \`swagger-ui-bundle.js\` bundles are in \`swagger-ui-bundle.js.LICENSE.txt\`),"
  echo "unchanged. The gateway embeds these files and serves them under \`/docs/assets/\`."
  echo "Their URLs carry a hash of their content, so browsers may cache them for good. To upgrade:"
  echo "\`deploy/vendor-swagger-ui.sh <version>\` (and make that version the script's default)."
  echo
  echo "SHA-256:"
  echo
  echo '```'
  (cd "$dest" && sha256sum "${files[@]}")
  echo '```'
} > "$dest/README.md"
echo "swagger-ui-dist $version -> $dest"
