# Collector (issue 4): storage, HTTP API, metrics, live page.
# Its tests need PostgreSQL 15 server binaries, Chromium, Node.js and npm
# (.ci/apt/collector.txt) and playwright-core from collector/web/package.json
# (installed here by `npm ci`, and in CI by .ci/setup.d/collector.sh).

COLLECTOR_WEB := collector/web

.PHONY: test-collector collector-web-deps collector-web-vendor bench-collector-storage
TEST_TARGETS += test-collector

# npm ci again only when the lock file changed since the last install.
$(COLLECTOR_WEB)/node_modules/.package-lock.json: $(COLLECTOR_WEB)/package-lock.json
	cd $(COLLECTOR_WEB) && npm ci --no-audit --no-fund

## Install the page test's npm packages (playwright-core, uplot).
collector-web-deps: $(COLLECTOR_WEB)/node_modules/.package-lock.json

## Refresh collector/web/vendor/ (uPlot) from npm at the versions pinned in
## collector/web/package.json.
collector-web-vendor:
	sh $(COLLECTOR_WEB)/scripts/vendor.sh

## The collector's tests: storage conformance on SQLite and a real
## PostgreSQL 15, crash/SIGTERM, CLI, HTTP, and the page in headless Chromium.
test-collector: collector-web-deps
	node --check $(COLLECTOR_WEB)/app.js
	node --check $(COLLECTOR_WEB)/tests/driver.mjs
	$(CARGO) test -p sipsensor-collector --all-features --locked

## Storage throughput (SQLite and PostgreSQL), printed; not part of `make test`.
bench-collector-storage:
	$(CARGO) bench -p sipsensor-collector --bench storage --locked
