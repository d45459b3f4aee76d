#!/bin/sh
# Copy the browser-side npm dependencies from node_modules into web/vendor/.
# The UI loads them from there (same origin), never from a CDN.
# Usage: tests/browser/vendor.sh   (runs `npm ci` first if node_modules is missing)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
web="$here/../../web/vendor"
cd "$here"
[ -d node_modules/jmuxer ] || npm ci --no-audit --no-fund
ver=$(node -p 'require("./node_modules/jmuxer/package.json").version')
cp node_modules/jmuxer/dist/jmuxer.min.js "$web/jmuxer.min.js"
cp node_modules/jmuxer/LICENSE "$web/jmuxer.LICENSE"
echo "jmuxer $ver" > "$web/VERSIONS"
echo "vendored jmuxer $ver into web/vendor/"
