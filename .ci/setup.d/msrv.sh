#!/usr/bin/env bash
# The agent and the protocol crate must build with Buildroot 2026.02's rustc.
set -euo pipefail
for attempt in 1 2 3; do
  rustup toolchain install 1.88 --profile minimal && exit 0
  echo "rustup toolchain install 1.88 failed (attempt $attempt)" >&2
  sleep 10
done
echo "cannot install Rust 1.88: the MSRV check (make test-msrv) will fail" >&2
exit 1
