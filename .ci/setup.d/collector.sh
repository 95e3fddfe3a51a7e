#!/usr/bin/env bash
# Collector: npm packages of the page test (playwright-core; uplot, whose
# dist file is vendored) at the versions in collector/web/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../../collector/web"
for attempt in 1 2 3; do
  if npm ci --no-audit --no-fund; then
    exit 0
  fi
  echo "npm ci failed (attempt $attempt)" >&2
  sleep 10
done
exit 1
