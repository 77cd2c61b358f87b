#!/usr/bin/env bash
# Installs what the demo needs (Debian packages, npm packages, build) and runs it:
# a real fleet on loopback, v2 pushed while you watch the status page. Ctrl-C ends it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build:tools
exec node build/scripts/demo.js "$@"
