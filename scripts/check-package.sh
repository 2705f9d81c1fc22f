#!/usr/bin/env bash
# Packs the library the way npm publishes it and checks the tarball with publint and
# @arethetypeswrong/cli (ESM + CJS entries, per-format type declarations).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
tarball=$(npm pack --silent | tail -n 1)
trap 'rm -f "$tarball"' EXIT
npx --no-install publint run "$tarball" --strict
# node10 resolution predates `exports`; subpath entries cannot resolve there by design.
npx --no-install attw "$tarball" --profile node16
