#!/bin/sh
# Refreshes web/vendor/ from the npm registry: installs exactly the versions
# pinned in package.json / package-lock.json (npm checks their integrity
# hashes) and copies uPlot's minified build, its stylesheet and its licence.
# To move to a new uPlot: change the pin in package.json, run
# `npm install --package-lock-only` here, then this script (make collector-web-vendor).
set -eu
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund
version=$(node -p 'require("./node_modules/uplot/package.json").version')
pinned=$(node -p 'require("./package.json").dependencies.uplot')
if [ "$version" != "$pinned" ]; then
  echo "installed uplot $version but package.json pins $pinned" >&2
  exit 1
fi
mkdir -p vendor
cp node_modules/uplot/dist/uPlot.iife.min.js vendor/uPlot.iife.min.js
cp node_modules/uplot/dist/uPlot.min.css vendor/uPlot.min.css
cp node_modules/uplot/LICENSE vendor/uPlot.LICENSE
echo "vendored uplot $version into $(pwd)/vendor"
