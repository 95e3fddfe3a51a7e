#!/usr/bin/env bash
# Image validation: Debian's armhf/arm64 kernel packages provide the base
# device trees the overlays are applied to (downloaded, never installed),
# and the Python tools live in a venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

dpkg --add-architecture armhf
dpkg --add-architecture arm64
# A mirror may briefly serve an armhf/arm64 index that does not match its
# Release file; the tests refresh and retry, so a failed update is only
# reported here.
for attempt in 1 2 3; do
  if apt-get update -q; then
    break
  fi
  echo "images.sh: apt-get update failed (attempt $attempt)" >&2
  sleep 10
done

make images-venv
