#!/bin/sh
# Copy the browser-side npm dependencies from node_modules into web/vendor/.
# The UI loads them from there (same origin), never from a CDN.
# Usage: tests/browser/vendor.sh   (runs `npm ci` first if node_modules is missing)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
web="$here/../../web/vendor"
cd "$here"
[ -d node_modules/jmuxer ] && [ -d node_modules/hls.js ] && [ -d node_modules/dashjs ] || npm ci --no-audit --no-fund
ver=$(node -p 'require("./node_modules/jmuxer/package.json").version')
cp node_modules/jmuxer/dist/jmuxer.min.js "$web/jmuxer.min.js"
cp node_modules/jmuxer/LICENSE "$web/jmuxer.LICENSE"
# hls.js: the "light" ES module build (no subtitles/alt audio/DRM; LL-HLS is in it),
# loaded with import() only when the HLS player starts.
hver=$(node -p 'require("./node_modules/hls.js/package.json").version')
cp node_modules/hls.js/dist/hls.light.min.mjs "$web/hls.light.min.mjs"
cp node_modules/hls.js/LICENSE "$web/hls.js.LICENSE"
# dash.js: the media player alone (no offline/MSS modules), ES module build, loaded with
# import() only when the DASH player starts. Its source map is not vendored: drop the link.
dver=$(node -p 'require("./node_modules/dashjs/package.json").version')
sed '/^\/\/# sourceMappingURL=/d' node_modules/dashjs/dist/modern/esm/dash.mediaplayer.min.js > "$web/dash.mediaplayer.min.mjs"
cat node_modules/dashjs/LICENSE.md node_modules/dashjs/dist/modern/esm/dash.mediaplayer.min.js.LICENSE.txt > "$web/dash.js.LICENSE"
printf 'jmuxer %s\nhls.js %s\ndash.js %s\n' "$ver" "$hver" "$dver" > "$web/VERSIONS"
echo "vendored jmuxer $ver, hls.js $hver and dash.js $dver into web/vendor/"
