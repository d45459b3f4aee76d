#!/bin/sh
# Copy the browser-side npm dependencies from node_modules into web/vendor/.
# The UI loads them from there (same origin), never from a CDN.
# Usage: tests/browser/vendor.sh   (runs `npm ci` first if node_modules is missing)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
web="$here/../../web/vendor"
cd "$here"
[ -d node_modules/jmuxer ] && [ -d node_modules/hls.js ] || npm ci --no-audit --no-fund
ver=$(node -p 'require("./node_modules/jmuxer/package.json").version')
cp node_modules/jmuxer/dist/jmuxer.min.js "$web/jmuxer.min.js"
cp node_modules/jmuxer/LICENSE "$web/jmuxer.LICENSE"
# hls.js: the "light" ES module build (no subtitles/alt audio/DRM; LL-HLS is in it),
# loaded with import() only when the HLS player starts.
hver=$(node -p 'require("./node_modules/hls.js/package.json").version')
cp node_modules/hls.js/dist/hls.light.min.mjs "$web/hls.light.min.mjs"
cp node_modules/hls.js/LICENSE "$web/hls.js.LICENSE"
printf 'jmuxer %s\nhls.js %s\n' "$ver" "$hver" > "$web/VERSIONS"
echo "vendored jmuxer $ver and hls.js $hver into web/vendor/"
