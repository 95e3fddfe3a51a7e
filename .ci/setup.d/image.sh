#!/usr/bin/env bash
# The Debian-based image: the armv7 Rust target for its agent. (binfmt_misc
# for the armhf root file system is mounted and registered by
# images/debian/build-image itself, which `make test-boot` runs as root.)
set -euo pipefail
for attempt in 1 2 3 4 5; do
  if rustup target add armv7-unknown-linux-gnueabihf; then
    exit 0
  fi
  echo "image.sh: rustup target add failed (attempt $attempt of 5); retrying in $((attempt * 10)) s" >&2
  sleep $((attempt * 10))
done
echo "image.sh: cannot install the Rust target armv7-unknown-linux-gnueabihf; make image needs it" >&2
exit 1
