#!/usr/bin/env bash
# Collector: npm packages of the page test (playwright-core; uplot, whose
# dist file is vendored) at the versions in collector/web/package-lock.json.
set -euo pipefail
# Node.js and npm: machines of this kind ship Node 20 with its own npm
# (Debian's npm package conflicts with that nodejs); install Debian's only
# where there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -q --no-install-recommends nodejs npm
fi
cd "$(dirname "$0")/../../collector/web"
for attempt in 1 2 3; do
  if npm ci --no-audit --no-fund; then
    exit 0
  fi
  echo "npm ci failed (attempt $attempt)" >&2
  sleep 10
done
exit 1
