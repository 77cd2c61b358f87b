#!/usr/bin/env bash
# Installs what Baton's tests and demo need on a fresh Debian or Ubuntu machine with Node 20.
# Debian packages: the Docker engine, the distribution registry, busybox for the test app
# images, HAProxy, Chromium and systemd (systemd-socket-activate, systemd-analyze). Then the npm
# packages, built from source where no prebuilt binary can be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker.io docker-compose docker-registry busybox-static haproxy chromium ca-certificates systemd)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "Baton needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci refuses a lock file whose optional per-platform packages (rollup's) are not all
  # listed, which happens when the registry in use lacks some of them; npm install accepts it.
  if ! npm ci --no-audit --no-fund; then
    echo "npm ci refused the lock file; installing with npm install instead"
    npm install --no-audit --no-fund
  fi
fi
npm run build --silent
