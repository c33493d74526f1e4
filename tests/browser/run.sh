#!/usr/bin/env bash
# The browser test: installs what it needs (Debian's chromium, playwright-core from
# npm), builds the server, and drives the web page in headless Chromium (test.mjs).
# Where Chromium cannot be installed it says so and exits 0: a skip, never silent.
#
#   bash tests/browser/run.sh                      # from anywhere
#   SCREENSHOT=/tmp/page.png bash tests/browser/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/tools/target-dir.sh"

if [ ! -x /usr/bin/chromium ]; then
  echo "browser test: installing Debian's chromium"
  if ! { command -v apt-get >/dev/null &&
         { apt-get update -qq || true; } &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    echo "browser test: SKIPPED: chromium could not be installed (apt-get failed)"
    exit 0
  fi
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "browser test: SKIPPED: /usr/bin/chromium is missing after installing"
  exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser test: SKIPPED: node and npm are needed"
  exit 0
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
# The features `cargo test` builds with: after it (as in .ci/run) this builds nothing.
(cd "$root" && cargo test --locked --no-run)
# Where that put the server: cargo's target directory (CARGO_TARGET_DIR, .cargo/config).
target="$(cargo_target_dir "$root")"
require_bin "$target/debug/basic-service" "cargo build --bin basic-service" || exit 1

cd "$here"
BASIC_BIN="$target/debug/basic-service" timeout 300 node test.mjs
