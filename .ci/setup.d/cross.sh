#!/usr/bin/env bash
# Rust standard libraries for the cross targets of mk/cross.mk. rustup
# downloads them; a network hiccup is retried, a lasting failure stops CI
# with a message that says what is missing.
set -euo pipefail
targets=(armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu)
for attempt in 1 2 3 4 5; do
  if rustup target add "${targets[@]}"; then
    exit 0
  fi
  echo "cross.sh: rustup target add failed (attempt $attempt of 5); retrying in $((attempt * 10)) s" >&2
  sleep $((attempt * 10))
done
echo "cross.sh: cannot install the Rust targets ${targets[*]} with rustup;" \
  "make cross and make test-cross need them (check the network and rustup's proxy settings)" >&2
exit 1
